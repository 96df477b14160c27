"""Faults: parsing, the /faults admin API, and toxics on real connections."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import random
import socket
import ssl
import time
from dataclasses import replace
from typing import Any

import pytest

from mrapsim.edge.toxics import LinkState, Piece, Plan, plan_chunk
from mrapsim.faults import FaultError, FaultSet, S3Fault, Toxic, parse_fault
from tests.tlsclient import client_hello_bytes, tls_handshake


def test_parse_toxic_with_toxiproxy_vocabulary() -> None:
    toxic = parse_fault(
        {
            "type": "latency",
            "listener": "s3",
            "direction": "downstream",
            "toxicity": 0.5,
            "attributes": {"latency": 200, "jitter": 10},
        }
    )
    assert isinstance(toxic, Toxic) and toxic.attributes == {"latency": 200, "jitter": 10}
    assert toxic.toxicity == 0.5 and toxic.listener == "s3" and toxic.name == "latency_downstream"
    older = parse_fault({"type": "latency", "attributes": {"latency_ms": 200, "jitter_ms": 10}})
    assert isinstance(older, Toxic) and older.attributes == toxic.attributes  # 0.1's spelling still reads


def test_parse_s3_fault() -> None:
    fault = parse_fault(
        {"type": "s3_error", "operation": "ListObjectsV2", "rate": 1.0, "attributes": {"code": "SlowDown"}}
    )
    assert isinstance(fault, S3Fault) and fault.code == "SlowDown"
    assert fault.applies_to("ListObjectsV2", "b", "k") and not fault.applies_to("GetObject", "b", "k")


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"type": "lag"}, "fault.type"),
        ({"type": "latency", "direction": "sideways"}, "fault.direction"),
        ({"type": "latency", "toxicity": 2}, "fault.toxicity"),
        ({"type": "latency", "attributes": {"delay": 1}}, "fault.attributes.delay"),
        ({"type": "bandwidth", "attributes": {"rate": -1}}, "fault.attributes.rate"),
        ({"type": "s3_error", "attributes": {"code": "Teapot"}}, "fault.attributes.code"),
        ({"type": "s3_error", "colour": 1}, "fault.colour"),
        ([], "fault"),
    ],
)
def test_bad_faults_name_the_field(document: Any, field: str) -> None:
    with pytest.raises(FaultError) as caught:
        parse_fault(document)
    assert str(caught.value).startswith(field)


def test_toxicity_is_a_per_connection_probability_and_a_seed_repeats_it() -> None:
    def draws(seed: int) -> list[bool]:
        faults = FaultSet.from_documents([{"type": "latency", "toxicity": 0.25, "seed": seed}])
        [toxic] = faults.toxics_for("s3", None)
        return [faults.draw(toxic, toxic.toxicity) for _ in range(4000)]

    assert 850 < sum(draws(7)) < 1150
    assert draws(7) == draws(7) and draws(7) != draws(8)


def admin(server: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    answer: tuple[int, Any] = server.admin_call(method, path, data, {"content-type": "application/json"})
    return answer


def test_faults_admin_api(start_server: Any) -> None:
    server = start_server('[[faults]]\ntype = "latency"\nattributes = { latency = 1 }\n')
    status, listed = admin(server, "GET", "/faults")
    assert status == 200 and [f["type"] for f in listed] == ["latency"]
    status, created = admin(
        server,
        "POST",
        "/faults",
        {"type": "s3_error", "operation": "ListObjectsV2", "attributes": {"code": "SlowDown"}},
    )
    assert status == 201
    status, listed = admin(server, "GET", "/faults")
    assert [f["id"] for f in listed][-1] == created["id"]
    assert admin(server, "DELETE", f"/faults/{created['id']}")[0] == 204
    assert admin(server, "DELETE", f"/faults/{created['id']}")[0] == 404
    status, replaced = admin(server, "PUT", "/faults", [{"type": "limit_data", "attributes": {"bytes": 10}}])
    assert status == 200 and [f["type"] for f in replaced] == ["limit_data"]
    status, error = admin(server, "PUT", "/faults", {"type": "latency"})
    assert status == 400 and "list" in error["error"]
    status, error = admin(server, "POST", "/faults", {"type": "latency", "direction": "sideways"})
    assert status == 400 and "direction" in error["error"]


def test_latency_toxic_delays_the_handshake(start_server: Any) -> None:
    server = start_server()

    def handshake_seconds() -> float:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port("s3")), timeout=10) as sock:
            tls_handshake(sock, "localhost", server.ca)
        return time.monotonic() - started

    admin(
        server,
        "POST",
        "/faults",
        {"type": "latency", "listener": "s3", "direction": "downstream", "attributes": {"latency": 400}},
    )
    assert handshake_seconds() >= 0.4


def test_reset_peer_toxic_resets_forwarded_connections(start_server: Any) -> None:
    server = start_server()
    admin(
        server,
        "POST",
        "/faults",
        {"type": "reset_peer", "listener": "s3", "direction": "upstream", "attributes": {"timeout": 0}},
    )
    with (
        socket.create_connection(("127.0.0.1", server.port("s3")), timeout=10) as sock,
        pytest.raises((ConnectionError, OSError)),
    ):
        tls_handshake(sock, "localhost", server.ca)


def test_s3_faults_apply_to_matching_requests(start_server: Any) -> None:
    from botocore.exceptions import ClientError

    server = start_server()
    client = server.s3_client()
    admin(
        server,
        "POST",
        "/faults",
        {"type": "s3_error", "operation": "ListObjectsV2", "attributes": {"code": "SlowDown"}},
    )
    with pytest.raises(ClientError) as caught:
        client.list_objects_v2(Bucket="mraps3sample")
    assert caught.value.response["Error"]["Code"] == "SlowDown"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert client.get_object(Bucket="mraps3sample", Key="hello.txt")["Body"].read()  # other operations pass

    admin(
        server,
        "PUT",
        "/faults",
        [{"type": "s3_latency", "operation": "GetObject", "prefix": "hello", "attributes": {"latency": 400}}],
    )
    started = time.monotonic()
    client.get_object(Bucket="mraps3sample", Key="hello.txt")
    assert time.monotonic() - started >= 0.4
    assert client.list_objects_v2(Bucket="mraps3sample")["KeyCount"] > 0


# -- toxics as Toxiproxy applies them: the plan of one chunk (edge/toxics.py, no clock) ---------


def toxic(kind: str, toxic_id: str = "t1", **attributes: float) -> Toxic:
    parsed = parse_fault({"type": kind, "attributes": attributes})
    assert isinstance(parsed, Toxic)
    return replace(parsed, id=toxic_id)


def plan(toxics: list[Toxic], arrived: float, data: bytes, state: LinkState | None = None) -> Plan:
    rng = random.Random(1)
    return plan_chunk(toxics, arrived, data, state or LinkState(), lambda _: rng)


def test_latency_is_relative_to_arrival_per_chunk() -> None:
    """latency.go: each chunk leaves `latency` after it arrived — two chunks that arrived 1 ms
    apart leave 1 ms apart, not one latency after the other."""
    latency = toxic("latency", latency=300)
    first, second = plan([latency], 10.0, b"a"), plan([latency], 10.001, b"b")
    assert first.pieces == (Piece(10.3, b"a"),) and second.pieces[0].at == pytest.approx(10.301)
    jittered = [plan([toxic("latency", latency=100, jitter=20)], 0.0, b"x").pieces[0].at for _ in range(50)]
    assert all(0.08 <= at < 0.12 for at in jittered)


def test_bandwidth_paces_bytes_at_the_rate_in_100ms_slices() -> None:
    state = LinkState()
    paced = plan([toxic("bandwidth", rate=10)], 0.0, b"x" * 2500, state)  # 10 KB/s: 1000 bytes a 100 ms
    assert [len(p.data) for p in paced.pieces] == [1000, 1000, 500]
    assert [p.at for p in paced.pieces] == pytest.approx([0.1, 0.2, 0.25])
    after = plan([toxic("bandwidth", rate=10)], 0.0, b"y" * 100, state)  # the pipe is busy until 0.25
    assert after.pieces[0].at == pytest.approx(0.26)


def test_slicer_splits_and_spaces_pieces() -> None:
    sliced = plan([toxic("slicer", average_size=10, size_variation=3, delay=1000)], 0.0, bytes(range(100)))
    assert b"".join(p.data for p in sliced.pieces) == bytes(range(100))
    assert all(1 <= len(p.data) <= 13 for p in sliced.pieces) and len(sliced.pieces) >= 7
    assert [p.at for p in sliced.pieces] == pytest.approx([i / 1000 for i in range(len(sliced.pieces))])


def test_limit_data_closes_once_the_limit_is_reached() -> None:
    state = LinkState()
    assert plan([toxic("limit_data", bytes=10)], 0.0, b"123456", state) == Plan((Piece(0.0, b"123456"),))
    assert plan([toxic("limit_data", bytes=10)], 1.0, b"789abc", state) == Plan((Piece(1.0, b"789a"),), "close", 1.0)


def test_timeout_drops_data_and_reset_peer_resets_after_its_timeout() -> None:
    assert plan([toxic("timeout", timeout=0)], 0.0, b"data") == Plan(())
    assert plan([toxic("reset_peer", timeout=500)], 2.0, b"data") == Plan((), "reset", 2.5)
    assert plan([toxic("latency", latency=100), toxic("slow_close", "t2", delay=10)], 0.0, b"d").pieces[0].at == 0.1


# -- must-show 1: a toxic reaches a pooled connection, and leaves it --------------------------


def timed_get(client: Any) -> float:
    started = time.perf_counter()
    client.get_object(Bucket="mraps3sample", Key="hello.txt")["Body"].read()
    return time.perf_counter() - started


def test_latency_toxic_reaches_and_leaves_a_pooled_boto3_connection(start_server: Any) -> None:
    """The issue's scenario: boto3 keeps one connection; a 300 ms latency toxic added at run time
    shows on its next GET (300 ms ±20 %), and deleting it restores the baseline on the same
    connection — one connection throughout."""
    server = start_server()
    client = server.s3_client()
    for _ in range(3):
        timed_get(client)  # warm: TLS, the pool, the object
    baseline = min(timed_get(client) for _ in range(5))
    status, created = admin(
        server, "POST", "/faults", {"type": "latency", "listener": "s3", "attributes": {"latency": 300}}
    )
    assert status == 201
    poisoned = [timed_get(client) for _ in range(3)]
    assert admin(server, "DELETE", f"/faults/{created['id']}")[0] == 204
    healed = min(timed_get(client) for _ in range(5))
    print(
        f"baseline {baseline * 1000:.1f} ms, with 300 ms latency {[round(t * 1000, 1) for t in poisoned]} ms, "
        f"after delete {healed * 1000:.1f} ms"
    )
    reference = min(baseline, healed)  # the same connection without the toxic, before and after
    assert all(seconds - reference >= 0.24 for seconds in poisoned)  # every GET: +300 ms ±20 %
    assert min(poisoned) - reference <= 0.36  # (the bound above: a busy machine only adds)
    assert healed < reference + 0.05
    [record] = server.connections(listener="s3", state="open")  # boto3 kept one connection throughout
    assert record["requests"] == 3 + 5 + 3 + 5 and record["faults"] == ["latency_downstream"]


# -- S3 faults: what no network tool can make -------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "retry_after"),
    [
        ("SlowDown", 503, "2"),
        ("ServiceUnavailable", 503, "2"),
        ("InternalError", 500, None),
        ("RequestTimeout", 400, None),
    ],
)
def test_s3_errors_under_stress(start_server_once: Any, code: str, status: int, retry_after: str | None) -> None:
    from botocore.exceptions import ClientError

    server = start_server_once
    attributes = {"code": code, "retry_after": 2}
    fault = {"type": "s3_error", "operation": "GetObject", "prefix": "hello", "attributes": attributes}
    assert admin(server, "PUT", "/faults", [{**fault, "name": "stress"}])[0] == 200
    client = server.s3_client()
    with pytest.raises(ClientError) as caught:
        client.get_object(Bucket="mraps3sample", Key="hello.txt")
    response = caught.value.response
    assert response["Error"]["Code"] == code and response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["ResponseMetadata"]["HTTPHeaders"].get("retry-after") == retry_after
    assert client.head_object(Bucket="mraps3sample", Key="hello.txt")  # another operation passes
    records = server.wait_for_logs(lambda r: r.get("operation") == "GetObject" and r.get("error_code") == code)
    assert records[-1]["faults"] == ["stress"]  # marked on the request record
    admin(server, "PUT", "/faults", [])


def test_blackhole_reads_the_request_and_never_answers(start_server_once: Any) -> None:
    from botocore.exceptions import ReadTimeoutError

    server = start_server_once
    admin(server, "PUT", "/faults", [{"type": "blackhole", "operation": "ListObjectsV2"}])
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        server.s3_client(read_timeout=1).list_objects_v2(Bucket="mraps3sample")
    assert time.monotonic() - started >= 1
    admin(server, "PUT", "/faults", [])


def test_truncated_body_declares_the_length_sends_less_then_resets(start_server_once: Any) -> None:
    server = start_server_once
    body = bytes(range(256)) * 400
    server.s3_client().put_object(Bucket="mraps3sample", Key="truncated.bin", Body=body)
    truncate = {"type": "truncate_body", "prefix": "truncated", "attributes": {"fraction": 0.25}}
    admin(server, "PUT", "/faults", [truncate])
    context = ssl.create_default_context(cafile=str(server.ca))
    connection = http.client.HTTPSConnection("localhost", server.port("s3"), context=context, timeout=10)
    connection.request("GET", "/mraps3sample/truncated.bin", headers=unsigned_headers(server))
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("content-length") == str(len(body))
    with pytest.raises((http.client.IncompleteRead, ConnectionError)) as caught:
        response.read()
    if isinstance(caught.value, http.client.IncompleteRead):
        assert len(caught.value.partial) == len(body) // 4
    admin(server, "PUT", "/faults", [])


def unsigned_headers(server: Any, path: str = "/mraps3sample/truncated.bin") -> dict[str, str]:
    """SigV4 headers for a GET of `path` from botocore's signer, for a client that is not boto3."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tests.mrapsim_process import ACCESS_KEY, SECRET_KEY

    request = AWSRequest("GET", f"https://localhost:{server.port('s3')}{path}")
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def test_corrupt_body_is_noticed_by_aws_cli_checksum_validation(start_server_once: Any, tmp_path: Any) -> None:
    """Must-show 3: the body keeps its length and its (now stale) checksum headers; aws-cli, which
    validates response checksums, reports the mismatch instead of writing the file."""
    from tests.test_awscli_edge import aws

    server = start_server_once
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 64)
    uploaded = aws(server, "s3", "cp", str(source), "s3://mraps3sample/corrupt/object.bin")
    assert uploaded.returncode == 0, uploaded.stderr
    admin(server, "PUT", "/faults", [{"type": "corrupt_body", "operation": "GetObject", "prefix": "corrupt/"}])
    target = tmp_path / "target.bin"
    result = aws(server, "s3", "cp", "s3://mraps3sample/corrupt/object.bin", str(target))
    print(result.stderr)
    assert result.returncode != 0 and "checksum" in result.stderr.lower()
    assert not target.exists()
    admin(server, "PUT", "/faults", [])
    assert aws(server, "s3", "cp", "s3://mraps3sample/corrupt/object.bin", str(target)).returncode == 0
    assert target.read_bytes() == source.read_bytes()


