"""Print the signature table by running it: real nginx and HAProxy in front of mrapsim, aws-cli through them.

    python -m tests.interop.table            # the table, then the evidence for every cell
    python -m tests.interop.table --json     # the evidence as JSON

Rows: TLS interception without SNI, with SNI, L4 pass-through. Columns: the MRAP edge (`mrap`), the
standard S3 endpoint (`s3`). Each cell is one `aws s3 ls` through one proxy configuration; the
evidence is the HTTP status aws-cli saw, the proxy's log line and mrapsim's record of the proxy's
upstream connection. A proxy whose binary is missing is left out (and named).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.interop.harness import (
    LISTENERS,
    Cell,
    Proxy,
    ProxyCA,
    haproxy_binary,
    make_test_ca,
    nginx_binary,
    nginx_has_stream,
    run_cell,
    squid_binary,
    squid_has_ssl_bump,
    start_haproxy,
    start_nginx,
    start_proxy,
    start_squid,
)
from tests.mrapsim_process import MrapsimProcess, start_mrapsim

ROWS = [
    ("TLS interception without SNI", ("intercept-no-sni",)),
    ("TLS interception with SNI", ("intercept-sni", "intercept-sni-host")),
    ("L4 pass-through", ("passthrough",)),
]
COLUMNS = {"mrap": "MRAP edge (`mrap`)", "s3": "standard S3 (`s3`)"}
EXTRA = [("alert-no-sni", "mrap"), ("no-host-header", "mrap")]
ALERT_CONFIG = '[listeners.mrap]\non_missing_sni = "alert:unrecognized_name"\n'
PROXY_TITLES = {"nginx": "nginx", "haproxy": "HAProxy", "squid": "squid"}


def version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"


def evidence(cell: Cell) -> dict[str, Any]:
    upstream = [record for record in cell.upstream if record["outcome"] != "client_closed"]
    interesting = ("status=", "term=", "upstream timed out", "SSL_do_handshake", "sni=", " GET https://", "TCP_TUNNEL")
    return {
        "proxy": cell.proxy,
        "scenario": cell.scenario,
        "listener": cell.listener,
        "works": cell.ok,
        "client_status": cell.status,
        "client_error": cell.stderr.strip().splitlines()[-1] if cell.stderr.strip() else None,
        "client_seconds": round(cell.seconds, 2),
        "proxy_log": [
            line
            for line in cell.proxy_log
            if any(word in line for word in interesting) and "transaction-end-before-headers" not in line
        ],
        "mrapsim": [
            {key: record[key] for key in ("outcome", "action", "sni", "bytes_out", "duration", "peer", "ja4")}
            for record in upstream
        ],
    }


def short(item: dict[str, Any]) -> str:
    outcome = ", ".join(sorted({f"{r['outcome']}/{r['action'].partition(':')[0]}" for r in item["mrapsim"]}))
    title = PROXY_TITLES[item["proxy"]]
    if item["works"]:
        return f"{title} {item['client_status']}"
    return f"{title} {item['client_status'] or item['client_error']} ({outcome})"


def render(results: list[dict[str, Any]], proxies: list[str]) -> str:
    lines = [
        f"| | {COLUMNS['mrap']} | {COLUMNS['s3']} |",
        "|---|---|---|",
    ]
    for title, scenarios in ROWS:
        row = [title]
        for listener in LISTENERS:
            items = [r for r in results if r["scenario"] in scenarios and r["listener"] == listener]
            verdicts = {item["works"] for item in items}
            verdict = "works" if verdicts == {True} else "fails" if verdicts == {False} else "mixed"
            per_proxy = []
            for name in proxies:
                mine = [item for item in items if item["proxy"] == name]
                per_proxy.append(" / ".join(sorted({short(item) for item in mine})))
            row.append(f"**{verdict}** — " + "; ".join(per_proxy))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def describe(item: dict[str, Any]) -> str:
    head = (
        f"{PROXY_TITLES[item['proxy']]:8} {item['scenario']:19} → {item['listener']:4}  "
        f"{'works' if item['works'] else 'FAILS'}  client: HTTP {item['client_status']} "
        f"in {item['client_seconds']} s"
    )
    lines = [head]
    if not item["works"] and item["client_error"]:
        lines.append(f"    aws-cli: {item['client_error']}")
    lines.extend(f"    proxy:   {line.strip()[:220]}" for line in item["proxy_log"])
    for record in item["mrapsim"]:
        lines.append(
            f"    mrapsim: outcome={record['outcome']} action={record['action']} sni={record['sni']} "
            f"bytes_out={record['bytes_out']} duration={record['duration']:.3f} s peer={record['peer']} "
            f"ja4={record['ja4']}"
        )
    return "\n".join(lines)


def run(where: Path) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    starters: dict[str, Callable[[Path, ProxyCA, dict[str, MrapsimProcess]], Proxy]] = {}
    missing = []
    nginx = nginx_binary()
    if nginx:
        starters["nginx"] = start_nginx
        if not nginx_has_stream(nginx):
            missing.append("nginx's stream module (libnginx-mod-stream): no nginx pass-through")
    else:
        missing.append("nginx")
    if haproxy_binary():
        starters["haproxy"] = start_haproxy
    else:
        missing.append("haproxy")
    squid = squid_binary()
    if squid and squid_has_ssl_bump(squid):
        starters["squid"] = start_squid
    else:
        missing.append("squid with ssl-bump (squid-openssl)")
    (where / "mrapsim").mkdir()
    (where / "mrapsim-alert").mkdir()
    edge = start_mrapsim(where / "mrapsim")
    alert_edge = start_mrapsim(where / "mrapsim-alert", ALERT_CONFIG)
    proxies: list[Proxy] = []
    results = []
    try:
        proxy_ca = make_test_ca(where / "proxy-ca")
        for name, start in starters.items():
            proxies.append(start_proxy(start, where / name, proxy_ca, {"default": edge, "alert": alert_edge}))
        for proxy in proxies:
            for _, scenarios in ROWS:
                for scenario in scenarios:
                    for listener in LISTENERS:
                        if (scenario, listener) not in proxy.ports:
                            continue
                        results.append(evidence(run_cell(proxy, edge, proxy_ca, scenario, listener)))
            for scenario, listener in EXTRA:
                if (scenario, listener) in proxy.ports:
                    server = alert_edge if scenario.startswith("alert") else edge
                    results.append(evidence(run_cell(proxy, server, proxy_ca, scenario, listener)))
    finally:
        for proxy in proxies:
            proxy.stop()
        edge.stop()
        alert_edge.stop()
    return results, list(starters), missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.interop.table", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the evidence as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mrapsim-interop-") as tmp:
        results, proxies, missing = run(Path(tmp))
    if args.json:
        print(json.dumps({"proxies": proxies, "missing": missing, "cells": results}, indent=2))
        return 0
    if not proxies:
        print("no proxy (nginx, haproxy, squid) is installed: nothing to run", file=sys.stderr)
        return 1
    tools = [version(["aws", "--version"])]
    if "nginx" in proxies:
        tools.append(version([nginx_binary() or "nginx", "-v"]).replace("nginx version: ", ""))
    if "haproxy" in proxies:
        tools.append(" ".join(version([haproxy_binary() or "haproxy", "-v"]).split()[:3]))
    if "squid" in proxies:
        tools.append(version([squid_binary() or "squid", "-v"]).replace(" Cache: Version ", " "))
    print("Signature table — " + ", ".join(tools))
    print("(each cell: one ListObjectsV2 through the proxy — `aws s3 ls` for nginx and HAProxy, curl --aws-sigv4")
    print(" through squid, an explicit proxy — and the HTTP status the client saw, per proxy)\n")
    print(render(results, proxies))
    if missing:
        print(f"\nnot run (not installed): {', '.join(missing)}")
    print("\nEvidence (client status · proxy log · mrapsim's record of the upstream connection):\n")
    for item in results:
        if item["scenario"] in {s for _, scenarios in ROWS for s in scenarios}:
            print(describe(item))
    print("\nBeyond the table:\n")
    print('  mrap with on_missing_sni = "alert:unrecognized_name", interception without SNI — fails at once:')
    for item in results:
        if item["scenario"] == "alert-no-sni":
            print("  " + describe(item).replace("\n", "\n  "))
    print("\n  nginx with SNI but without `proxy_set_header Host $host` — SigV4 breaks:")
    for item in results:
        if item["scenario"] == "no-host-header":
            print("  " + describe(item).replace("\n", "\n  "))
    failures = [
        item
        for item in results
        if item["scenario"] in {s for _, scenarios in ROWS for s in scenarios}
        and item["works"] != (not (item["scenario"] == "intercept-no-sni" and item["listener"] == "mrap"))
    ]
    if failures:
        print(f"\n{len(failures)} cell(s) differ from SPEC.md's table", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
