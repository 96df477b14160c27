"""The rendered chart, started: the Deployment's container command, env and volumes, with the
rendered ConfigMap and Secrets, run as a local process (tests/deploy/pod.py). The probes the
manifest names must answer 200, the Service's ports must reach the listeners the configuration
binds (and behave like them), and SIGTERM must drain within the grace period.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.chart import (
    TLS_MODES,
    Rendered,
    address_port,
    render,
    values_file,
    values_for_mode,
)
from tests.deploy.pod import READ_ONLY_BIND_MOUNTS, LocalPod, prepare

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"


def certificates_from_mrapsim(where: Path) -> dict[str, bytes]:
    """A CA and a leaf as cert-manager or an operator would supply them (`mrapsim certs`)."""
    subprocess.run(
        [str(Path(sys.executable).with_name("mrapsim")), "certs", "--certs-dir", str(where)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    chain = (where / "server.pem").read_bytes()
    leaf_only = chain[: chain.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----\n")]
    return {
        "tls.crt": leaf_only,
        "tls.key": (where / "server.key").read_bytes(),
        "ca.crt": (where / "ca.pem").read_bytes(),
        "ca.key": (where / "ca.key").read_bytes(),
    }


def cluster_secrets(mode: str, rendered: Rendered, scratch: Path) -> dict[str, dict[str, bytes]]:
    """The Secrets the pod would find: the rendered ones, and those cert-manager or users make."""
    secrets = {s["metadata"]["name"]: rendered.secret_data(s["metadata"]["name"]) or {} for s in rendered.all("Secret")}
    if mode == "certManager":
        made = certificates_from_mrapsim(scratch)
        certificates = {c["metadata"]["name"]: c["spec"] for c in rendered.all("Certificate")}
        for spec in certificates.values():
            if spec.get("isCA"):
                secrets[spec["secretName"]] = {
                    "tls.crt": made["ca.crt"],
                    "tls.key": made["ca.key"],
                    "ca.crt": made["ca.crt"],
                }
            else:
                secrets[spec["secretName"]] = {k: made[k] for k in ("tls.crt", "tls.key", "ca.crt")}
    elif mode == "existingSecret":
        secrets["my-mrapsim-tls"] = certificates_from_mrapsim(scratch)
    return secrets


POD_CASES = {mode: (mode, values_for_mode(mode)) for mode in TLS_MODES}
# Three listeners (one resetting), synthetic buckets, faults, two key pairs, extra args and env.
POD_CASES["full-values"] = ("helmGenerated", values_file("full.yaml"))


@pytest.fixture(scope="module", params=sorted(POD_CASES))
def pod(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPod]:
    mode, values = POD_CASES[request.param]
    rendered = render(values)
    root = tmp_path_factory.mktemp(f"pod-{request.param}")
    local = prepare(rendered, root, cluster_secrets(mode, rendered, root / "made-certs"))
    local.name = request.param
    local.start()
    try:
        local.wait_ready()
        yield local
    finally:
        local.stop()


def tls_context(pod: LocalPod) -> ssl.SSLContext:
    """What a client trusts: the CA from the Secret, as NOTES.txt tells users to fetch it."""
    context = ssl.create_default_context(
        cafile=str(pod.local_path(pod.env_in_container("MRAPSIM_CERTS_DIR")) / "ca.pem")
    )
    context.verify_flags |= ssl.VERIFY_X509_STRICT  # what Python 3.13 clients demand by default
    return context


def test_probes_answer_200(pod: LocalPod) -> None:
    status, body = pod.probe("readinessProbe")
    assert status == 200, body
    status, body = pod.probe("livenessProbe")
    assert status == 200, body


def test_service_ports_reach_the_listeners_the_config_binds(pod: LocalPod) -> None:
    rendered = pod.rendered
    original = tomllib.loads(rendered.config_toml)["listeners"]
    by_port = {address_port(listener["address"]): name for name, listener in original.items()}
    bound = json.loads(pod.probe("readinessProbe")[1])["listeners"]
    service = rendered.one("Service")
    seen = set()
    for port in service["spec"]["ports"]:
        container_port = pod.container_port(port["targetPort"])
        if port["targetPort"] == "admin":
            assert pod.probe("livenessProbe")[0] == 200
            continue
        listener = by_port[container_port]  # the listener whose address has this port
        assert listener == port["name"]
        assert bound[listener] == f"127.0.0.1:{pod.local_port(container_port)}"
        seen.add(listener)
    assert seen == set(original) == set(bound)


def test_service_443_is_the_mrap_edge_with_verifiable_certificates(pod: LocalPod) -> None:
    service = pod.rendered.one("Service")
    target = next(p["targetPort"] for p in service["spec"]["ports"] if p["port"] == 443)
    port = pod.local_port(target)
    context = tls_context(pod)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=MRAP_HOST) as tls,
    ):
        assert tls.selected_alpn_protocol() == "http/1.1"  # what AWS S3 selects when offered both
    # Without SNI, like Envoy without auto_sni: no ServerHello ever comes.
    bare = ssl.create_default_context()
    bare.check_hostname = False
    bare.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=1.5) as raw,
        pytest.raises((TimeoutError, socket.timeout)),
    ):
        bare.wrap_socket(raw, server_hostname=None)


def test_each_listener_drops_a_hello_without_sni_as_configured(pod: LocalPod) -> None:
    for name, listener in tomllib.loads(pod.rendered.config_toml)["listeners"].items():
        if listener["sni"] != "required":
            continue
        port = pod.local_port(name)
        with socket.create_connection(("127.0.0.1", port), timeout=1.5) as raw:
            raw.sendall(_client_hello_without_sni())
            action = listener["on_missing_sni"]
            if action == "stall":
                with pytest.raises((TimeoutError, socket.timeout)):
                    raw.recv(1)
            elif action == "reset":
                with pytest.raises(ConnectionResetError):
                    raw.recv(1)
            elif action == "close":
                assert raw.recv(1) == b""
            else:  # alert:<name>: a TLS alert record (content type 21), never a ServerHello
                assert raw.recv(1) == b"\x15"


def test_names_no_san_can_express_are_minted_with_the_certificates_read_only(pod: LocalPod) -> None:
    """s3.*.amazonaws.com is a route no SAN can express: mrapsim mints a leaf from the mounted
    CA key, even though the certificates directory is a read-only Secret mount."""
    context = tls_context(pod)
    name = "s3.eu-west-3.amazonaws.com"
    with (
        socket.create_connection(("127.0.0.1", pod.local_port("s3")), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    certs = pod.local_path(pod.env_in_container("MRAPSIM_CERTS_DIR"))
    if READ_ONLY_BIND_MOUNTS:
        assert not (certs / "minted").exists()


def test_s3_listener_serves_the_seeded_bucket_with_the_secrets_credentials(pod: LocalPod) -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    access, _, secret = pod.env["MRAPSIM_CREDENTIALS"].split(",")[0].partition(":")
    ca = str(pod.local_path(pod.env_in_container("MRAPSIM_CERTS_DIR")) / "ca.pem")
    client = boto3.client(
        "s3",
        endpoint_url=f"https://localhost:{pod.local_port('s3')}",
        verify=ca,
        region_name="us-east-1",
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="mraps3sample").get("Contents", [])}
    configured = tomllib.loads(pod.rendered.config_toml)["buckets"][0]["objects"]
    assert set(configured) <= keys


def _mrapsim_reads_credentials_from_the_environment() -> bool:
    import mrapsim

    source = Path(mrapsim.__file__).parent
    return any(
        "MRAPSIM_CREDENTIALS" in f.read_text() or '_env("CREDENTIALS")' in f.read_text() for f in source.glob("*.py")
    )


def test_every_key_pair_in_the_secret_is_accepted(pod: LocalPod) -> None:
    """MRAPSIM_CREDENTIALS ("ACCESS:SECRET[,ACCESS:SECRET]") is how the chart hands the Secret's
    key pairs to mrapsim; the TOML in the ConfigMap holds none."""
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config
    from botocore.exceptions import ClientError

    ca = str(pod.local_path(pod.env_in_container("MRAPSIM_CERTS_DIR")) / "ca.pem")
    for pair in pod.env["MRAPSIM_CREDENTIALS"].split(","):
        access, _, secret = pair.partition(":")
        client = boto3.client(
            "s3", endpoint_url=f"https://localhost:{pod.local_port('s3')}", verify=ca,
            region_name="us-east-1", aws_access_key_id=access, aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )  # fmt: skip
        try:
            client.head_bucket(Bucket="mraps3sample")
        except ClientError as error:
            if not _mrapsim_reads_credentials_from_the_environment():
                pytest.skip(f"mrapsim does not read MRAPSIM_CREDENTIALS yet ({access}: {error})")
            raise
    # And a pair that is not in the Secret is refused: the check above is not vacuous.
    client = boto3.client(
        "s3", endpoint_url=f"https://localhost:{pod.local_port('s3')}", verify=ca,
        region_name="us-east-1", aws_access_key_id="AKIANOTINTHESECRET00",
        aws_secret_access_key="not-the-secret",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )  # fmt: skip
    with pytest.raises(ClientError):
        client.list_objects_v2(Bucket="mraps3sample")


def test_sigterm_turns_readiness_off_and_drains_within_the_grace_period(pod: LocalPod) -> None:
    """Runs last in its module: it stops the pod.

    An idle forwarded connection (a proxy's pooled upstream connection) keeps mrapsim draining,
    so readiness can be seen at 503; a stalled one would not (nothing it carries can finish). For
    the default values it is held to the end: the worst case, mrapsim's whole drain, must fit in
    the grace period after the preStop sleep. Elsewhere it is closed once readiness is off, and
    mrapsim must exit as soon as nothing is left to drain.
    """
    spec = pod.rendered.deployment["spec"]["template"]["spec"]
    budget = spec["terminationGracePeriodSeconds"] - pod.rendered.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    worst_case = pod.name == "helmGenerated"
    raw = socket.create_connection(("127.0.0.1", pod.local_port("mrap")), timeout=5)
    held = tls_context(pod).wrap_socket(raw, server_hostname=MRAP_HOST)
    time.sleep(0.3)
    started = time.monotonic()
    pod.terminate()
    statuses = []
    assert pod.process is not None
    while pod.process.poll() is None and time.monotonic() - started < budget:
        try:
            statuses.append(pod.probe("readinessProbe", timeout=0.5)[0])
        except OSError:
            pass
        if statuses and statuses[-1] == 503 and not worst_case:
            break
        time.sleep(0.1)
    held.close()
    pod.process.wait(max(0.1, budget - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    assert 503 in statuses, statuses
    assert pod.process.returncode == 0, pod.output()
    assert elapsed < budget, f"took {elapsed:.1f}s; the pod would be SIGKILLed after {budget}s"
    if not worst_case:
        assert elapsed < 3, f"mrapsim kept draining for {elapsed:.1f}s with nothing open"


def _client_hello_without_sni() -> bytes:
    """A real ClientHello without SNI, captured from the stdlib's TLS client via a memory BIO."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=None)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()
