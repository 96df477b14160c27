"""Real proxies in front of mrapsim: a test CA, generated nginx, HAProxy and squid configurations,
the processes, and one function that runs a scenario cell (aws-cli; curl through squid) and
collects the evidence: the client's HTTP status, the proxy's log lines, mrapsim's records.

Used by the pytest fixtures (`conftest.py`) and by `python -m tests.interop.table`.

Each proxy terminates the client's TLS with a certificate from the test CA (interception) and
re-originates TLS to mrapsim, trusting mrapsim's CA — or passes the client's TLS through (L4).
Every scenario is one listening port on 127.0.0.1, chosen by the OS:

| scenario             | nginx                                          | HAProxy                                  |
|----------------------|------------------------------------------------|------------------------------------------|
| `intercept-no-sni`   | `proxy_pass https://…`, `proxy_ssl_server_name off` (default) | `server … ssl verify …` |
| `intercept-sni`      | `proxy_ssl_server_name on; proxy_ssl_name <name>` | `… sni str(<name>)`                   |
| `intercept-sni-host` | `proxy_ssl_server_name on; proxy_ssl_name $host`  | `… sni req.hdr(host),field(1,:)`      |
| `passthrough`        | `stream` + `ssl_preread`, upstream by SNI      | `mode tcp`, `use_backend` by `req.ssl_sni` |
| `no-host-header`     | `intercept-sni` without `proxy_set_header Host` | —                                       |
| `alert-no-sni`       | `intercept-no-sni` to an mrapsim whose `mrap` answers with `alert:unrecognized_name` | same |

and every interception scenario exists once per mrapsim listener (`mrap`, `s3`); pass-through is
one port that routes MRAP names to `mrap` and everything else to `s3`, as such a proxy would.
squid (ssl-bump, an explicit proxy) is one `bump` and one `splice` port; the URL picks the
destination — see `start_squid`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.mrapsim_process import MrapsimProcess

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
MRAP_ARN = "arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap"
BUCKET = "mraps3sample"
S3_HOST = "s3.amazonaws.com"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

# The proxies' own upstream timeouts: a few seconds, so the failing cell fails fast.
CONNECT_TIMEOUT = 2
READ_TIMEOUT = 3

LISTENERS = ("mrap", "s3")
NGINX_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
AWSVIA = Path(__file__).with_name("awsvia.py")

# Where the client's request goes for each mrapsim listener: the MRAP by ARN (aws-cli resolves it to
# the MRAP host and signs with SigV4A), the standard endpoint by bucket (virtual-hosted, SigV4).
S3_URL = {"mrap": f"s3://{MRAP_ARN}/", "s3": f"s3://{BUCKET}/"}


# -- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyCA:
    ca: Path  # what clients of the proxies trust
    cert: Path  # the proxies' client-facing leaf
    key: Path
    combined: Path  # leaf + key, for HAProxy's `crt`
    ca_key: Path  # squid mints per-host certificates with it (ssl-bump)


def make_test_ca(where: Path) -> ProxyCA:
    """A throw-away CA and one leaf for the proxies' client-facing side (the MRAP and S3 names)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    where.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mrapsim interop test proxy CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
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
    names: list[x509.GeneralName] = [
        x509.DNSName(name)
        for name in ("*.mrap.accesspoint.s3-global.amazonaws.com", S3_HOST, f"*.{S3_HOST}", "localhost")
    ]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mrapsim interop proxy")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    proxy_ca = ProxyCA(
        where / "ca.pem", where / "proxy.crt", where / "proxy.key", where / "proxy.pem", where / "ca.key"
    )
    proxy_ca.ca.write_bytes(ca_cert.public_bytes(pem))
    proxy_ca.ca_key.write_bytes(
        ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    proxy_ca.ca_key.chmod(0o600)
    proxy_ca.cert.write_bytes(cert.public_bytes(pem))
    proxy_ca.key.write_bytes(key_pem)
    proxy_ca.key.chmod(0o600)
    proxy_ca.combined.write_bytes(cert.public_bytes(pem) + key_pem)
    proxy_ca.combined.chmod(0o600)
    return proxy_ca


# -- ports and processes ------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports the OS picks for 127.0.0.1 (held open together so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_listening(ports: list[int], process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 10
    pending = list(ports)
    while pending:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"{what} is not listening on {pending}:\n{_tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", pending[0]), timeout=1).close()
            pending.pop(0)
        except OSError:
            time.sleep(0.05)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class LogFile:
    """A log file read incrementally: `mark()` before a request, `since(mark)` after."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def since(self, offset: int) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []


# -- proxies ------------------------------------------------------------------------------------


@dataclass
class Proxy:
    """A running proxy: its name, a port per (scenario, listener), its logs, its process."""

    name: str
    ports: dict[tuple[str, str], int]
    logs: list[LogFile]
    process: subprocess.Popen[bytes]
    config: Path
    cleanup: Path | None = None  # a directory of its own to remove at stop (squid's)
    # A forward proxy (squid) is one port; the client picks the destination by URL.
    urls: dict[tuple[str, str], str] = field(default_factory=dict)
    # The log line that ends a request (nginx and HAProxy: their access-log lines).
    done: re.Pattern[str] = re.compile(r" status=| term=")

    def port(self, scenario: str, listener: str) -> int:
        return self.ports[(scenario, listener)]

    def stop(self) -> None:
        stop_process(self.process)
        if self.cleanup is not None:
            shutil.rmtree(self.cleanup, ignore_errors=True)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if os.access(p, os.X_OK)), None)


def haproxy_version(binary: str) -> tuple[int, int]:
    found = re.search(r"version (\d+)\.(\d+)", subprocess.run([binary, "-v"], capture_output=True, text=True).stdout)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def nginx_has_stream(binary: str) -> bool:
    built = subprocess.run([binary, "-V"], capture_output=True, text=True).stderr
    if "--with-stream_ssl_preread_module" not in built:
        return False
    return "--with-stream=dynamic" not in built or NGINX_STREAM_MODULE.exists()


def _nginx_location(upstream: str, ssl_name: str | None, keep_host: bool = True) -> str:
    lines = [f"proxy_pass https://{upstream};"]
    if keep_host:
        lines.append("proxy_set_header Host $host;")
    if ssl_name is None:
        # nginx's default: no SNI. proxy_ssl_name is then only the name the certificate is checked for.
        lines.append("proxy_ssl_server_name off;")
        lines.append(f"proxy_ssl_name {MRAP_HOST if upstream == 'mrapsim_mrap' else S3_HOST};")
    else:
        lines.append("proxy_ssl_server_name on;")
        lines.append(f"proxy_ssl_name {ssl_name};")
    return "\n            ".join(lines)


def start_nginx(where: Path, proxy_ca: ProxyCA, servers: dict[str, MrapsimProcess]) -> Proxy:
    """nginx with one `server` per interception scenario and listener, and a `stream` pass-through.

    `servers` maps "default" to the mrapsim under test and "alert" to one whose mrap listener answers
    a missing SNI with `alert:unrecognized_name`.
    """
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx")
    where.mkdir(parents=True, exist_ok=True)
    server = servers["default"]
    scenarios: list[tuple[str, str, str]] = []  # (scenario, listener, location body)
    upstreams = {"mrap": "mrapsim_mrap", "s3": "mrapsim_s3"}
    sni_names = {"mrap": MRAP_HOST, "s3": S3_HOST}
    for listener in LISTENERS:
        upstream = upstreams[listener]
        scenarios.append(("intercept-no-sni", listener, _nginx_location(upstream, None)))
        scenarios.append(("intercept-sni", listener, _nginx_location(upstream, sni_names[listener])))
        scenarios.append(("intercept-sni-host", listener, _nginx_location(upstream, "$host")))
    scenarios.append(("no-host-header", "mrap", _nginx_location("mrapsim_mrap", MRAP_HOST, keep_host=False)))
    scenarios.append(("no-host-header", "s3", _nginx_location("mrapsim_s3", S3_HOST, keep_host=False)))
    if "alert" in servers:
        scenarios.append(("alert-no-sni", "mrap", _nginx_location("alert_mrap", None)))

    ports = free_ports(len(scenarios) + 1)
    assigned: dict[tuple[str, str], int] = {}
    blocks = []
    for (scenario, listener, body), port in zip(scenarios, ports, strict=False):
        assigned[(scenario, listener)] = port
        blocks.append(
            f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {scenario}--{listener};
        location / {{
            {body}
        }}
    }}"""
        )
    passthrough = ports[-1]
    alert_upstream = ""
    if "alert" in servers:
        alert_upstream = f"upstream alert_mrap {{ server 127.0.0.1:{servers['alert'].port('mrap')}; }}"
    stream_module = ""
    built = subprocess.run([binary, "-V"], capture_output=True, text=True).stderr
    if "--with-stream=dynamic" in built:
        stream_module = f"load_module {NGINX_STREAM_MODULE};"
    stream = nginx_has_stream(binary)  # without it (Debian: libnginx-mod-stream) there is no pass-through
    if stream:
        assigned[("passthrough", "mrap")] = passthrough
        assigned[("passthrough", "s3")] = passthrough
    else:
        stream_module = ""
    stream_block = f"""
stream {{
    log_format interop 'passthrough sni=$ssl_preread_server_name upstream=$upstream_addr '
                       'status=$status connect=$upstream_connect_time session_time=$session_time';
    access_log {where}/stream.log interop;
    map $ssl_preread_server_name $mrapsim_listener {{
        ~\\.mrap\\.accesspoint\\.s3-global\\.amazonaws\\.com$ 127.0.0.1:{server.port("mrap")};
        default 127.0.0.1:{server.port("s3")};
    }}
    server {{
        listen 127.0.0.1:{passthrough};
        ssl_preread on;
        proxy_pass $mrapsim_listener;
        proxy_connect_timeout {CONNECT_TIMEOUT}s;
    }}
}}
"""
    # master_process off: one process, running as the invoking user (no worker user to switch to).
    config = f"""{stream_module}
daemon off;
master_process off;
worker_processes 1;
pid {where}/nginx.pid;
error_log {where}/error.log info;
events {{ worker_connections 512; }}

http {{
    log_format interop '$server_name status=$status upstream=$upstream_addr proxy_host=$proxy_host '
                       'upstream_status=$upstream_status connect=$upstream_connect_time '
                       'request_time=$request_time host=$host "$request"';
    access_log {where}/access.log interop;
    client_body_temp_path {where}/client_body;
    proxy_temp_path {where}/proxy;
    fastcgi_temp_path {where}/fastcgi;
    uwsgi_temp_path {where}/uwsgi;
    scgi_temp_path {where}/scgi;
    client_max_body_size 0;

    ssl_certificate {proxy_ca.cert};
    ssl_certificate_key {proxy_ca.key};

    proxy_http_version 1.1;
    proxy_connect_timeout {CONNECT_TIMEOUT}s;
    proxy_send_timeout {READ_TIMEOUT}s;
    proxy_read_timeout {READ_TIMEOUT}s;
    proxy_ssl_verify on;
    proxy_ssl_trusted_certificate {server.ca};

    upstream mrapsim_mrap {{ server 127.0.0.1:{server.port("mrap")}; }}
    upstream mrapsim_s3 {{ server 127.0.0.1:{server.port("s3")}; }}
    {alert_upstream}
{"".join(blocks)}
}}

{stream_block if stream else ""}
"""
    config_file = where / "nginx.conf"
    config_file.write_text(config)
    error_log = where / "error.log"
    check = subprocess.run(
        [binary, "-t", "-p", str(where), "-e", str(error_log), "-c", str(config_file)], capture_output=True, text=True
    )
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{check.stderr}\n{config}")
    console = where / "console.log"
    with console.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-p", str(where), "-e", str(error_log), "-c", str(config_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    wait_listening(sorted(set(assigned.values())), process, "nginx", error_log)
    logs = [LogFile(where / "access.log"), LogFile(error_log), LogFile(where / "stream.log")]
    return Proxy("nginx", assigned, logs, process, config_file)


