"""The app as a plain ASGI callable, in-process: the edge's scope extension, auth mode "none",
HEAD bodies, lifespan."""

from __future__ import annotations

from typing import Any, cast

import trio

from mrapsim.config import load_config
from mrapsim.s3 import RequestRecord, create_app
from mrapsim.store import create_store


async def call(
    app: Any,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers or [(b"host", b"localhost")],
        "extensions": extensions or {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


def test_scope_extension_reaches_the_record_and_mode_none_admits_anonymous() -> None:
    config = load_config(overrides={"auth": {"mode": "none"}})
    records: list[RequestRecord] = []
    app = create_app(config, trio.run(create_store, config), on_request=records.append)
    trace = {"mrapsim": {"connection_id": "c-42", "listener": "mrap"}}

    async def main() -> None:
        status, headers, body = await call(app, "GET", "/mraps3sample/hello.txt", extensions=trace)
        assert (status, body) == (200, b"hello from mrapsim\n")
        assert headers[b"content-length"] == b"19" and b"x-amz-request-id" in headers
        status, headers, body = await call(app, "HEAD", "/mraps3sample/hello.txt")
        assert (status, body, headers[b"content-length"]) == (200, b"", b"19")
        status, _, body = await call(app, "HEAD", "/mraps3sample/missing")
        assert (status, body) == (404, b"")

    trio.run(main)
    first = records[0]
    assert (first.connection_id, first.listener, first.operation, first.access_key) == (
        "c-42",
        "mrap",
        "GetObject",
        None,
    )
    assert (first.status, first.bytes_out, first.addressing) == (200, 19, "path")
    assert (records[2].status, records[2].error_code, records[2].connection_id) == (404, "NoSuchKey", None)


def test_lifespan_is_acknowledged() -> None:
    config = load_config()
    app = create_app(config, trio.run(create_store, config))
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    # The app is Starlette-typed; trio.run only needs an async callable.
    trio.run(cast(Any, app), {"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
