"""The vocabulary every connection ends with.

One source of truth for outcome and drop-action names: logs, metrics, the admin API, the load
harness and the tests all import them from here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mrapsim.tls.alerts import ALERT_CODES


class Outcome(enum.StrEnum):
    """How a connection on an edge listener ended."""

    FORWARDED = "forwarded"
    NO_SNI = "no_sni"
    UNKNOWN_SNI = "unknown_sni"
    NOT_TLS = "not_tls"
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    PEEK_TIMEOUT = "peek_timeout"
    CLIENT_CLOSED = "client_closed"
    BACKEND_ERROR = "backend_error"
    PROXY_DISABLED = "proxy_disabled"  # its listener or route was taken down (Toxiproxy's enabled: false)


class DropKind(enum.StrEnum):
    STALL = "stall"
    RESET = "reset"
    CLOSE = "close"
    ALERT = "alert"


@dataclass(frozen=True)
class DropAction:
    """What the edge does with a connection it will not forward; never sends a ServerHello."""

    kind: DropKind
    alert: str | None = None  # alert name, only for DropKind.ALERT

    def __post_init__(self) -> None:
        if (self.kind is DropKind.ALERT) != (self.alert is not None):
            raise ValueError("an alert name goes with the alert action, and only with it")
        if self.alert is not None and self.alert not in ALERT_CODES:
            raise ValueError(f"unknown alert {self.alert!r}")

    @classmethod
    def parse(cls, text: str) -> DropAction:
        """Parse `stall`, `reset`, `close` or `alert:<name>`; ValueError names what is allowed."""
        kind, _, alert = text.strip().partition(":")
        if kind == DropKind.ALERT and alert in ALERT_CODES:
            return cls(DropKind.ALERT, alert)
        if not alert and kind in (DropKind.STALL, DropKind.RESET, DropKind.CLOSE):
            return cls(DropKind(kind))
        raise ValueError(f"{text!r} is not a drop action; use one of {', '.join(DROP_ACTION_NAMES)}")

    def __str__(self) -> str:
        return f"alert:{self.alert}" if self.kind is DropKind.ALERT else self.kind.value


DROP_ACTION_NAMES: tuple[str, ...] = (
    "stall",
    "reset",
    "close",
    *(f"alert:{name}" for name in ALERT_CODES),
)
