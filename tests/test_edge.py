"""The SNI edge end to end: real sockets, real TLS, openssl s_client (issue 2 must-shows 1–4, 6)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.mrapsim_process import MrapsimProcess
from tests.tlsbuild import build_client_hello, extension, to_records
from tests.tlsclient import (
    client_hello_bytes,
    send_as_records,
    send_one_byte_at_a_time,
    tls_handshake,
)

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"


def s_client(port: int, *args: str, seconds: float = 10.0, stdin: str = "") -> str:
    completed = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=seconds,
    )
    return completed.stdout + completed.stderr


def connect(server: MrapsimProcess, listener: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port(listener)), timeout=10)


def test_openssl_with_sni_verifies_and_gets_http11_like_aws_s3(mrapsim: MrapsimProcess) -> None:
    """Offered h2 and http/1.1, the mrap listener picks http/1.1 by default, as AWS S3 does (see the
    comment on DEFAULT_TOML in mrapsim/config.py)."""
    out = s_client(
        mrapsim.port("mrap"),
        "-servername",
        MRAP_HOST,
        "-CAfile",
        str(mrapsim.ca),
        "-alpn",
        "h2,http/1.1",
    )
    assert "Verify return code: 0 (ok)" in out
    assert "ALPN protocol: http/1.1" in out
    record = mrapsim.wait_for_connection(sni=MRAP_HOST, listener="mrap")
    assert record["outcome"] == "forwarded"
    assert record["action"] == "forward:*.mrap.accesspoint.s3-global.amazonaws.com"
    assert record["alpn"] == "http/1.1" and record["tls_version"] == "TLSv1.3"
    assert record["alpn_offered"] == ["h2", "http/1.1"]
    assert record["ja4"].startswith("t13d") and record["ja3"]


def test_h2_on_mrap_is_a_configuration_choice(start_server: Any) -> None:
    server = start_server('[listeners.mrap]\nalpn = ["h2", "http/1.1"]\n')
    out = s_client(server.port("mrap"), "-servername", MRAP_HOST, "-CAfile", str(server.ca), "-alpn", "h2,http/1.1")
    assert "Verify return code: 0 (ok)" in out and "ALPN protocol: h2" in out


def test_no_sni_on_mrap_stalls_with_no_byte_back(mrapsim: MrapsimProcess) -> None:
    # openssl s_client -noservername: within 3 s nothing comes back and the connection stays open.
    process = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{mrapsim.port('mrap')}", "-noservername"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    time.sleep(3)
    still_running = process.poll() is None
    process.kill()
    out, _ = process.communicate(timeout=5)
    assert still_running, out
    assert "Server certificate" not in out and "SSL handshake has read" not in out
    record = mrapsim.wait_for_connection(outcome="no_sni", listener="mrap")
    assert record["action"] == "stall" and record["sni"] is None
    assert record["bytes_out"] == 0 and record["duration"] >= 2.5

    # The same with a raw socket: recv times out (open), rather than returning b"" (closed).
    with connect(mrapsim, "mrap") as sock:
        sock.sendall(client_hello_bytes(None, ["h2"]))
        sock.settimeout(2)
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_no_sni_on_s3_is_served(mrapsim: MrapsimProcess) -> None:
    out = s_client(mrapsim.port("s3"), "-noservername", "-CAfile", str(mrapsim.ca))
    assert "Verify return code: 0 (ok)" in out
    record = mrapsim.wait_for_connection(listener="s3", outcome="forwarded")
    assert record["sni"] is None


def test_no_sni_with_alert_action_gets_alert_112(start_server: Any) -> None:
    server = start_server('[listeners.mrap]\non_missing_sni = "alert:unrecognized_name"\n')
    out = s_client(server.port("mrap"), "-noservername")
    assert "unrecognized name" in out.lower()
    record = server.wait_for_connection(outcome="no_sni")
    assert record["action"] == "alert:unrecognized_name"
    assert record["bytes_out"] == 7


def test_unknown_sni_gets_the_configured_action(start_server: Any) -> None:
    server = start_server('[listeners.mrap]\non_unknown_sni = "reset"\n')
    with connect(server, "mrap") as sock:
        sock.sendall(client_hello_bytes("not-a-route.example.com"))
        with pytest.raises(ConnectionResetError):
            assert sock.recv(1) == b""
            sock.recv(1)
    record = server.wait_for_connection(outcome="unknown_sni")
    assert record["action"] == "reset" and record["sni"] == "not-a-route.example.com"


def test_unknown_sni_on_mrap_stalls_by_default(mrapsim: MrapsimProcess) -> None:
    with connect(mrapsim, "mrap") as sock:
        sock.sendall(client_hello_bytes("s3.amazonaws.com"))
        sock.settimeout(1.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)
    record = mrapsim.wait_for_connection(outcome="unknown_sni")
    assert record["action"] == "stall" and record["sni"] == "s3.amazonaws.com"


def test_ip_literal_sni_never_matches(start_server: Any) -> None:
    server = start_server('[listeners.mrap]\non_unknown_sni = "close"\n')
    with connect(server, "mrap") as sock:
        sock.sendall(to_records(build_client_hello(sni="127.0.0.1")))
        sock.settimeout(5)
        assert sock.recv(1) == b""
    assert server.wait_for_connection(outcome="unknown_sni")["sni"] == "127.0.0.1"


@pytest.mark.parametrize(
    "sender", [send_one_byte_at_a_time, send_as_records(3)], ids=["one-byte-writes", "three-records"]
)
def test_fragmented_client_hello_is_forwarded(mrapsim: MrapsimProcess, sender: Any) -> None:
    with connect(mrapsim, "mrap") as sock:
        tls = tls_handshake(sock, MRAP_HOST, mrapsim.ca, ["h2", "http/1.1"], first_flight=sender)
        assert tls.selected_alpn_protocol() == "http/1.1"
        assert tls.version() == "TLSv1.3"


def test_too_large_hello(start_server: Any, mrapsim: MrapsimProcess) -> None:
    # A handshake message of 16 KiB + 1 bytes, in two records (a record holds at most 16 KiB).
    hello = build_client_hello(sni=MRAP_HOST)
    padding = 16385 - len(hello) - 4
    big = build_client_hello(sni=MRAP_HOST, extra_extensions=[extension(0x0015, bytes(padding))])
    assert len(big) == 16385
    with connect(mrapsim, "mrap") as sock:
        sock.sendall(to_records(big, record_sizes=[16384, 1]))
        sock.settimeout(5)
        assert sock.recv(1) == b""
    assert mrapsim.wait_for_connection(outcome="too_large")["action"] == "close"


def test_garbage_is_not_tls(mrapsim: MrapsimProcess) -> None:
    with connect(mrapsim, "mrap") as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(1) == b""
    record = mrapsim.wait_for_connection(outcome="not_tls")
    assert record["reason"]


def test_silence_is_a_peek_timeout_at_the_deadline(start_server: Any) -> None:
    server = start_server('[listeners.mrap]\nclient_hello_timeout = "1s"\n')
    started = time.monotonic()
    with connect(server, "mrap") as sock:
        sock.settimeout(5)
        assert sock.recv(1) == b""
    elapsed = time.monotonic() - started
    record = server.wait_for_connection(outcome="peek_timeout")
    assert record["duration"] >= 0.9 and elapsed < 4


def test_client_closing_early_is_client_closed(mrapsim: MrapsimProcess) -> None:
    with connect(mrapsim, "mrap") as sock:
        sock.sendall(client_hello_bytes(MRAP_HOST)[:50])
    assert mrapsim.wait_for_connection(outcome="client_closed")


def test_tcp_route_splices_to_an_external_tls_server(start_server: Any, tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=passthrough.example.test",
            "-addext",
            "subjectAltName=DNS:passthrough.example.test",
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    upstream = subprocess.Popen(
        ["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", str(cert), "-key", str(key), "-rev"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    try:
        assert upstream.stdout is not None
        port = 0
        for line in upstream.stdout:
            if line.startswith("ACCEPT"):
                port = int(line.rsplit(":", 1)[1])
                break
        server = start_server(
            f"""
            [[listeners.mrap.routes]]
            match = "passthrough.example.test"
            target = "tcp://127.0.0.1:{port}"
            """
        )
        with connect(server, "mrap") as sock:
            tls = tls_handshake(sock, "passthrough.example.test", cert)
            peer = tls.getpeercert()
            assert peer and ("DNS", "passthrough.example.test") in peer["subjectAltName"]
            tls.send(b"hello mrapsim\n")
            assert b"olleh" in tls.receive(14)
        record = server.wait_for_connection(outcome="forwarded")
        assert record["action"] == "forward:passthrough.example.test"
        assert record["bytes_in"] > 200 and record["bytes_out"] > 200
    finally:
        upstream.kill()
        upstream.wait(timeout=5)


def test_sigterm_drains_then_exits(start_server: Any) -> None:
    server = start_server()
    assert server.admin_get("/readyz")["ready"] is True
    with connect(server, "mrap") as stalled:
        stalled.sendall(client_hello_bytes(None))
        time.sleep(0.2)
        started = time.monotonic()
        server.process.send_signal(15)
        time.sleep(0.5)
        try:
            server.admin_get("/readyz")
            raise AssertionError("readyz answered 200 while draining")
        except OSError as error:  # urllib's HTTPError for the 503
            assert "503" in str(error)
        assert server.process.wait(timeout=15) == 0
    assert time.monotonic() - started < 8


def test_a_drain_ends_when_the_last_connection_closes(start_server: Any) -> None:
    server = start_server()
    with connect(server, "mrap") as stalled:
        stalled.sendall(client_hello_bytes(None))
        time.sleep(0.2)
        server.process.send_signal(15)
        time.sleep(0.5)
        assert server.process.poll() is None  # draining: one connection is still open
        closed = time.monotonic()
    assert server.process.wait(timeout=15) == 0
    assert time.monotonic() - closed < 3  # the drain would otherwise last its 5 s


def test_sighup_reloads_renewed_certificates(start_server: Any) -> None:
    server = start_server()

    def served_certificate() -> bytes:
        with connect(server, "s3") as sock:
            der = tls_handshake(sock, "localhost", server.ca).getpeercert(binary_form=True)
        assert der
        return bytes(der)

    before = served_certificate()
    renewed = subprocess.run(
        [sys.executable, "-m", "mrapsim.cli", "certs", "--renew", "--certs-dir", str(server.certs_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert renewed.returncode == 0, renewed.stderr
    server.process.send_signal(signal.SIGHUP)
    assert server.wait_for_logs(lambda e: "certificates reloaded" in e.get("message", ""))
    after = served_certificate()  # verified against the same ca.pem
    assert after != before

    (server.certs_dir / "server.pem").write_text("not a certificate")
    server.process.send_signal(signal.SIGHUP)
    assert server.wait_for_logs(lambda e: "not reloaded" in e.get("message", ""))
    assert served_certificate() == after  # the previous certificate stays
