"""S3 faults on one request (docs/faults.md): what no network tool can make, because it needs to
know the operation, the bucket and the key.

`s3_error` answers with an error S3 sends under stress (`SlowDown` and `ServiceUnavailable` with
`Retry-After`), `s3_latency` waits before the handler, `blackhole` reads the request and never
answers, `truncate_body` declares the whole length and sends part of it, then resets the
connection, and `corrupt_body` changes a byte of the body, keeping its length and its checksum
headers (so a client that validates checksums notices). The app calls `apply_request_faults`
once the operation is known and sends through `faulty_send` when a body fault was drawn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from starlette.types import Message, Send

from mrapsim.faults import S3_ERRORS, FaultSet, S3Fault
from mrapsim.s3.errors import S3Error

BODY_FAULTS = ("truncate_body", "corrupt_body")


@dataclass
class RequestFaults:
    """The faults one request got: their names for its record, and a body fault to send through."""

    names: list[str] = field(default_factory=list)
    body: S3Fault | None = None


async def apply_request_faults(
    faults: FaultSet, operation: str, bucket: str | None, key: str | None, got: RequestFaults
) -> None:
    """Each matching fault applies with its `rate`; an error is raised as the S3Error it names."""
    for fault in faults.s3_faults_for(operation, bucket, key):
        if not faults.draw(fault, fault.rate):
            continue
        faults.applied(fault)
        got.names.append(fault.name)
        a = fault.attributes
        match fault.type:
            case "s3_latency":
                jitter = faults.random(fault).uniform(-a["jitter"], a["jitter"])
                await trio.sleep(max(0.0, a["latency"] + jitter) / 1000)
            case "s3_error":
                status, message = S3_ERRORS[a["code"]]
                error = S3Error(a["code"], message, status)
                if status == 503:  # S3 asks clients under SlowDown to back off
                    error = error.with_headers(("retry-after", str(int(a["retry_after"]))))
                raise error
            case "blackhole":
                await trio.sleep_forever()  # the client's own timeout ends it
            case "truncate_body" | "corrupt_body":
                got.body = fault


def faulty_send(send: Send, fault: S3Fault, reset: Callable[[], Awaitable[None]] | None) -> Send:
    """`send` with `fault` applied to the response body (headers untouched)."""
    state: dict[str, Any] = {"sent": 0, "cut": None, "corrupted": False}

    async def truncating(message: Message) -> None:
        if message["type"] == "http.response.start":
            length = _content_length(message)
            state["cut"] = None if length is None else int(length * fault.attributes["fraction"])
            await send(message)
            return
        cut = state["cut"]
        body: bytes = message.get("body", b"")
        if cut is None or state["sent"] + len(body) < cut or (not body and state["sent"] < cut):
            state["sent"] += len(body)
            await send(message)
            return
        await send({"type": "http.response.body", "body": body[: cut - state["sent"]], "more_body": True})
        state["sent"] = cut
        if reset is not None:
            await reset()  # fewer bytes than declared, then a TCP RST
            await trio.sleep_forever()  # the server notices the connection is gone and cancels us
        raise TruncatedBody(f"the response body was cut at {cut} bytes by a truncate_body fault")

    async def corrupting(message: Message) -> None:
        body: bytes = message.get("body", b"")
        if message["type"] == "http.response.body" and body and not state["corrupted"]:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
            message = {**message, "body": body}
            state["corrupted"] = True
        await send(message)

    return truncating if fault.type == "truncate_body" else corrupting


class TruncatedBody(Exception):
    """A truncate_body fault ended a response without a connection to reset (no edge)."""


def _content_length(message: Message) -> int | None:
    for name, value in message.get("headers", []):
        if name.lower() == b"content-length":
            return int(value)
    return None
