"""Faults: connection toxics in toxiproxy's vocabulary, and S3 faults.

A fault is a frozen value parsed once from a JSON object or a `[[faults]]` table; a bad one is
a `FaultError` naming the field. `FaultSet` is the server's current list: the configuration
seeds it, the admin API replaces, adds and removes entries at run time. Connections and requests
read it when they start, so a change applies to new connections and requests, not to ones in
flight.

Toxic types (toxiproxy's names and attributes): `latency` (latency_ms, jitter_ms), `bandwidth`
(rate, KB/s), `slicer` (average_size, size_variation, delay in µs), `reset_peer` (timeout ms),
`timeout` (timeout ms, 0 = never close), `limit_data` (bytes). `direction` is `upstream` (client
to mrapsim) or `downstream` (mrapsim to client); `toxicity` is the probability that a new
connection gets the toxic. S3 fault types: `s3_error` (attributes.code: SlowDown, InternalError,
... at `rate`) and `s3_latency` (latency_ms, jitter_ms), filtered by operation, bucket, prefix.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

TOXIC_ATTRIBUTES: dict[str, dict[str, float]] = {
    "latency": {"latency_ms": 0, "jitter_ms": 0},
    "bandwidth": {"rate": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "reset_peer": {"timeout": 0},
    "timeout": {"timeout": 0},
    "limit_data": {"bytes": 0},
}

S3_ERRORS: dict[str, tuple[int, str]] = {
    "SlowDown": (503, "Please reduce your request rate."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "ServiceUnavailable": (503, "Please reduce your request rate."),
    "RequestTimeout": (
        400,
        "Your socket connection to the server was not read from or written to within the timeout period.",
    ),
}

Direction = Literal["upstream", "downstream"]


class FaultError(ValueError):
    """A fault definition that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Toxic:
    type: str
    direction: Direction
    toxicity: float
    attributes: Mapping[str, float]
    listener: str | None = None
    route: str | None = None
    id: str = ""

    def applies_to(self, listener: str, route: str | None) -> bool:
        return self.listener in (None, listener) and self.route in (None, route)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "listener": self.listener,
            "route": self.route,
            "direction": self.direction,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True)
class S3Fault:
    type: Literal["s3_error", "s3_latency"]
    rate: float
    operation: str | None = None
    bucket: str | None = None
    prefix: str | None = None
    code: str | None = None  # s3_error
    latency_ms: float = 0.0  # s3_latency
    jitter_ms: float = 0.0
    id: str = ""

    def applies_to(self, operation: str, bucket: str | None, key: str | None) -> bool:
        return (
            self.operation in (None, operation)
            and self.bucket in (None, bucket)
            and (self.prefix is None or (key or "").startswith(self.prefix))
        )

    def to_json(self) -> dict[str, Any]:
        attributes: dict[str, Any] = (
            {"code": self.code}
            if self.type == "s3_error"
            else {"latency_ms": self.latency_ms, "jitter_ms": self.jitter_ms}
        )
        return {
            "id": self.id,
            "type": self.type,
            "operation": self.operation,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "rate": self.rate,
            "attributes": attributes,
        }


Fault = Toxic | S3Fault


def parse_fault(document: Any, where: str = "fault") -> Fault:
    if not isinstance(document, Mapping):
        raise FaultError(f"{where}: must be an object")
    kind = document.get("type")
    if kind in TOXIC_ATTRIBUTES:
        return _parse_toxic(document, where)
    if kind in ("s3_error", "s3_latency"):
        return _parse_s3_fault(document, where)
    known = ", ".join([*TOXIC_ATTRIBUTES, "s3_error", "s3_latency"])
    raise FaultError(f"{where}.type: {kind!r} is not one of {known}")


