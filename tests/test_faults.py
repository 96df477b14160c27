"""Faults: parsing, the /faults admin API, and toxics on real connections."""

from __future__ import annotations

import json
import random
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from mrapsim.faults import FaultError, FaultSet, S3Fault, Toxic, parse_fault
from tests.tlsclient import tls_handshake


def test_parse_toxic_with_toxiproxy_vocabulary() -> None:
    toxic = parse_fault(
        {
            "type": "latency",
            "listener": "s3",
            "direction": "downstream",
            "toxicity": 0.5,
            "attributes": {"latency_ms": 200, "jitter_ms": 10},
        }
    )
    assert isinstance(toxic, Toxic) and toxic.attributes == {"latency_ms": 200, "jitter_ms": 10}
    assert toxic.toxicity == 0.5 and toxic.listener == "s3"


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
        ({"type": "latency", "attributes": {"latency": 1}}, "fault.attributes.latency"),
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


def test_toxicity_is_a_per_connection_probability() -> None:
    faults = FaultSet.from_documents([{"type": "latency", "toxicity": 0.25}, {"type": "timeout", "listener": "other"}])
    rng = random.Random(7)
    hits = sum(len(faults.toxics_for("s3", None, rng)) for _ in range(4000))
    assert 850 < hits < 1150


def admin(server: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://{server.admin}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_faults_admin_api(start_server: Any) -> None:
    server = start_server('[[faults]]\ntype = "latency"\nattributes = { latency_ms = 1 }\n')
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
        {"type": "latency", "listener": "s3", "direction": "downstream", "attributes": {"latency_ms": 400}},
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
        [{"type": "s3_latency", "operation": "GetObject", "prefix": "hello", "attributes": {"latency_ms": 400}}],
    )
    started = time.monotonic()
    client.get_object(Bucket="mraps3sample", Key="hello.txt")
    assert time.monotonic() - started >= 0.4
    assert client.list_objects_v2(Bucket="mraps3sample")["KeyCount"] > 0
