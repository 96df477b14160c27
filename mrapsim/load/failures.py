"""The names a failed task is classed under, and how an error becomes one.

One source of truth: the summary, the CSV `Error` column, the JSON report, the thresholds and
the tests all use these strings. A class is a short stable name (`stalled`, `reset`, …) or a
family prefix with a detail (`alert:unrecognized_name`, `http:503`, `s3:SlowDown`,
`tls:certificate_verify_failed`, `proxy:403`).
"""

from __future__ import annotations

import re
import ssl

from mrapsim.tls.alerts import read_alert_record

OK = "ok"
STALLED = "stalled"  # TCP connected, ClientHello sent, not one byte back before the deadline
RESET = "reset"  # TCP RST
CLOSED = "closed"  # FIN before a complete answer
TIMEOUT = "timeout"  # bytes came back, but the handshake or the response did not finish in time
CONNECT_TIMEOUT = "connect_timeout"  # no TCP connection in time
REFUSED = "refused"  # TCP connection refused or unreachable
PROTOCOL = "protocol"  # the server's bytes were not valid HTTP/1.1

_S3_CODE = re.compile(rb"<Code>([A-Za-z0-9_.-]{1,64})</Code>")


def alert(name: str) -> str:
    return f"alert:{name}"


def http(status: int) -> str:
    return f"http:{status}"


def s3(code: str) -> str:
    return f"s3:{code}"


def tls(reason: str) -> str:
    return f"tls:{reason}"


def proxy(status: int | str) -> str:
    return f"proxy:{status}"


def h2_reset(error_code: str) -> str:
    """An HTTP/2 stream reset by the server (RST_STREAM), by its error code name."""
    return f"h2_reset:{error_code.removeprefix('ErrorCodes.').lower()}"


NOT_H2 = "no_h2"  # the task asked for HTTP/2 and ALPN did not select it


class TaskFailure(Exception):
    """A task ended in a failure class; `failure` is the class name."""

    def __init__(self, failure: str, detail: str = "", retryable: bool = False) -> None:
        super().__init__(detail or failure)
        self.failure = failure
        self.retryable = retryable  # the server provably did not process the request


def alert_in(received: bytes) -> str | None:
    """The name of a plaintext TLS alert at the start of what the server sent, if it is one."""
    found = read_alert_record(received)
    return found.name if found else None


def classify_tls_error(error: BaseException, received: bytes) -> str:
    """The class of a TLS handshake that raised `error` after the server sent `received`."""
    name = alert_in(received)
    if name is not None:
        return alert(name)
    for cause in _causes(error):
        if isinstance(cause, ConnectionResetError):
            return RESET
        if isinstance(cause, ssl.SSLCertVerificationError):
            return tls("certificate_verify_failed")
        if isinstance(cause, ssl.SSLEOFError):
            return CLOSED
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or type(cause).__name__
            return tls(str(reason).lower())
    return CLOSED


def classify_stream_error(error: BaseException) -> str:
    """The class of an error while sending a request or reading its response."""
    for cause in _causes(error):
        if isinstance(cause, ConnectionResetError):
            return RESET
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLEOFError):
            return tls(str(cause.reason or type(cause).__name__).lower())
    return CLOSED


def classify_response(status: int, body_head: bytes) -> str:
    """The class of an error response: S3's error Code when the body carries one."""
    match = _S3_CODE.search(body_head)
    if match is not None:
        return s3(match.group(1).decode())
    return http(status)


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
