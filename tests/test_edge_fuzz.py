"""Hostile bytes against a live edge: every connection ends in a recorded outcome, none in an
internal error, and the listener keeps serving (no exception escapes a connection handler)."""

from __future__ import annotations

import socket
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.mrapsim_process import MrapsimProcess
from tests.tlsbuild import build_client_hello, to_records
from tests.tlsclient import tls_handshake

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
VALID = to_records(build_client_hello(sni=MRAP_HOST, grease=True, pq_share=True))


@st.composite
def hostile_streams(draw: Any) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    tail: bytes = draw(st.binary(max_size=64))
    return bytes(data[:cut]) + tail


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=hostile_streams())
def test_hostile_hellos_never_break_the_edge(start_server_once: MrapsimProcess, stream: bytes) -> None:
    with socket.create_connection(("127.0.0.1", start_server_once.port("mrap")), timeout=5) as sock:
        sock.sendall(stream)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        try:
            while sock.recv(4096):
                pass
        except (ConnectionError, TimeoutError):
            pass


def test_after_the_fuzzing_every_record_has_an_outcome_and_the_edge_still_serves(
    start_server_once: MrapsimProcess,
) -> None:
    records = start_server_once.connections(limit=10000)
    assert all(not (r["reason"] or "").startswith("internal error") for r in records)
    assert not any("Traceback" in line for line in start_server_once.log_lines)
    with socket.create_connection(("127.0.0.1", start_server_once.port("mrap")), timeout=5) as sock:
        assert tls_handshake(sock, MRAP_HOST, start_server_once.ca).version() == "TLSv1.3"
