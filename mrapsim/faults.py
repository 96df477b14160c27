"""Faults: connection toxics in Toxiproxy's vocabulary, S3 faults and TLS faults (docs/faults.md).

A fault is a frozen value parsed once from a JSON object or a `[[faults]]` table; a bad one is
a `FaultError` naming the field (and, for a name that does not exist here — a listener, a route,
an S3 operation — the names that do). `FaultSet` is the server's current set: the configuration
seeds it, the admin API (`/faults` and the Toxiproxy API alike) adds, updates and removes entries
at run time, and every open connection consults it for each chunk it carries, so a change takes
effect on the next bytes of connections already open.

Toxic types and attributes are Toxiproxy's, one for one: `latency` (latency, jitter ms),
`bandwidth` (rate KB/s), `slow_close` (delay ms), `timeout` (timeout ms, 0 = never close),
`reset_peer` (timeout ms), `slicer` (average_size, size_variation bytes, delay µs), `limit_data`
(bytes). `stream` (or `direction`) is `upstream` (client to mrapsim) or `downstream` (mrapsim to
client); `toxicity` is the probability that a connection gets the toxic, drawn once per
connection and remembered.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

TOXIC_ATTRIBUTES: dict[str, dict[str, float]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
}
# mrapsim 0.1 spelled latency's attributes with units; those files keep working.
ATTRIBUTE_ALIASES: dict[str, dict[str, str]] = {"latency": {"latency_ms": "latency", "jitter_ms": "jitter"}}

S3_ERRORS: dict[str, tuple[int, str]] = {
    "SlowDown": (503, "Please reduce your request rate."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "ServiceUnavailable": (503, "Please reduce your request rate."),
    "RequestTimeout": (
        400,
        "Your socket connection to the server was not read from or written to within the timeout period.",
    ),
}
# S3 fault types and their attributes with defaults.
S3_FAULT_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "s3_error": {"code": "SlowDown", "retry_after": 1},
    "s3_latency": {"latency": 0, "jitter": 0},
    "blackhole": {},
    "truncate_body": {"fraction": 0.5},
    "corrupt_body": {},
}
# TLS fault types: they act on the handshake of connections whose SNI matches `sni`.
TLS_FAULT_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "handshake_delay": {"delay": 0},
    "certificate": {"kind": "wrong_name"},
}
CERTIFICATE_FAULTS = ("expired", "wrong_name", "untrusted")

Direction = Literal["upstream", "downstream"]
DIRECTIONS = ("upstream", "downstream")


class FaultError(ValueError):
    """A fault definition that cannot be used; the message names the field."""


class FaultConflict(FaultError):
    """A fault whose name is taken in its scope (Toxiproxy answers 409)."""


@dataclass(frozen=True)
class Vocabulary:
    """The names a fault may refer to on this server; a fault naming anything else is refused."""

    listeners: tuple[str, ...]
    routes: tuple[str, ...]
    operations: tuple[str, ...]


@dataclass(frozen=True)
class Toxic:
    type: str
    direction: Direction
    toxicity: float
    attributes: Mapping[str, float]
    listener: str | None = None
    route: str | None = None
    name: str = ""
    seed: int | None = None
    id: str = ""
    revision: int = 0  # changes when the toxic is updated in place: connections draw again

    def applies_to(self, listener: str, route: str | None) -> bool:
        return self.listener in (None, listener) and self.route in (None, route)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "listener": self.listener,
            "route": self.route,
            "direction": self.direction,
            "stream": self.direction,
            "toxicity": self.toxicity,
            "seed": self.seed,
            "attributes": {k: _integral(v) for k, v in self.attributes.items()},
        }


@dataclass(frozen=True)
class S3Fault:
    type: str
    rate: float
    operation: str | None = None
    bucket: str | None = None
    prefix: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""
    seed: int | None = None
    id: str = ""

    @property
    def code(self) -> str | None:
        return str(self.attributes["code"]) if self.type == "s3_error" else None

    def applies_to(self, operation: str, bucket: str | None, key: str | None) -> bool:
        return (
            self.operation in (None, operation)
            and self.bucket in (None, bucket)
            and (self.prefix is None or (key or "").startswith(self.prefix))
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "operation": self.operation,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "rate": self.rate,
            "seed": self.seed,
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True)
class TlsFault:
    type: str
    rate: float
    attributes: Mapping[str, Any]
    listener: str | None = None
    sni: str | None = None  # a name or a *.pattern, as routes match
    name: str = ""
    seed: int | None = None
    id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "listener": self.listener,
            "sni": self.sni,
            "rate": self.rate,
            "seed": self.seed,
            "attributes": dict(self.attributes),
        }


Fault = Toxic | S3Fault | TlsFault
FAULT_TYPES = (*TOXIC_ATTRIBUTES, *S3_FAULT_ATTRIBUTES, *TLS_FAULT_ATTRIBUTES)


def parse_fault(document: Any, where: str = "fault", vocabulary: Vocabulary | None = None) -> Fault:
    """`vocabulary` None accepts any listener, route and operation name (no server to ask)."""
    if not isinstance(document, Mapping):
        raise FaultError(f"{where}: must be an object")
    kind = document.get("type")
    if kind in TOXIC_ATTRIBUTES:
        return _parse_toxic(document, where, vocabulary)
    if kind in S3_FAULT_ATTRIBUTES:
        return _parse_s3_fault(document, where, vocabulary)
    if kind in TLS_FAULT_ATTRIBUTES:
        return _parse_tls_fault(document, where, vocabulary)
    raise FaultError(f"{where}.type: {kind!r} is not one of {', '.join(FAULT_TYPES)}")


COMMON_FIELDS = {"id", "type", "name", "seed"}


def _parse_toxic(document: Mapping[str, Any], where: str, vocabulary: Vocabulary | None) -> Toxic:
    kind = str(document["type"])
    _reject_unknown(
        document, COMMON_FIELDS | {"listener", "route", "direction", "stream", "toxicity", "attributes"}, where
    )
    direction = document.get("direction", document.get("stream") or "downstream")
    if direction not in DIRECTIONS:
        raise FaultError(f"{where}.direction: must be upstream or downstream")
    defaults = TOXIC_ATTRIBUTES[kind]
    given = _attributes(document, where)
    aliases = ATTRIBUTE_ALIASES.get(kind, {})
    given = {aliases.get(name, name): value for name, value in given.items()}
    _reject_unknown(given, set(defaults), f"{where}.attributes")
    attributes = {
        name: _number(given.get(name, default), f"{where}.attributes.{name}") for name, default in defaults.items()
    }
    listener, route = _listener_and_route(document, where, vocabulary)
    return Toxic(
        type=kind,
        direction=direction,
        toxicity=_probability(document.get("toxicity", 1.0), f"{where}.toxicity"),
        attributes=attributes,
        listener=listener,
        route=route,
        name=_name(document, where) or f"{kind}_{direction}",
        seed=_seed(document, where),
    )


def _parse_s3_fault(document: Mapping[str, Any], where: str, vocabulary: Vocabulary | None) -> S3Fault:
    kind = str(document["type"])
    _reject_unknown(document, COMMON_FIELDS | {"operation", "bucket", "prefix", "rate", "attributes"}, where)
    defaults = S3_FAULT_ATTRIBUTES[kind]
    given = dict(_attributes(document, where))
    if kind == "s3_latency":
        given = {ATTRIBUTE_ALIASES["latency"].get(name, name): value for name, value in given.items()}
    _reject_unknown(given, set(defaults), f"{where}.attributes")
    attributes = {**defaults, **given}
    if kind == "s3_error":
        if attributes["code"] not in S3_ERRORS:
            raise FaultError(f"{where}.attributes.code: {attributes['code']!r} is not one of {', '.join(S3_ERRORS)}")
        _number(attributes["retry_after"], f"{where}.attributes.retry_after")
    elif kind == "truncate_body":
        attributes["fraction"] = _probability(attributes["fraction"], f"{where}.attributes.fraction")
    else:
        attributes = {k: _number(v, f"{where}.attributes.{k}") for k, v in attributes.items()}
    operation = _optional_str(document, "operation", where)
    if vocabulary is not None and operation is not None and operation not in vocabulary.operations:
        known = _known(vocabulary.operations)
        raise FaultError(f"{where}.operation: {operation!r} is not an S3 operation; known: {known}")
    return S3Fault(
        type=kind,
        rate=_probability(document.get("rate", 1.0), f"{where}.rate"),
        operation=operation,
        bucket=_optional_str(document, "bucket", where),
        prefix=_optional_str(document, "prefix", where),
        attributes=attributes,
        name=_name(document, where) or kind,
        seed=_seed(document, where),
    )


def _parse_tls_fault(document: Mapping[str, Any], where: str, vocabulary: Vocabulary | None) -> TlsFault:
    kind = str(document["type"])
    _reject_unknown(document, COMMON_FIELDS | {"listener", "sni", "rate", "attributes"}, where)
    defaults = TLS_FAULT_ATTRIBUTES[kind]
    given = _attributes(document, where)
    _reject_unknown(given, set(defaults), f"{where}.attributes")
    attributes = {**defaults, **given}
    if kind == "certificate":
        if attributes["kind"] not in CERTIFICATE_FAULTS:
            known = ", ".join(CERTIFICATE_FAULTS)
            raise FaultError(f"{where}.attributes.kind: {attributes['kind']!r} is not one of {known}")
    else:
        attributes = {k: _number(v, f"{where}.attributes.{k}") for k, v in attributes.items()}
    listener, _ = _listener_and_route({"listener": document.get("listener")}, where, vocabulary)
    sni = _optional_str(document, "sni", where)
    return TlsFault(
        type=kind,
        rate=_probability(document.get("rate", 1.0), f"{where}.rate"),
        attributes=attributes,
        listener=listener,
        sni=sni.lower() if sni else None,
        name=_name(document, where) or kind,
        seed=_seed(document, where),
    )


def _attributes(document: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    given = document.get("attributes", {})
    if not isinstance(given, Mapping):
        raise FaultError(f"{where}.attributes: must be an object")
    return given


def _listener_and_route(
    document: Mapping[str, Any], where: str, vocabulary: Vocabulary | None
) -> tuple[str | None, str | None]:
    listener = _optional_str(document, "listener", where)
    route = _optional_str(document, "route", where)
    if vocabulary is not None:
        if listener is not None and listener not in vocabulary.listeners:
            raise FaultError(f"{where}.listener: no listener named {listener!r}; known: {_known(vocabulary.listeners)}")
        if route is not None and route not in vocabulary.routes:
            raise FaultError(f"{where}.route: no route matches {route!r}; known: {_known(vocabulary.routes)}")
    return listener, route


def _known(names: Iterable[str]) -> str:
    return ", ".join(names) or "(none)"


def _reject_unknown(document: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in document:
        if key not in known:
            raise FaultError(f"{where}.{key}: unknown field; known: {', '.join(sorted(known)) or '(none)'}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultError(f"{where}: must be a number >= 0")
    return float(value)


def _integral(value: float) -> float | int:
    """Toxiproxy's attributes are integers; clients compare what they sent with what they get."""
    return int(value) if float(value).is_integer() else value


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