def _parse_toxic(document: Mapping[str, Any], where: str) -> Toxic:
    kind = str(document["type"])
    _reject_unknown(
        document, {"id", "type", "listener", "route", "direction", "toxicity", "attributes", "name", "stream"}, where
    )
    direction = document.get("direction", document.get("stream", "downstream"))
    if direction not in ("upstream", "downstream"):
        raise FaultError(f"{where}.direction: must be upstream or downstream")
    defaults = TOXIC_ATTRIBUTES[kind]
    given = document.get("attributes", {})
    if not isinstance(given, Mapping):
        raise FaultError(f"{where}.attributes: must be an object")
    _reject_unknown(given, set(defaults), f"{where}.attributes")
    attributes = {
        name: _number(given.get(name, default), f"{where}.attributes.{name}") for name, default in defaults.items()
    }
    return Toxic(
        type=kind,
        direction=direction,
        toxicity=_probability(document.get("toxicity", 1.0), f"{where}.toxicity"),
        attributes=attributes,
        listener=_optional_str(document, "listener", where),
        route=_optional_str(document, "route", where),
    )


def _parse_s3_fault(document: Mapping[str, Any], where: str) -> S3Fault:
    _reject_unknown(document, {"id", "type", "operation", "bucket", "prefix", "rate", "attributes"}, where)
    attributes = document.get("attributes", {})
    if not isinstance(attributes, Mapping):
        raise FaultError(f"{where}.attributes: must be an object")
    common: dict[str, Any] = {
        "rate": _probability(document.get("rate", 1.0), f"{where}.rate"),
        "operation": _optional_str(document, "operation", where),
        "bucket": _optional_str(document, "bucket", where),
        "prefix": _optional_str(document, "prefix", where),
    }
    if document["type"] == "s3_error":
        _reject_unknown(attributes, {"code"}, f"{where}.attributes")
        code = attributes.get("code", "SlowDown")
        if code not in S3_ERRORS:
            raise FaultError(f"{where}.attributes.code: {code!r} is not one of {', '.join(S3_ERRORS)}")
        return S3Fault(type="s3_error", code=code, **common)
    _reject_unknown(attributes, {"latency_ms", "jitter_ms"}, f"{where}.attributes")
    return S3Fault(
        type="s3_latency",
        latency_ms=_number(attributes.get("latency_ms", 0), f"{where}.attributes.latency_ms"),
        jitter_ms=_number(attributes.get("jitter_ms", 0), f"{where}.attributes.jitter_ms"),
        **common,
    )


def _reject_unknown(document: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in document:
        if key not in known:
            raise FaultError(f"{where}.{key}: unknown field; known: {', '.join(sorted(known))}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultError(f"{where}: must be a number >= 0")
    return float(value)


def _probability(value: Any, where: str) -> float:
    number = _number(value, where)
    if number > 1:
        raise FaultError(f"{where}: must be between 0 and 1")
    return number


def _optional_str(document: Mapping[str, Any], key: str, where: str) -> str | None:
    value = document.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise FaultError(f"{where}.{key}: must be a non-empty string or null")
    return value


@dataclass
class FaultSet:
    """The faults in force; ids are assigned here, in order."""

    _faults: dict[str, Fault] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def from_documents(cls, documents: Iterable[Any], where: str = "faults") -> FaultSet:
        faults = cls()
        faults.replace([parse_fault(d, f"{where}[{i}]") for i, d in enumerate(documents)])
        return faults

    def add(self, fault: Fault) -> str:
        fault = replace(fault, id=f"f{next(self._ids)}")
        self._faults[fault.id] = fault
        return fault.id

    def replace(self, faults: Iterable[Fault]) -> None:
        self._faults.clear()
        for fault in faults:
            self.add(fault)

    def remove(self, fault_id: str) -> bool:
        return self._faults.pop(fault_id, None) is not None

    def all(self) -> list[Fault]:
        return list(self._faults.values())

    def toxics_for(self, listener: str, route: str | None, rng: random.Random) -> list[Toxic]:
        """The toxics a new connection gets: each applicable one with probability `toxicity`."""
        return [
            toxic
            for toxic in self._faults.values()
            if isinstance(toxic, Toxic) and toxic.applies_to(listener, route) and rng.random() < toxic.toxicity
        ]

    def s3_faults_for(self, operation: str, bucket: str | None, key: str | None) -> list[S3Fault]:
        return [f for f in self._faults.values() if isinstance(f, S3Fault) and f.applies_to(operation, bucket, key)]
