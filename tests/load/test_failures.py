"""Failure classes against real sockets: stand-in servers that stall, reset, close, send an
alert, trickle, refuse, or answer with S3 errors; directly and through a CONNECT proxy."""

from __future__ import annotations

import socket
from functools import partial
from pathlib import Path

import pytest
import trio

from mrapsim.load import failures
from mrapsim.load.client import ConnectOptions, open_connection, parse_endpoint
from mrapsim.load.runner import RunOptions, run_load
from mrapsim.load.scenario import ConnectionMode, Scenario, TaskKind, TaskSpec
from tests.load import standins

SLOW_DOWN = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/xml\r\ncontent-length: 69\r\n\r\n"
    b"<Error><Code>SlowDown</Code><Message>Please reduce</Message></Error>\n"
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def outcome(
    port: int,
    sni: str | None = "localhost",
    ca: Path | None = None,
    proxy: str | None = None,
    handshake_timeout: float = 0.5,
) -> str:
    endpoint = parse_endpoint(f"https://localhost:{port}", f"127.0.0.1:{port}", proxy)
    options = ConnectOptions.create(str(ca) if ca else None, ca is None, handshake_timeout, 2.0)
    try:
        connection = await open_connection(endpoint, sni, options)
    except failures.TaskFailure as failure:
        return failure.failure
    await connection.aclose()
    return failures.OK


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (standins.serve_stall, failures.STALLED),
        (standins.serve_reset, failures.RESET),
        (standins.serve_close, failures.CLOSED),
        (standins.serve_alert, "alert:unrecognized_name"),
        (standins.serve_trickle, failures.TIMEOUT),
    ],
)
@pytest.mark.parametrize("sni", ["localhost", None])
def test_handshake_failures_are_classed(handler: standins.Handler, expected: str, sni: str | None) -> None:
    async def main() -> str:
        async with trio.open_nursery() as nursery:
            port = await standins.start(nursery, handler)
            found = await outcome(port, sni)
            nursery.cancel_scope.cancel()
        return found

    assert trio.run(main) == expected


def test_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert trio.run(outcome, port) == failures.REFUSED


def test_untrusted_certificate(tmp_path: Path) -> None:
    context, _ = standins.server_context(tmp_path / "server")
    _, other_ca = standins.server_context(tmp_path / "other")

    async def main() -> str:
        async with trio.open_nursery() as nursery:
            port = await standins.start(nursery, standins.canned_http(context, {"*": OK}))
            found = await outcome(port, ca=other_ca)
            nursery.cancel_scope.cancel()
        return found

    assert trio.run(main) == "tls:certificate_verify_failed"


def run_against(
    handler: standins.Handler,
    tasks: tuple[TaskSpec, ...],
    ca: Path | None,
    proxy_allows: bool | None = None,
    requests: int = 30,
) -> dict[str, dict[str, int]]:
    async def main() -> dict[str, dict[str, int]]:
        async with trio.open_nursery() as nursery:
            port = await standins.start(nursery, handler)
            proxy = None
            if proxy_allows is not None:
                proxy_port = await standins.start(nursery, partial(standins.serve_connect_proxy, allow=proxy_allows))
                proxy = f"http://127.0.0.1:{proxy_port}"
            options = RunOptions(
                endpoint=parse_endpoint(f"https://localhost:{port}", f"127.0.0.1:{port}", proxy),
                scenario=Scenario("t", tasks),
                users=3,
                duration=None,
                requests=requests,
                ca_bundle=str(ca) if ca else None,
                handshake_timeout=1.0,
                timeout=2.0,
                seed=1,
            )
            stats = await run_load(options, seed=False)
            nursery.cancel_scope.cancel()
        assert stats.total().requests == requests
        result = stats.failures_by_class()
        result["ok"] = {n: t.requests - t.failures for n, t in stats.tasks.items()}
        return result

    return trio.run(main)


def test_http_and_s3_errors_over_tls(tmp_path: Path) -> None:
    context, ca = standins.server_context(tmp_path)
    tasks = (
        TaskSpec("slow", TaskKind.GET, key="503/x"),
        TaskSpec("missing", TaskKind.GET, key="404/x"),
        TaskSpec("fine", TaskKind.HEAD, key="x", connection=ConnectionMode.NEW),
    )
    found = run_against(standins.canned_http(context, {"503": SLOW_DOWN, "404": NOT_FOUND, "*": OK}), tasks, ca)
    assert set(found) == {"s3:SlowDown", "http:404", "ok"}
    assert set(found["s3:SlowDown"]) == {"slow"} and set(found["http:404"]) == {"missing"}
    assert found["ok"]["fine"] > 0


def test_through_a_connect_proxy(tmp_path: Path) -> None:
    context, ca = standins.server_context(tmp_path)
    tasks = (TaskSpec("get", TaskKind.GET, key="x"), TaskSpec("hs", TaskKind.HANDSHAKE))
    found = run_against(standins.canned_http(context, {"*": OK}), tasks, ca, proxy_allows=True)
    assert set(found) == {"ok"} and sum(found["ok"].values()) == 30


def test_a_refusing_proxy_is_classed(tmp_path: Path) -> None:
    context, ca = standins.server_context(tmp_path)
    found = run_against(
        standins.canned_http(context, {"*": OK}),
        (TaskSpec("hs", TaskKind.HANDSHAKE),),
        ca,
        proxy_allows=False,
        requests=5,
    )
    assert found["proxy:403"] == {"hs": 5}


def test_a_stall_behind_a_proxy_is_still_a_stall() -> None:
    async def main() -> str:
        async with trio.open_nursery() as nursery:
            port = await standins.start(nursery, standins.serve_stall)
            proxy_port = await standins.start(nursery, partial(standins.serve_connect_proxy, allow=True))
            found = await outcome(port, proxy=f"http://127.0.0.1:{proxy_port}")
            nursery.cancel_scope.cancel()
        return found

    assert trio.run(main) == failures.STALLED