def test_a_bad_fault_in_the_file_exits_2_naming_the_known_listeners(tmp_path: Any) -> None:
    import subprocess
    import sys

    config = tmp_path / "faults.toml"
    config.write_text('[[faults]]\ntype = "latency"\nlistener = "s4"\n')
    result = subprocess.run(
        [sys.executable, "-m", "mrapsim.cli", "serve", "--config", str(config), "--certs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "faults[0].listener: no listener named 's4'; known: mrap, s3" in result.stderr


# -- toxics on live connections ---------------------------------------------------------------


def test_latency_is_added_once_to_a_large_body_not_per_write(start_server: Any) -> None:
    """The issue saw 20 ms of latency make a 4 MiB GET ~400 ms slower: a delay per write. Per
    chunk relative to arrival (Toxiproxy), the body arrives about one latency later."""
    server = start_server()
    client = server.s3_client()
    client.put_object(Bucket="mraps3sample", Key="large.bin", Body=b"x" * (4 << 20))

    def large_get() -> float:
        started = time.perf_counter()
        client.get_object(Bucket="mraps3sample", Key="large.bin")["Body"].read()
        return time.perf_counter() - started

    large_get()
    baseline = min(large_get() for _ in range(3))
    admin(server, "POST", "/faults", {"type": "latency", "listener": "s3", "attributes": {"latency": 50}})
    slowed = min(large_get() for _ in range(3))
    print(f"4 MiB GET: {baseline * 1000:.0f} ms, with 50 ms latency {slowed * 1000:.0f} ms")
    # No byte leaves before 50 ms; a delay per write (~256 TLS records) would add seconds.
    assert slowed >= 0.05 and slowed - baseline < 0.25


def test_bandwidth_limits_an_open_connection(start_server: Any) -> None:
    server = start_server()
    client = server.s3_client()
    client.put_object(Bucket="mraps3sample", Key="paced.bin", Body=b"p" * 100_000)
    client.get_object(Bucket="mraps3sample", Key="paced.bin")["Body"].read()  # the connection is pooled
    admin(server, "POST", "/faults", {"type": "bandwidth", "listener": "s3", "attributes": {"rate": 100}})
    started = time.perf_counter()
    client.get_object(Bucket="mraps3sample", Key="paced.bin")["Body"].read()
    assert time.perf_counter() - started >= 0.9  # 100 KB at 100 KB/s


def keep_alive(server: Any) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(server.ca))
    connection = http.client.HTTPSConnection("localhost", server.port("s3"), context=context, timeout=10)
    connection.request("GET", "/", headers=unsigned_headers(server, "/"))
    connection.getresponse().read()
    return connection


def wait_for_peer(server: Any, port: int, timeout: float) -> dict[str, Any]:
    """The closed record of the connection whose client side is on `port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in server.connections(listener="s3", state="closed"):
            if record["peer"].rsplit(":", 1)[-1] == str(port):
                return dict(record)
        time.sleep(0.05)
    raise AssertionError(f"no closed record for the connection from port {port} within {timeout} s")


def test_limit_data_and_timeout_end_open_connections(start_server: Any) -> None:
    server = start_server()
    connection = keep_alive(server)
    admin(server, "POST", "/faults", {"type": "limit_data", "listener": "s3", "attributes": {"bytes": 100}})
    with pytest.raises((http.client.HTTPException, OSError)):
        connection.request("GET", "/", headers=unsigned_headers(server, "/"))
        connection.getresponse().read()
    admin(server, "PUT", "/faults", [])
    idle = keep_alive(server)  # open and idle, like a pooled connection
    added = time.time()
    admin(server, "PUT", "/faults", [{"type": "timeout", "listener": "s3", "attributes": {"timeout": 300}}])
    # The idle connection's own record: the limit_data connection may close about now too.
    peer_port = idle.sock.getsockname()[1] if idle.sock else -1
    record = wait_for_peer(server, peer_port, timeout=5)
    ended = dt.datetime.fromisoformat(record["start"].replace("Z", "+00:00")).timestamp() + record["duration"]
    assert record["faults"] == ["timeout_downstream"] and 0.3 <= ended - added < 3  # 300 ms with no data
    idle.close()


def test_a_listener_taken_down_cuts_open_connections_and_refuses_new_ones(start_server: Any) -> None:
    server = start_server()
    connection = keep_alive(server)
    status, proxy = admin(server, "POST", "/proxies/s3", {"enabled": False})
    assert status == 200 and proxy["enabled"] is False
    with pytest.raises((http.client.HTTPException, OSError)):
        connection.request("GET", "/", headers=unsigned_headers(server, "/"))
        connection.getresponse().read()
    with pytest.raises(OSError):
        keep_alive(server)
    admin(server, "POST", "/proxies/s3", {"enabled": True})
    keep_alive(server).close()


def test_slicer_both_ways_keeps_the_bytes_intact(start_server: Any) -> None:
    """Sliced into small pieces each way on an open connection (the upstream read-ahead path
    too), a PUT and a GET still carry exactly their bytes."""
    server = start_server()
    client = server.s3_client()
    client.list_objects_v2(Bucket="mraps3sample")  # the connection is open and pooled
    for stream in ("upstream", "downstream"):
        slicer = {"average_size": 500, "size_variation": 200, "delay": 10}
        fault = {"type": "slicer", "listener": "s3", "stream": stream, "seed": 3, "attributes": slicer}
        assert admin(server, "POST", "/faults", fault)[0] == 201
    body = bytes(random.Random(5).randbytes(100_000))
    client.put_object(Bucket="mraps3sample", Key="sliced.bin", Body=body)
    assert client.get_object(Bucket="mraps3sample", Key="sliced.bin")["Body"].read() == body
    [record] = server.connections(listener="s3", state="open")
    assert record["faults"] == ["slicer_upstream", "slicer_downstream"]


def test_a_tcp_route_that_cannot_connect_is_a_backend_error_and_its_toxics_reach_the_splice(
    start_server: Any,
) -> None:
    """Through the toxic stream's nursery a backend that cannot be reached is still the
    connection's `backend_error`; a reachable tcp:// route carries its toxics on the spliced bytes."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    upstream = start_server()
    config = (
        "[[listeners.mrap.routes]]\n"
        f'match = "down.example.com"\ntarget = "tcp://127.0.0.1:{closed_port}"\n'
        "[[listeners.mrap.routes]]\n"
        f'match = "up.example.com"\ntarget = "tcp://127.0.0.1:{upstream.port("s3")}"\n'
    )
    server = start_server(config)
    with socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=10) as sock:
        sock.sendall(client_hello_bytes("down.example.com"))
        sock.recv(1)
    assert server.wait_for_connection(sni="down.example.com", state="closed")["outcome"] == "backend_error"
    latency = {"type": "latency", "route": "up.example.com", "attributes": {"latency": 300}}
    assert admin(server, "POST", "/faults", latency)[0] == 201
    started = time.monotonic()
    with (
        socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=10) as sock,
        pytest.raises(ssl.SSLCertVerificationError),  # the upstream's certificate is for localhost
    ):
        tls_handshake(sock, "up.example.com", upstream.ca)
    assert time.monotonic() - started >= 0.3


def test_slow_close_holds_the_close_after_the_last_byte(start_server: Any) -> None:
    """mrapsim closes after answering `Connection: close`; a slow_close toxic holds that close
    (the TCP FIN; TLS's close_notify is bytes, and passes)."""
    server = start_server()
    admin(server, "POST", "/faults", {"type": "slow_close", "listener": "s3", "attributes": {"delay": 600}})
    context = ssl.create_default_context(cafile=str(server.ca))
    with (
        socket.create_connection(("127.0.0.1", server.port("s3")), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        received = b""
        while b"</Error>" not in received:
            received += tls.recv(65536)
        answered = time.time()
    record = server.wait_for_connection(listener="s3", state="closed")
    closed = dt.datetime.fromisoformat(record["start"].replace("Z", "+00:00")).timestamp() + record["duration"]
    assert record["faults"] == ["slow_close_downstream"] and closed - answered >= 0.5
