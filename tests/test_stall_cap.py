"""`max_stalled`: a listener holds at most that many stalled connections. Beyond it the oldest stall
is closed (its client sees EOF), counted in /metrics, noted in its record and logged once per
minute, and a client that sends SNI is still served at once (issue 10, must-show 4).

The full-size run (5,000 no-SNI connections against the default cap of 4096) is
benchmarks/stall_cap.py; here the cap is 3.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio
import trio.testing

from mrapsim.edge.drop import Stall, StalledConnections
from tests.mrapsim_process import MrapsimProcess
from tests.test_diagnostics import counter_values, wait_until
from tests.tlsclient import client_hello_bytes, tls_handshake

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
CAP = 3


def gauge(server: MrapsimProcess, name: str, listener: str = "mrap") -> float:
    return counter_values(server, name).get((("listener", listener),), 0.0)


def stall_without_sni(server: MrapsimProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=10)
    sock.sendall(client_hello_bytes(None, ["h2", "http/1.1"]))
    return sock


def test_beyond_max_stalled_the_oldest_stall_is_closed_and_sni_is_served(start_server: Any) -> None:
    server = start_server(f"[listeners.mrap]\nmax_stalled = {CAP}\n")
    sockets = []
    try:
        for held in range(1, CAP + 1):
            sockets.append(stall_without_sni(server))
            wait_until(lambda held=held: gauge(server, "mrapsim_connections_stalled") == held)
        assert gauge(server, "mrapsim_stalled_evicted_total") == 0

        for evicted in range(1, CAP + 2):  # one more than the cap: every original stall goes, then one more
            sockets.append(stall_without_sni(server))
            wait_until(lambda evicted=evicted: gauge(server, "mrapsim_stalled_evicted_total") == evicted)
            oldest = sockets[evicted - 1]
            assert oldest.recv(1) == b"", "the oldest stall ends with EOF, not a ServerHello"
            assert gauge(server, "mrapsim_connections_stalled") == CAP

        for sock in sockets[-CAP:]:  # the newest are still stalled: open, nothing sent
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)

        # A client with SNI is served at once (well inside any connect timeout, let alone 300 s).
        with socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=5) as sock:
            tls = tls_handshake(sock, MRAP_HOST, server.ca, ["h2", "http/1.1"], timeout=5)
            tls.send(f"GET / HTTP/1.1\r\nHost: {MRAP_HOST}\r\nConnection: close\r\n\r\n".encode())
            assert tls.receive(12).startswith(b"HTTP/1.1 ")
        assert gauge(server, "mrapsim_connections_stalled") == CAP, "serving SNI evicts nothing"
    finally:
        for sock in sockets:
            sock.close()

    evicted_records = [
        r for r in server.connections(outcome="no_sni", limit=100) if "max_stalled" in (r["reason"] or "")
    ]
    assert len(evicted_records) == CAP + 1
    for record in evicted_records:
        assert record["action"] == "stall" and record["bytes_out"] == 0
        assert record["reason"].startswith("the ClientHello carried no server_name (SNI); closed early")
    # Four evictions, one log line: the log is limited per listener per minute.
    lines = [e for e in server.logs() if e.get("event") == "stall_evicted"]
    assert len(lines) == 1 and lines[0]["listener"] == "mrap" and lines[0]["max_stalled"] == CAP


def test_unknown_sni_stalls_share_the_cap(start_server: Any) -> None:
    server = start_server("[listeners.mrap]\nmax_stalled = 1\n")
    first = stall_without_sni(server)
    wait_until(lambda: gauge(server, "mrapsim_connections_stalled") == 1)
    with socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=10) as second:
        second.sendall(client_hello_bytes("not-a-route.example.com"))
        wait_until(lambda: gauge(server, "mrapsim_stalled_evicted_total") == 1)
        assert first.recv(1) == b""
        first.close()
    record = server.wait_for_connection(outcome="no_sni")
    assert record["action"] == "stall" and "max_stalled = 1" in record["reason"]


# --- StalledConnections on its own (trio, no sockets) ---------------------------------------------


async def hold_until_cancelled(stalls: StalledConnections, held: list[Stall], task_status: Any) -> None:
    with stalls.hold() as stall:
        held.append(stall)
        task_status.started()
        await trio.sleep_forever()


def test_stalled_connections_evict_oldest_first_and_count() -> None:
    heard: list[int] = []

    async def main() -> None:
        stalls = StalledConnections(limit=2, timeout=300, on_evict=heard.append)
        held: list[Stall] = []
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                await nursery.start(hold_until_cancelled, stalls, held)
                await trio.testing.wait_all_tasks_blocked()
                assert len(stalls) <= 2
            assert [stall.evicted for stall in held] == [True, True, True, False, False]
            assert len(stalls) == 2 and stalls.evicted_total == 3
            nursery.cancel_scope.cancel()
        assert len(stalls) == 0  # an ended stall leaves the set

    trio.run(main)
    assert heard == [1, 2, 3]


def test_a_stall_that_ends_by_itself_frees_its_place() -> None:
    async def main() -> None:
        stalls = StalledConnections(limit=1, timeout=300, on_evict=lambda total: None)
        with stalls.hold() as first:
            pass
        with stalls.hold() as second:
            assert len(stalls) == 1
        assert not first.evicted and not second.evicted and stalls.evicted_total == 0

    trio.run(main)


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        StalledConnections(limit=0, timeout=1, on_evict=lambda total: None)
