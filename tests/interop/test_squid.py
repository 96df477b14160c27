"""The signature table with squid ssl-bump (Debian `squid-openssl`), when it is installed.

squid is an explicit proxy here (the client sends CONNECT), so the client is curl with `--aws-sigv4`
and the URL names the destination port; squid resolves names through its own `hosts_file`:

- interception without SNI: `ssl_bump peek step1` + `bump all`, CONNECT to `127.0.0.1:PORT` — squid
  knows no name, so it sends no SNI (what squid does for a numeric host, and for intercepted
  traffic bumped before it learned a name);
- interception with SNI: the same port, CONNECT to the real name — squid sends the client's SNI;
- pass-through: `ssl_bump splice` — the client's own ClientHello reaches mrapsim.
"""

from __future__ import annotations

import pytest

from tests.interop.harness import (
    BUCKET,
    CONNECT_TIMEOUT,
    MRAP_HOST,
    READ_TIMEOUT,
    S3_HOST,
    Cell,
    Proxy,
    ProxyCA,
    run_cell,
)
from tests.mrapsim_process import MrapsimProcess

NAMED_SNI = {"mrap": MRAP_HOST, "s3": f"{BUCKET}.{S3_HOST}"}


def explain(cell: Cell) -> str:
    return (
        f"squid {cell.scenario} → {cell.listener}: rc={cell.returncode} HTTP {cell.status} in {cell.seconds:.2f} s\n"
        f"stderr: {cell.stderr.strip()}\nproxy log:\n  " + "\n  ".join(cell.proxy_log) + f"\nmrapsim: {cell.records}"
    )


def squid_line(cell: Cell) -> dict[str, str]:
    """The log line of the bumped GET (or of the spliced CONNECT tunnel)."""
    for line in cell.proxy_log:
        if " GET https://" in line or "TCP_TUNNEL/" in line:
            return {"line": line, **dict(part.split("=", 1) for part in line.split() if "=" in part)}
    return {}


def test_bump_without_sni_fails_against_mrap_by_squids_timeout(
    squid: Proxy, edge: MrapsimProcess, proxy_ca: ProxyCA
) -> None:
    cell = run_cell(squid, edge, proxy_ca, "intercept-no-sni", "mrap")
    assert cell.status == 504, explain(cell)
    assert "ERR_SECURE_CONNECT_FAIL/TLS_CONNECT_TIMEOUT" in squid_line(cell)["line"], explain(cell)
    assert "TLS_CONNECT_TIMEOUT" in cell.stdout  # squid's error page says so, too
    records = cell.upstream
    assert records, explain(cell)
    for record in records:
        assert record["outcome"] == "no_sni" and record["action"] == "stall", explain(cell)
        assert record["bytes_out"] == 0, explain(cell)
        # squid gives the upstream handshake min(connect_timeout, read_timeout) = 2 s here, and checks
        # its timers once a second: measured 2.5-3 s; mrapsim's own stall_timeout is 300 s. mrapsim's
        # clock starts at accept, which under load can come after squid started its timer: half the
        # connect timeout is the lower bound.
        assert CONNECT_TIMEOUT / 2 <= record["duration"] < min(CONNECT_TIMEOUT, READ_TIMEOUT) + 2, explain(cell)


def test_bump_without_sni_works_against_standard_s3(squid: Proxy, edge: MrapsimProcess, proxy_ca: ProxyCA) -> None:
    cell = run_cell(squid, edge, proxy_ca, "intercept-no-sni", "s3")
    assert cell.ok and "<Key>hello.txt</Key>" in cell.stdout, explain(cell)
    assert squid_line(cell)["bump"] == "bump", explain(cell)
    assert cell.upstream and all(r["outcome"] == "forwarded" and r["sni"] is None for r in cell.upstream)


@pytest.mark.parametrize("listener", ["mrap", "s3"])
@pytest.mark.parametrize(("scenario", "mode"), [("intercept-sni", "bump"), ("passthrough", "splice")])
def test_bump_with_sni_and_splice_work(
    squid: Proxy, edge: MrapsimProcess, proxy_ca: ProxyCA, scenario: str, mode: str, listener: str
) -> None:
    cell = run_cell(squid, edge, proxy_ca, scenario, listener)
    assert cell.ok and "<Key>hello.txt</Key>" in cell.stdout, explain(cell)
    assert squid_line(cell)["bump"] == mode, explain(cell)
    assert cell.upstream, explain(cell)
    for record in cell.upstream:
        assert record["outcome"] == "forwarded" and record["sni"] == NAMED_SNI[listener], explain(cell)


def test_bump_against_an_alerting_edge_fails_at_once(
    squid: Proxy, alert_edge: MrapsimProcess, proxy_ca: ProxyCA
) -> None:
    cell = run_cell(squid, alert_edge, proxy_ca, "alert-no-sni", "mrap")
    assert cell.status == 503, explain(cell)
    line = squid_line(cell)
    # TLS_LIB_ERR=A000458: OpenSSL's "tlsv1 unrecognized name" (alert 112 received)
    assert "ERR_SECURE_CONNECT_FAIL/SQUID_TLS_ERR_CONNECT+TLS_LIB_ERR=A000458" in line["line"], explain(cell)
    assert cell.upstream, explain(cell)
    for record in cell.upstream:
        assert record["outcome"] == "no_sni" and record["action"] == "alert:unrecognized_name", explain(cell)
        assert record["duration"] < 1.5, explain(cell)