def _name(document: Mapping[str, Any], where: str) -> str | None:
    name = _optional_str(document, "name", where)
    if name is not None and "/" in name:
        raise FaultError(f"{where}.name: must not contain '/'")
    return name


def _seed(document: Mapping[str, Any], where: str) -> int | None:
    seed = document.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise FaultError(f"{where}.seed: must be an integer or null")
    return seed


def fault_scope(fault: Fault) -> tuple[str, ...]:
    """Where a fault's name must be unique: its proxy (listener, route) for a toxic, like
    Toxiproxy's toxic names per proxy; its kind and target otherwise."""
    if isinstance(fault, Toxic):
        return ("toxic", fault.listener or "", fault.route or "")
    if isinstance(fault, TlsFault):
        return ("tls", fault.listener or "", fault.sni or "")
    return ("s3", fault.operation or "", fault.bucket or "", fault.prefix or "")


class FaultObserver(Protocol):
    """Who counts faults: the metrics."""

    def fault_applied(self, fault: Fault) -> None: ...

    def faults_changed(self, active: Mapping[str, int]) -> None: ...


@dataclass
class FaultSet:
    """The faults in force and the proxies taken down; ids are assigned here, in order.

    Watchers (open connections) are called after every change, so that a toxic added, updated or
    removed, or a proxy taken down, reaches connections already open.
    """

    vocabulary: Vocabulary | None = None
    observer: FaultObserver | None = None
    _faults: dict[str, Fault] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _revisions: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _rngs: dict[str, random.Random] = field(default_factory=dict)
    _rng: random.Random = field(default_factory=random.Random)
    disabled: set[str] = field(default_factory=set)
    _watchers: dict[int, Callable[[], None]] = field(default_factory=dict)
    _watcher_ids: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    def from_documents(
        cls, documents: Iterable[Any], where: str = "faults", vocabulary: Vocabulary | None = None
    ) -> FaultSet:
        faults = cls(vocabulary=vocabulary)
        faults.load(documents, where)
        return faults

    def load(self, documents: Iterable[Any], where: str = "faults") -> None:
        """Replace every fault with `documents`; FaultError (nothing changes) if one is bad."""
        self.replace([self.parse(d, f"{where}[{i}]") for i, d in enumerate(documents)])

    def parse(self, document: Any, where: str = "fault") -> Fault:
        return parse_fault(document, where, self.vocabulary)

    # -- changes ------------------------------------------------------------------------------

    def add(self, fault: Fault) -> str:
        self._check_name(fault, None)
        fault = self._stamp(fault, f"f{next(self._ids)}")
        self._faults[fault.id] = fault
        self._changed()
        return fault.id

    def update(self, fault_id: str, fault: Fault) -> Fault:
        """Replace a fault in place: same id; open connections draw its toxicity again."""
        if fault_id not in self._faults:
            raise KeyError(fault_id)
        self._check_name(fault, fault_id)
        fault = self._stamp(fault, fault_id)
        self._faults[fault_id] = fault
        self._changed()
        return fault

    def replace(self, faults: Iterable[Fault]) -> None:
        faults = list(faults)
        names: set[tuple[tuple[str, ...], str]] = set()
        for fault in faults:
            key = (fault_scope(fault), fault.name)
            if key in names:
                raise FaultConflict(f"two faults named {fault.name!r} in the same scope")
            names.add(key)
        self._faults.clear()
        self._rngs.clear()
        for fault in faults:
            fault = self._stamp(fault, f"f{next(self._ids)}")
            self._faults[fault.id] = fault
        self._changed()

    def remove(self, fault_id: str) -> bool:
        found = self._faults.pop(fault_id, None) is not None
        self._rngs.pop(fault_id, None)
        if found:
            self._changed()
        return found

    def remove_toxics(self) -> None:
        for fault_id in [f.id for f in self._faults.values() if isinstance(f, Toxic)]:
            del self._faults[fault_id]
        self._changed()

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        (self.disabled.discard if enabled else self.disabled.add)(proxy)
        self._changed()

    def _stamp(self, fault: Fault, fault_id: str) -> Fault:
        stamped: Fault = replace(fault, id=fault_id)
        if isinstance(stamped, Toxic):
            stamped = replace(stamped, revision=next(self._revisions))
        self._rngs[fault_id] = random.Random(fault.seed) if fault.seed is not None else self._rng
        return stamped

    def _check_name(self, fault: Fault, keep: str | None) -> None:
        scope = fault_scope(fault)
        for other in self._faults.values():
            if other.id != keep and other.name == fault.name and fault_scope(other) == scope:
                raise FaultConflict(f"a fault named {fault.name!r} exists already ({other.id})")

    def _changed(self) -> None:
        if self.observer is not None:
            self.observer.faults_changed(Counter(f.type for f in self._faults.values()))
        for watcher in list(self._watchers.values()):
            watcher()

    # -- reading ------------------------------------------------------------------------------

    def all(self) -> list[Fault]:
        return list(self._faults.values())

    def get(self, fault_id: str) -> Fault | None:
        return self._faults.get(fault_id)

    def toxics_for(self, listener: str, route: str | None) -> list[Toxic]:
        """The toxics that apply to a connection, in the order they were added (Toxiproxy's
        chain order); whether this connection gets each is the caller's draw."""
        return [t for t in self._faults.values() if isinstance(t, Toxic) and t.applies_to(listener, route)]

    def s3_faults_for(self, operation: str, bucket: str | None, key: str | None) -> list[S3Fault]:
        return [f for f in self._faults.values() if isinstance(f, S3Fault) and f.applies_to(operation, bucket, key)]

    def tls_faults_for(self, listener: str, matches: Callable[[str], bool]) -> list[TlsFault]:
        """TLS faults of `listener` whose `sni` pattern `matches` accepts (None: every name)."""
        return [
            f
            for f in self._faults.values()
            if isinstance(f, TlsFault) and f.listener in (None, listener) and (f.sni is None or matches(f.sni))
        ]

    def enabled(self, listener: str, route: str | None = None) -> bool:
        """False when the listener, or the route as the proxy `listener:route`, is taken down."""
        return listener not in self.disabled and (route is None or proxy_name(listener, route) not in self.disabled)

    def random(self, fault: Fault) -> random.Random:
        """The fault's random source: its own when it has a `seed`, so its draws repeat run to run."""
        return self._rngs.get(fault.id, self._rng)

    def draw(self, fault: Fault, probability: float) -> bool:
        return probability >= 1.0 or self.random(fault).random() < probability

    def applied(self, fault: Fault) -> None:
        if self.observer is not None:
            self.observer.fault_applied(fault)

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` after every change; returns the function that stops it."""
        key = next(self._watcher_ids)
        self._watchers[key] = callback
        return lambda: self._watchers.pop(key, None) and None


def proxy_name(listener: str, route: str) -> str:
    """A route as a Toxiproxy proxy: `listener:match`."""
    return f"{listener}:{route}"
