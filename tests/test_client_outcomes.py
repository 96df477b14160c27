"""`mrapsim probe` and `mrapsim load` name the same server behaviour the same (issue 18, item 5):
both classify with `mrapsim.tls.client_outcomes`, against the same misbehaving stand-in servers."""

from __future__ import annotations

import socket
from functools import partial

import pytest
import trio

from mrapsim.load import failures
from mrapsim.load.client import ConnectOptions, open_connection, parse_endpoint
from mrapsim.probe import ProbeResult, parse_target, probe
from mrapsim.tls.client_outcomes import ClientOutcome
from tests.load import standins


async def load_class(port: int) -> str:
    endpoint = parse_endpoint(f"https://localhost:{port}", f"127.0.0.1:{port}")
    options = ConnectOptions.create(None, True, 0.5, 2.0)
    try:
        connection = await open_connection(endpoint, "localhost", options)
    except failures.TaskFailure as failure:
        return failure.failure
    await connection.aclose()
    return failures.OK


def probe_result(port: int) -> ProbeResult:
    target = parse_target(f"https://localhost:{port}", None, False, f"127.0.0.1:{port}")
    return probe(target, timeout=0.5, alpn=["http/1.1"], ca_bundle=None, insecure=True)


@pytest.mark.parametrize(
    ("handler", "outcome", "failure_class", "exit_code"),
    [
        (standins.serve_stall, ClientOutcome.STALLED, "stalled", 3),
        (standins.serve_reset, ClientOutcome.RESET, "reset", 4),
        (standins.serve_close, ClientOutcome.CLOSED, "closed", 5),
        (standins.serve_alert, ClientOutcome.ALERT, "alert:unrecognized_name", 6),
        (standins.serve_trickle, ClientOutcome.TIMEOUT, "timeout", 10),
    ],
)
def test_probe_and_load_agree(
    handler: standins.Handler, outcome: ClientOutcome, failure_class: str, exit_code: int
) -> None:
    async def main() -> tuple[ProbeResult, str]:
        async with trio.open_nursery() as nursery:
            port = await standins.start(nursery, handler)
            probed = await trio.to_thread.run_sync(partial(probe_result, port))
            loaded = await load_class(port)
            nursery.cancel_scope.cancel()
        return probed, loaded

    probed, loaded = trio.run(main)
    assert (probed.outcome, probed.failure_class, probed.exit_code) == (outcome, failure_class, exit_code)
    assert loaded == failure_class


def test_a_refusal_reads_the_same() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    probed = probe_result(port)
    assert (probed.failure_class, probed.exit_code) == ("refused", 7)
    assert trio.run(load_class, port) == "refused"
