"""The signature table of SPEC.md, cell by cell, with real nginx and HAProxy and the real aws-cli.

|                               | MRAP edge (`mrap`) | standard S3 (`s3`) |
|-------------------------------|--------------------|--------------------|
| TLS interception without SNI  | fails              | works              |
| TLS interception with SNI     | works              | works              |
| L4 pass-through               | works              | works              |

Every cell is one `aws s3 ls` through one proxy port; the evidence is the HTTP status aws-cli saw,
the proxy's own log line and mrapsim's record of the proxy's upstream connection.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.harness import (
    BUCKET,
    CONNECT_TIMEOUT,
    MRAP_HOST,
    S3_HOST,
    Cell,
    Proxy,
    ProxyCA,
    need,
    run_cell,
)
from tests.mrapsim_process import MrapsimProcess

# What the proxy sends as SNI in each "with SNI" scenario: a fixed name, or the request's Host.
EXPECTED_SNI = {
    ("intercept-sni", "mrap"): MRAP_HOST,
    ("intercept-sni", "s3"): S3_HOST,
    ("intercept-sni-host", "mrap"): MRAP_HOST,
    ("intercept-sni-host", "s3"): f"{BUCKET}.{S3_HOST}",
    ("passthrough", "mrap"): MRAP_HOST,
    ("passthrough", "s3"): f"{BUCKET}.{S3_HOST}",
}


def explain(cell: Cell) -> str:
    return (
        f"{cell.proxy} {cell.scenario} → {cell.listener}: rc={cell.returncode} in {cell.seconds:.2f} s\n"
        f"stderr: {cell.stderr.strip()}\nproxy log:\n  " + "\n  ".join(cell.proxy_log) + f"\nmrapsim: {cell.records}"
    )


def upstream_connections(cell: Cell) -> list[dict[str, Any]]:
    # A zero-byte `client_closed` is not a request (the start-up probe of nginx's pass-through port
    # makes one on `s3`); ignore such strays.
    return [record for record in cell.upstream if record["outcome"] != "client_closed"]


ADDRESSING = {"mrap": "mrap", "s3": "virtual"}  # MRAP host → the MRAP's bucket; bucket.s3.amazonaws.com


def assert_works(cell: Cell, sni: str | None) -> None:
    assert cell.ok and cell.status == 200, explain(cell)
    assert "hello.txt" in cell.stdout and "PRE data/" in cell.stdout, explain(cell)
    records = upstream_connections(cell)
    assert records, explain(cell)
    for record in records:
        assert record["outcome"] == "forwarded", explain(cell)
        assert record["sni"] == sni, explain(cell)
        assert record["requests"] >= 1 and record["bytes_out"] > 0, explain(cell)
    requests = cell.requests()
    assert requests, explain(cell)
    for request in requests:
        assert request["operation"] == "ListObjectsV2" and request["status"] == 200, requests
        assert request["addressing"] == ADDRESSING[cell.listener] and request["bucket"] == BUCKET, requests


# -- row 1: interception without SNI ------------------------------------------------------------


def test_interception_without_sni_fails_against_mrap_by_the_proxys_timeout(
    proxy: Proxy, edge: MrapsimProcess, proxy_ca: ProxyCA
) -> None:
    cell = run_cell(proxy, edge, proxy_ca, "intercept-no-sni", "mrap")
    assert not cell.ok, explain(cell)
    fields = cell.log_fields()
    if proxy.name == "nginx":
        # 504 from nginx: its proxy_connect_timeout (which also bounds the upstream handshake) fired.
        assert cell.status == 504, explain(cell)
        assert cell.log_line("upstream timed out (110: Connection timed out) while SSL handshaking to upstream"), (
            explain(cell)
        )
        assert fields["status"] == "504" and fields["connect"] == "-", explain(cell)
        waited = float(fields["request_time"])
    else:
        # 503 from HAProxy; termination state sC: server-side (s) timeout during connect (C).
        assert cell.status == 503, explain(cell)
        assert fields["status"] == "503" and fields["term"].startswith("sC"), explain(cell)
        assert fields["Tc"] == "-1", explain(cell)
        waited = float(fields["Ta"]) / 1000
    assert CONNECT_TIMEOUT - 0.1 <= waited < CONNECT_TIMEOUT + 1, explain(cell)
    # Not a TLS alert and not a reset: the proxy saw nothing at all from the server, and said so.
    assert not cell.log_line("SSL alert") and not cell.log_line("reset by peer"), explain(cell)

    records = upstream_connections(cell)
    assert records, explain(cell)
    for record in records:
        assert record["outcome"] == "no_sni" and record["action"] == "stall", explain(cell)
        assert record["sni"] is None and record["bytes_out"] == 0, explain(cell)
        # The proxy hung up when its timer fired; mrapsim's own stall_timeout (60 s) did not.
        assert CONNECT_TIMEOUT - 0.1 <= record["duration"] < CONNECT_TIMEOUT + 1, explain(cell)


def test_interception_without_sni_works_against_standard_s3(
    proxy: Proxy, edge: MrapsimProcess, proxy_ca: ProxyCA
) -> None:
    cell = run_cell(proxy, edge, proxy_ca, "intercept-no-sni", "s3")
    assert_works(cell, sni=None)
    for record in upstream_connections(cell):
        assert record["action"] == "forward:s3.amazonaws.com"  # the listener's default route


# -- row 2: interception with SNI ----------------------------------------------------------------


@pytest.mark.parametrize("listener", ["mrap", "s3"])
@pytest.mark.parametrize("scenario", ["intercept-sni", "intercept-sni-host"])
def test_interception_with_sni_works(
    proxy: Proxy, edge: MrapsimProcess, proxy_ca: ProxyCA, scenario: str, listener: str
) -> None:
    cell = run_cell(proxy, edge, proxy_ca, scenario, listener)
    assert_works(cell, sni=EXPECTED_SNI[(scenario, listener)])
    if proxy.name == "nginx":
        assert cell.log_fields()["upstream_status"] == "200"
    else:
        assert cell.log_fields()["term"] == "----"


# -- row 3: L4 pass-through ----------------------------------------------------------------------


@pytest.mark.parametrize("listener", ["mrap", "s3"])
def test_passthrough_works(proxy: Proxy, edge: MrapsimProcess, proxy_ca: ProxyCA, listener: str) -> None:
    need(proxy, "passthrough", listener)
    cell = run_cell(proxy, edge, proxy_ca, "passthrough", listener)
    assert_works(cell, sni=EXPECTED_SNI[("passthrough", listener)])
    fields = cell.log_fields()
    assert fields["sni"] == EXPECTED_SNI[("passthrough", listener)], explain(cell)
    # The client's own ClientHello reached mrapsim: aws-cli (urllib3) offers ALPN http/1.1.
    for record in upstream_connections(cell):
        assert record["alpn_offered"] == ["http/1.1"], explain(cell)


# -- the same failure with a loud edge: a fatal alert instead of silence ---------------------------


def test_alert_instead_of_stall_fails_at_once(proxy: Proxy, alert_edge: MrapsimProcess, proxy_ca: ProxyCA) -> None:
    cell = run_cell(proxy, alert_edge, proxy_ca, "alert-no-sni", "mrap")
    assert not cell.ok, explain(cell)
    fields = cell.log_fields()
    if proxy.name == "nginx":
        assert cell.status == 502, explain(cell)
        line = cell.log_line("SSL_do_handshake() failed")
        assert line and "unrecognized name" in line and "SSL alert number 112" in line, explain(cell)
        assert "while SSL handshaking to upstream" in line, explain(cell)
        waited = float(fields["request_time"])
    else:
        # SC: the server side aborted (S) during connect (C) — no timer was involved.
        assert cell.status == 503, explain(cell)
        assert fields["term"].startswith("SC"), explain(cell)
        # HAProxy 2.6 has no error-log line for a server-side handshake; `ssl_bc_err_str` names the alert.
        assert "tlsv1 unrecognized name" in (cell.log_line("ssl_bc_err=") or ""), explain(cell)
        waited = float(fields["Ta"]) / 1000
    assert waited < 1.5, explain(cell)  # at once: well under the 2 s connect timeout
    records = upstream_connections(cell)
    assert records, explain(cell)
    for record in records:
        assert record["outcome"] == "no_sni" and record["action"] == "alert:unrecognized_name", explain(cell)
        assert record["duration"] < 1.5, explain(cell)


# -- the Host header: a proxy that rewrites it breaks SigV4 ----------------------------------------


def test_proxy_that_rewrites_host_breaks_sigv4(nginx: Proxy, edge: MrapsimProcess, proxy_ca: ProxyCA) -> None:
    """nginx without `proxy_set_header Host $host` sends `Host: mrapsim_mrap` (its upstream name).

    TLS is fine (SNI is set, mrapsim forwards the connection), but the Host header is signed, so the
    signature aws-cli computed no longer matches: 403 SignatureDoesNotMatch.
    """
    cell = run_cell(nginx, edge, proxy_ca, "no-host-header", "mrap")
    assert not cell.ok and cell.error_code == "SignatureDoesNotMatch", explain(cell)
    assert cell.log_fields()["upstream_status"] == "403", explain(cell)
    records = upstream_connections(cell)
    assert records and all(record["outcome"] == "forwarded" for record in records), explain(cell)
    assert all(record["sni"] == MRAP_HOST for record in records), explain(cell)
    assert cell.log_line("proxy_host=mrapsim_mrap"), explain(cell)  # the Host nginx sent instead
    requests = cell.requests()
    assert requests and all(r["error_code"] == "SignatureDoesNotMatch" for r in requests), requests
