"""The names a failed task is classed under, and how an error becomes one.

One source of truth: the summary, the CSV `Error` column, the JSON report, the thresholds and
the tests all use these strings. A class is a short stable name (`stalled`, `reset`, …) or a
family prefix with a detail (`alert:unrecognized_name`, `http:503`, `s3:SlowDown`,
`tls:certificate_verify_failed`, `proxy:403`). What happens on the way to a handshake is named
by `mrapsim.tls.client_outcomes`, which `mrapsim probe` shares; the HTTP families are named here.
"""

from __future__ import annotations

import re

from mrapsim.tls.client_outcomes import ClientOutcome

OK = ClientOutcome.OK.value
STALLED = ClientOutcome.STALLED.value
RESET = ClientOutcome.RESET.value
CLOSED = ClientOutcome.CLOSED.value
TIMEOUT = ClientOutcome.TIMEOUT.value
CONNECT_TIMEOUT = ClientOutcome.CONNECT_TIMEOUT.value
REFUSED = ClientOutcome.REFUSED.value
PROTOCOL = "protocol"  # the server's bytes were not valid HTTP/1.1

_S3_CODE = re.compile(rb"<Code>([A-Za-z0-9_.-]{1,64})</Code>")


def http(status: int) -> str:
    return f"http:{status}"


def s3(code: str) -> str:
    return f"s3:{code}"


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


def classify_response(status: int, body_head: bytes) -> str:
    """The class of an error response: S3's error Code when the body carries one."""
    match = _S3_CODE.search(body_head)
    if match is not None:
        return s3(match.group(1).decode())
    return http(status)