HAPROXY_HTTP_LOG = (
    "%ft %b/%s status=%ST term=%tsc Tc=%Tc Tr=%Tr Ta=%Ta backend_src=%bi:%bp "
    "ssl_bc_err=%[ssl_bc_err_str] host=%[capture.req.hdr(0)] %{+Q}r"
)


def start_haproxy(where: Path, proxy_ca: ProxyCA, servers: dict[str, MrapsimProcess]) -> Proxy:
    """HAProxy with one frontend per interception scenario and listener, and a `mode tcp` pass-through."""
    binary = haproxy_binary()
    if binary is None:
        raise FileNotFoundError("haproxy")
    where.mkdir(parents=True, exist_ok=True)
    server = servers["default"]
    verify = f"ssl verify required ca-file {server.ca}"
    # HAProxy 3.3 and later derive SNI from the Host header by default (`sni-auto`): the no-SNI
    # configuration is what every earlier version does with `ssl` alone, and `no-sni-auto` after.
    no_sni = " no-sni-auto" if haproxy_version(binary) >= (3, 3) else ""
    sni_names = {"mrap": MRAP_HOST, "s3": S3_HOST}
    scenarios: list[tuple[str, str, str]] = []  # (scenario, listener, server line)
    for listener in LISTENERS:
        address = f"127.0.0.1:{server.port(listener)}"
        scenarios.append(("intercept-no-sni", listener, f"server s1 {address} {verify}{no_sni}"))
        scenarios.append(("intercept-sni", listener, f"server s1 {address} {verify} sni str({sni_names[listener]})"))
        scenarios.append(("intercept-sni-host", listener, f"server s1 {address} {verify} sni req.hdr(host),field(1,:)"))
    if "alert" in servers:
        alert = servers["alert"]
        alert_line = f"server s1 127.0.0.1:{alert.port('mrap')} ssl verify required ca-file {alert.ca}{no_sni}"
        scenarios.append(("alert-no-sni", "mrap", alert_line))
    ports = free_ports(len(scenarios) + 1)
    assigned: dict[tuple[str, str], int] = {}
    sections = []
    for (scenario, listener, server_line), port in zip(scenarios, ports, strict=False):
        assigned[(scenario, listener)] = port
        name = f"{scenario}--{listener}"
        sections.append(
            f"""
frontend {name}
    bind 127.0.0.1:{port} ssl crt {proxy_ca.combined}
    http-request capture req.hdr(host) len 100
    default_backend {name}

backend {name}
    {server_line}
"""
        )
    passthrough = ports[-1]
    assigned[("passthrough", "mrap")] = passthrough
    assigned[("passthrough", "s3")] = passthrough
    config = f"""global
    log stderr format raw local0 info
    maxconn 512

defaults
    mode http
    log global
    log-format "{HAPROXY_HTTP_LOG}"
    timeout connect {CONNECT_TIMEOUT}s
    timeout server {READ_TIMEOUT}s
    timeout client 30s
    retries 0
    # One upstream connection per request, so mrapsim records (and ends) it with the request.
    option http-server-close
{"".join(sections)}
frontend passthrough
    mode tcp
    bind 127.0.0.1:{passthrough}
    log-format "%ft %b/%s term=%tsc Tc=%Tc Tt=%Tt backend_src=%bi:%bp sni=%[capture.req.hdr(0)]"
    tcp-request inspect-delay 5s
    tcp-request content capture req.ssl_sni len 100
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    use_backend passthrough--mrap if {{ req.ssl_sni -m end .mrap.accesspoint.s3-global.amazonaws.com }}
    default_backend passthrough--s3

backend passthrough--mrap
    mode tcp
    server s1 127.0.0.1:{server.port("mrap")}

backend passthrough--s3
    mode tcp
    server s1 127.0.0.1:{server.port("s3")}
"""
    config_file = where / "haproxy.cfg"
    config_file.write_text(config)
    check = subprocess.run([binary, "-c", "-f", str(config_file)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy -c failed:\n{check.stdout}{check.stderr}\n{config}")
    log = where / "haproxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config_file)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    wait_listening(sorted(set(assigned.values())), process, "haproxy", log)
    return Proxy("haproxy", assigned, [LogFile(log)], process, config_file)


# -- squid (ssl-bump) ----------------------------------------------------------------------------

SQUID_CERTGEN = ("/usr/lib/squid/security_file_certgen", "/usr/lib64/squid/security_file_certgen")
SQUID_LOG = (
    "%>a %Ss/%03>Hs %rm %ru %Sh/%<a:%<p backend_src=%<la:%<lp bump=%ssl::bump_mode "
    "client_sni=%ssl::>sni err=%err_code/%err_detail time_ms=%tr"
)


def squid_binary() -> str | None:
    return shutil.which("squid") or next((p for p in ("/usr/sbin/squid",) if os.access(p, os.X_OK)), None)


def squid_certgen() -> str | None:
    return next((p for p in SQUID_CERTGEN if os.access(p, os.X_OK)), None)


def squid_has_ssl_bump(binary: str) -> bool:
    built = subprocess.run([binary, "-v"], capture_output=True, text=True).stdout
    return "--with-openssl" in built and squid_certgen() is not None


def start_squid(where: Path, proxy_ca: ProxyCA, servers: dict[str, MrapsimProcess]) -> Proxy:
    """squid as an explicit proxy with ssl-bump (port `bump`) and splice (port `splice`).

    Bumped requests go DIRECT: squid resolves the CONNECT host through its own `hosts_file` (every
    name → 127.0.0.1) and connects to the CONNECT port, i.e. mrapsim's listener. squid sends the SNI
    it knows — the client's (peeked at step 1) or the CONNECT host — and none for an IP address:
    the "interception without SNI" row is a client that CONNECTs to 127.0.0.1:PORT.

    squid drops root to `proxy`, so its files live in a directory of their own under /tmp.
    """
    binary = squid_binary()
    certgen = squid_certgen()
    if binary is None or certgen is None:
        raise FileNotFoundError("squid")
    del where  # squid's user must be able to reach its files: pytest's tmp_path is 0700
    home = Path(tempfile.mkdtemp(prefix="mrapsim-squid-"))
    home.chmod(0o755)
    server = servers["default"]
    trusted = home / "upstream-ca.pem"
    trusted.write_bytes(b"".join(s.ca.read_bytes() for s in servers.values()))
    shutil.copy(proxy_ca.ca, home / "ca.pem")
    shutil.copy(proxy_ca.ca_key, home / "ca.key")
    (home / "hosts").write_text(f"127.0.0.1 {MRAP_HOST} {S3_HOST} {BUCKET}.{S3_HOST} localhost\n")
    bump, splice = free_ports(2)
    user = ""
    if os.geteuid() == 0:
        import pwd

        names = {entry.pw_name for entry in pwd.getpwall()}
        user = "proxy" if "proxy" in names else "nobody"
    subprocess.run([certgen, "-c", "-s", str(home / "ssl_db"), "-M", "4MB"], check=True, capture_output=True)
    bump_options = (
        "generate-host-certificates=on dynamic_cert_mem_cache_size=4MB "
        f"tls-cert={home / 'ca.pem'} tls-key={home / 'ca.key'}"
    )
    config = f"""http_port 127.0.0.1:{bump} ssl-bump name=bump {bump_options}
http_port 127.0.0.1:{splice} ssl-bump name=splice {bump_options}
sslcrtd_program {certgen} -s {home / "ssl_db"} -M 4MB
sslcrtd_children 3 startup=1 idle=1
acl step1 at_step SslBump1
acl splice_port myportname splice
ssl_bump splice splice_port
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile={trusted}
# squid 5 checks a certificate's DNS names only: a server reached by IP never matches its IP SAN.
acl domain_mismatch ssl_error SQUID_X509_V_ERR_DOMAIN_MISMATCH
sslproxy_cert_error allow domain_mismatch
sslproxy_cert_error deny all
hosts_file {home / "hosts"}
dns_nameservers 127.0.0.1
http_access allow localhost
http_access deny all
cache deny all
pinger_enable off
netdb_filename none
pid_filename {home / "squid.pid"}
logformat interop {SQUID_LOG}
access_log stdio:{home / "access.log"} interop
cache_log {home / "cache.log"}
coredump_dir {home}
connect_timeout {CONNECT_TIMEOUT} seconds
read_timeout {READ_TIMEOUT} seconds
forward_max_tries 1
shutdown_lifetime 1 seconds
{f"cache_effective_user {user}" if user else ""}
"""
    config_file = home / "squid.conf"
    config_file.write_text(config)
    if user:
        shutil.chown(home, user)
        for path in home.rglob("*"):
            shutil.chown(path, user)
    check = subprocess.run([binary, "-k", "parse", "-f", str(config_file)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"squid -k parse failed:\n{check.stdout}{check.stderr}\n{config}")
    console = home / "console.log"
    with console.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-N", "-f", str(config_file)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    wait_listening([bump, splice], process, "squid", home / "cache.log")
    ports: dict[tuple[str, str], int] = {}
    urls: dict[tuple[str, str], str] = {}
    named = {
        "mrap": f"https://{MRAP_HOST}:{{port}}/?list-type=2",
        "s3": f"https://{BUCKET}.{S3_HOST}:{{port}}/?list-type=2",
    }
    by_ip = {
        "mrap": "https://127.0.0.1:{port}/mfzwi23gnjvgw.mrap?list-type=2",
        "s3": f"https://127.0.0.1:{{port}}/{BUCKET}?list-type=2",
    }
    for listener in LISTENERS:
        port = server.port(listener)
        ports[("intercept-no-sni", listener)] = bump
        urls[("intercept-no-sni", listener)] = by_ip[listener].format(port=port)
        ports[("intercept-sni", listener)] = bump
        urls[("intercept-sni", listener)] = named[listener].format(port=port)
        ports[("passthrough", listener)] = splice
        urls[("passthrough", listener)] = named[listener].format(port=port)
    if "alert" in servers:
        ports[("alert-no-sni", "mrap")] = bump
        urls[("alert-no-sni", "mrap")] = by_ip["mrap"].format(port=servers["alert"].port("mrap"))
    done = re.compile(r" GET https://| TCP_TUNNEL/")
    return Proxy("squid", ports, [LogFile(home / "access.log")], process, config_file, home, urls, done)


def run_curl(proxy: Proxy, scenario: str, listener: str, ca_bundle: Path) -> subprocess.CompletedProcess[str]:
    """curl through squid (an explicit proxy, so the URL names the destination), SigV4-signed.

    A destination given by IP gets a squid-minted certificate for that IP which squid 5 cannot make
    verifiable (no IP SAN): the client hop is not verified there (`-k`); the upstream hop is.
    """
    url = proxy.urls[(scenario, listener)]
    command = [
        "curl",
        "-sS",
        "--max-time",
        "20",
        "-w",
        "\\nHTTP %{http_code}",
        "--proxy",
        f"http://127.0.0.1:{proxy.port(scenario, listener)}",
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
        f"{ACCESS_KEY}:{SECRET_KEY}",
        "-H",
        "x-amz-content-sha256: UNSIGNED-PAYLOAD",
    ]
    command += ["-k"] if "//127.0.0.1:" in url else ["--cacert", str(ca_bundle)]
    return subprocess.run([*command, url], capture_output=True, text=True, timeout=30)


def need(proxy: Proxy, scenario: str, listener: str) -> None:
    """In a test: skip when this proxy has no such scenario (nginx without its stream module)."""
    if (scenario, listener) not in proxy.ports:
        import pytest

        pytest.skip(f"{proxy.name} has no {scenario} here (nginx pass-through needs libnginx-mod-stream)")


def start_proxy(
    start: Callable[[Path, ProxyCA, dict[str, MrapsimProcess]], Proxy],
    where: Path,
    proxy_ca: ProxyCA,
    servers: dict[str, MrapsimProcess],
    attempts: int = 3,
) -> Proxy:
    """`start` with a retry: a port the OS chose can be taken by someone else before the proxy binds it."""
    for attempt in range(attempts):
        try:
            return start(where / f"attempt{attempt}", proxy_ca, servers)
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# -- the client and the evidence ------------------------------------------------------------------


@dataclass
class Cell:
    """One request through one proxy scenario to one mrapsim listener, and what everyone saw."""

    proxy: str
    scenario: str
    listener: str
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    proxy_log: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    # mrapsim's log events ("request", "explanation") for the upstream connections' ids
    events: list[dict[str, Any]] = field(default_factory=list)
    http_status: int | None = None  # as curl reported it (squid cells); aws-cli's is parsed from stderr

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.http_status in (None, 200)

    @property
    def status(self) -> int | None:
        """The HTTP status the client saw: 200 on success, else the one aws-cli names."""
        if self.http_status is not None:
            return self.http_status or None
        if self.ok:
            return 200
        found = re.search(r"An error occurred \((\d{3})\)", self.stderr)
        if found:
            return int(found.group(1))
        return {"SignatureDoesNotMatch": 403, "AccessDenied": 403}.get(self.error_code or "")

    @property
    def error_code(self) -> str | None:
        found = re.search(r"An error occurred \(([^)]+)\)", self.stderr)
        return found.group(1) if found else None

    @property
    def outcomes(self) -> list[tuple[str, str]]:
        return [(record["outcome"], record["action"]) for record in self.records]

    def log_fields(self) -> dict[str, str]:
        """`key=value` pairs of the proxy's access-log line for this request (nginx http/stream, HAProxy)."""
        for line in self.proxy_log:
            if " status=" in line or " term=" in line:
                return dict(re.findall(r"(\w+)=(\S+)", line))
        return {}

    def requests(self) -> list[dict[str, Any]]:
        """mrapsim's request records (operation, addressing, status, error_code) on those connections."""
        return [event for event in self.events if event["event"] == "request"]

    def log_line(self, needle: str) -> str | None:
        return next((line for line in self.proxy_log if needle in line), None)

    @property
    def upstream(self) -> list[dict[str, Any]]:
        """mrapsim's records of the proxy's upstream connection(s) for this request.

        HAProxy logs the source port of its server connection (`%bp`), nginx's stream module logs
        `proxy 127.0.0.1:PORT connected to`: those pick the one record. nginx http logs no source port;
        every record of the request's time window on the listener is taken instead.
        """
        ports = upstream_ports(self.proxy_log)
        if ports:
            return [record for record in self.records if record["peer"].rpartition(":")[2] in ports]
        return list(self.records)

    def summary(self) -> str:
        if self.ok:
            return "works"
        return f"fails ({self.status or self.error_code or 'no status'})"


def upstream_ports(log_lines: list[str]) -> set[str]:
    """Source ports of the proxy's upstream connections, where its log names them."""
    text = "\n".join(log_lines)
    ports = set(re.findall(r"backend_src=127\.0\.0\.1:(\d+)", text))  # HAProxy %bp, squid %<lp
    ports |= set(re.findall(r"proxy 127\.0\.0\.1:(\d+) connected to", text))  # nginx stream (info)
    return ports


def aws_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            # One attempt: a 5xx from the proxy is reported as it is, not retried four times.
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(extra or {})
    return env


def run_aws(port: int, ca_bundle: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """aws-cli, unchanged, with `*.amazonaws.com` resolving to 127.0.0.1:`port` (see awsvia.py)."""
    command = [
        sys.executable,
        str(AWSVIA),
        "--connect",
        f"127.0.0.1:{port}",
        "--",
        "--ca-bundle",
        str(ca_bundle),
        "--cli-read-timeout",
        "20",
        "--cli-connect-timeout",
        "10",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=aws_env())


def client_ca(scenario: str, proxy_ca: ProxyCA, server: MrapsimProcess) -> Path:
    """Interception: the client trusts the proxy's CA. Pass-through: mrapsim's own certificate."""
    return server.ca if scenario == "passthrough" else proxy_ca.ca


@contextmanager
def observe(proxy: Proxy, server: MrapsimProcess, listener: str, cell: dict[str, Any]) -> Iterator[None]:
    """Collect what the proxy logged and what mrapsim recorded on `listener` during the block."""
    marks = [log.mark() for log in proxy.logs]
    since = time.time() - 0.05
    yield
    # HAProxy and squid log at the end of the stream; mrapsim records a connection when it ends. Wait
    # for both, and for the record of every upstream source port the proxy logged.
    deadline = time.monotonic() + 5
    while True:
        lines = [line for log, mark in zip(proxy.logs, marks, strict=True) for line in log.since(mark)]
        records = server.connections(listener=listener, since=f"{since:.3f}", limit=50, state="closed")
        ports = upstream_ports(lines)
        recorded = {record["peer"].rpartition(":")[2] for record in records}
        finished = any(proxy.done.search(line) for line in lines)
        if (finished and records and ports <= recorded) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    cell["proxy_log"] = lines
    cell["records"] = records


def run_cell(proxy: Proxy, server: MrapsimProcess, proxy_ca: ProxyCA, scenario: str, listener: str, *args: str) -> Cell:
    """`aws s3 ls` (or `args`) through `proxy`'s `scenario` port towards mrapsim's `listener`."""
    arguments = list(args) or ["s3", "ls", S3_URL[listener]]
    collected: dict[str, Any] = {}
    started = time.monotonic()
    http_status = None
    with observe(proxy, server, listener, collected):
        if proxy.urls:
            arguments = ["curl", proxy.urls[(scenario, listener)]]
            result = run_curl(proxy, scenario, listener, client_ca(scenario, proxy_ca, server))
            body, _, last = result.stdout.rpartition("\nHTTP ")
            http_status = int(last) if last.strip().isdigit() else 0
            result.stdout = body
        else:
            result = run_aws(proxy.port(scenario, listener), client_ca(scenario, proxy_ca, server), *arguments)
        seconds = time.monotonic() - started
    cell = Cell(
        proxy.name,
        scenario,
        listener,
        arguments,
        result.returncode,
        result.stdout,
        result.stderr,
        seconds,
        collected["proxy_log"],
        collected["records"],
        http_status=http_status,
    )
    ids = {record["id"] for record in cell.upstream}
    deadline = time.monotonic() + 2
    while True:
        cell.events = [
            event
            for event in server.logs()
            if event.get("event") in ("request", "explanation") and event.get("connection_id") in ids
        ]
        # A forwarded connection's request is logged when it completes; give the log a moment.
        forwarded = any(record["outcome"] == "forwarded" for record in cell.upstream)
        if not forwarded or any(e["event"] == "request" for e in cell.events) or time.monotonic() > deadline:
            return cell
        time.sleep(0.05)
