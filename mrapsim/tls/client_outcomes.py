"""How a client's connection attempt ended, seen from the client: one vocabulary and one classifier.

`mrapsim probe` and `mrapsim load` both open TCP, send a ClientHello and watch what comes back;
they name what happened with these values so that the same event reads the same in a probe's
output and in a load run's failure table. A probe reports `exit_code`, the load harness
`failure_class` (the stable names its CSV, JSON and HTML reports use: `stalled`, `alert:<name>`,
`tls:<reason>`, …).

The classifier reads an observation — an exception raised while connecting or during the
handshake, possibly wrapped (trio raises `BrokenResourceError` caused by the `ssl.SSLError`),
with the first bytes the server sent — and needs no I/O. Two observations have no exception of
their own, so callers pass the stdlib one that means the same thing: `TimeoutError` when a
deadline passed, `EOFError` when the server closed the connection (FIN).
"""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass

from mrapsim.tls.alerts import Alert, read_alert_record


class ClientOutcome(enum.StrEnum):
    OK = "ok"  # the handshake completed (and the certificate is trusted, when that is checked)
    STALLED = "stalled"  # TCP connected, ClientHello sent, not one byte back before the deadline
    TIMEOUT = "timeout"  # bytes came back, but the handshake or the response did not finish in time
    RESET = "reset"  # TCP RST
    CLOSED = "closed"  # FIN before a complete answer
    ALERT = "alert"  # a plaintext fatal alert instead of a ServerHello
    REFUSED = "refused"  # TCP connection refused or unreachable
    CONNECT_TIMEOUT = "connect_timeout"  # no TCP connection in time
    UNTRUSTED = "untrusted"  # the handshake completed, the certificate is not trusted for the name
    INTERCEPTED = "intercepted"  # the handshake completed with a chain leading to none of the expected CAs
    HANDSHAKE_ERROR = "handshake_error"  # another TLS failure, named by the TLS library's reason


# `mrapsim probe`'s exit codes (README's table); 1 is a crash and 2 a usage error.
EXIT_CODES: dict[ClientOutcome, int] = {
    ClientOutcome.OK: 0,
    ClientOutcome.STALLED: 3,
    ClientOutcome.RESET: 4,
    ClientOutcome.CLOSED: 5,
    ClientOutcome.ALERT: 6,
    ClientOutcome.REFUSED: 7,
    ClientOutcome.CONNECT_TIMEOUT: 8,
    ClientOutcome.UNTRUSTED: 9,
    ClientOutcome.HANDSHAKE_ERROR: 10,
    ClientOutcome.TIMEOUT: 10,  # "another handshake failure": the server started and stopped
    ClientOutcome.INTERCEPTED: 11,
}

CERTIFICATE_VERIFY_FAILED = "certificate_verify_failed"


@dataclass(frozen=True)
class HandshakeOutcome:
    """One classified observation: the kind, and what names it further."""

    kind: ClientOutcome
    alert: Alert | None = None  # only for ALERT
    reason: str | None = None  # the TLS library's reason, lower case: for UNTRUSTED and HANDSHAKE_ERROR

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]

    @property
    def failure_class(self) -> str:
        """The load harness's name: the kind, or a family with its detail."""
        if self.kind is ClientOutcome.ALERT and self.alert is not None:
            return f"alert:{self.alert.name}"
        if self.kind is ClientOutcome.UNTRUSTED:
            return f"tls:{CERTIFICATE_VERIFY_FAILED}"
        if self.kind is ClientOutcome.HANDSHAKE_ERROR:
            return f"tls:{self.reason or 'error'}"
        return self.kind.value


def classify(error: BaseException, received: bytes | bytearray = b"", *, connected: bool = True) -> HandshakeOutcome:
    """The outcome of an attempt that ended with `error` after the server sent `received`.

    `connected` is False while the TCP connection is still being made. `received` need only hold
    the first bytes since the ClientHello: seven tell a plaintext alert, one tells a stall.
    """
    causes = _causes(error)
    if not connected:
        timed_out = any(isinstance(cause, TimeoutError) for cause in causes)
        return HandshakeOutcome(ClientOutcome.CONNECT_TIMEOUT if timed_out else ClientOutcome.REFUSED)
    alert = read_alert_record(received)
    if alert is not None:
        return HandshakeOutcome(ClientOutcome.ALERT, alert=alert)
    for cause in causes:
        if isinstance(cause, ConnectionResetError):
            return HandshakeOutcome(ClientOutcome.RESET)
        if isinstance(cause, TimeoutError):
            return HandshakeOutcome(ClientOutcome.TIMEOUT if received else ClientOutcome.STALLED)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return HandshakeOutcome(ClientOutcome.UNTRUSTED, reason=CERTIFICATE_VERIFY_FAILED)
        if isinstance(cause, ssl.SSLEOFError | EOFError):
            return HandshakeOutcome(ClientOutcome.CLOSED)
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or type(cause).__name__
            return HandshakeOutcome(ClientOutcome.HANDSHAKE_ERROR, reason=str(reason).lower())
    # A transport that broke with no reason of its own (a closed trio stream, a broken pipe):
    # the server went away, which is what a FIN looks like from here.
    return HandshakeOutcome(ClientOutcome.CLOSED)


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
