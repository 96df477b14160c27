"""Certificates: creation, reuse, clear errors, and real TLS handshakes against trio.SSLStream.

The server side is `CertificateSet.server_context` under `trio.SSLStream(server_side=True)` in a
thread; the clients are Python's ssl with strict verification and `openssl s_client`.
"""

from __future__ import annotations

import datetime
import queue
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mrapsim.config import load_config
from mrapsim.names import name_matches
from mrapsim.server import certificate_names
from mrapsim.tls.certs import (
    CertificateError,
    CertificateSet,
    ensure_certificates,
    renew_certificates,
)

# The default routes of both listeners (SPEC §3), as the server hands them to the certificates.
ROUTES = tuple(certificate_names(load_config()))
MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
REGIONAL_HOST = "s3.us-east-1.amazonaws.com"
TIMEOUT = 5.0

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def routed(name: str) -> bool:
    return any(name_matches(pattern, name) for pattern in ROUTES)


class TlsServer:
    """A trio TLS server on 127.0.0.1 in a thread: handshake, send b"ok", close."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.alpn: list[str | None] = []
        self.errors: list[BaseException] = []
        self._ports: queue.Queue[int | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None

    def __enter__(self) -> TlsServer:
        self._thread.start()
        port = self._ports.get(timeout=TIMEOUT)
        if isinstance(port, BaseException):
            raise port
        self.port = port
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._cancel is not None and self._token is not None
        trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:
            self._ports.put(exc)

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        async with trio.open_nursery() as nursery:
            self._cancel = nursery.cancel_scope
            self._ports.put(listeners[0].socket.getsockname()[1])
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, tcp: trio.SocketStream) -> None:
        stream = trio.SSLStream(tcp, self.context, server_side=True)
        try:
            with trio.fail_after(TIMEOUT):
                await stream.do_handshake()
                self.alpn.append(stream.selected_alpn_protocol())
                await stream.send_all(b"ok")
                await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as exc:
            self.errors.append(exc)
            await trio.aclose_forcefully(stream)


@pytest.fixture
def certs(tmp_path: Path) -> CertificateSet:
    return ensure_certificates(tmp_path / "certs", ROUTES)


@pytest.fixture
def server(certs: CertificateSet) -> Iterator[TlsServer]:
    with TlsServer(certs.server_context(["h2", "http/1.1"], routed)) as running:
        yield running


def python_handshake(
    port: int,
    cafile: Path,
    server_hostname: str | None,
    alpn: Sequence[str] = ("h2", "http/1.1"),
) -> tuple[x509.Certificate, str | None]:
    """Handshake as a Python 3.13 client would by default (strict X.509); the peer certificate."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
    context.set_alpn_protocols(list(alpn))
    if server_hostname is None:
        context.check_hostname = False  # no name to check; the chain is still verified
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock,
        context.wrap_socket(sock, server_hostname=server_hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        assert tls.recv(2) == b"ok"
        return x509.load_der_x509_certificate(der), tls.selected_alpn_protocol()


def s_client(port: int, cafile: Path, *args: str) -> str:
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-CAfile",
            str(cafile),
            "-x509_strict",
            *args,
        ],
        input=b"",
        capture_output=True,
        timeout=10,
        check=False,
    )
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


def dns_sans(certificate: x509.Certificate) -> list[str]:
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sans.get_values_for_type(x509.DNSName)


def common_name(certificate: x509.Certificate) -> str:
    value = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(value, str)
    return value


def pem_certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def snapshot(directory: Path) -> dict[str, bytes]:
    names = ("ca.pem", "ca.key", "server.pem", "server.key")
    return {name: (directory / name).read_bytes() for name in names}


# --- files -------------------------------------------------------------------------------------


def test_first_use_creates_the_set_and_later_uses_reuse_it(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    first = ensure_certificates(directory, ROUTES)
    before = snapshot(directory)
    second = ensure_certificates(directory, ROUTES)

    assert snapshot(directory) == before
    assert first.warnings == second.warnings == ()
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE((directory / key).stat().st_mode) == 0o600
    chain = pem_certificates(directory / "server.pem")
    assert [cert.subject for cert in chain] == [first.leaf.subject, first.ca_certificate.subject]
    assert chain[1] == pem_certificates(directory / "ca.pem")[0]


def test_leaf_carries_the_expressible_names_and_the_local_addresses(
    certs: CertificateSet,
) -> None:
    assert certs.names == (
        "*.mrap.accesspoint.s3-global.amazonaws.com",
        "s3.amazonaws.com",
        "*.s3.amazonaws.com",
        "localhost",
        "127.0.0.1",
        "::1",
    )
    assert common_name(certs.leaf) == "*.mrap.accesspoint.s3-global.amazonaws.com"
    assert certs.covers(MRAP_HOST.upper() + ".")
    assert not certs.covers(REGIONAL_HOST)
    assert not certs.covers("bucket.localhost")
    assert isinstance(certs.leaf.public_key(), ec.EllipticCurvePublicKey)

    leaf_life = certs.leaf.not_valid_after_utc - certs.leaf.not_valid_before_utc
    assert datetime.timedelta(days=396) < leaf_life < datetime.timedelta(days=398)
    ca_life = certs.ca_certificate.not_valid_after_utc - certs.ca_certificate.not_valid_before_utc
    assert ca_life > datetime.timedelta(days=3649)

    ca_constraints = certs.ca_certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ca_constraints.critical and ca_constraints.value.ca
    usage = certs.ca_certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    leaf_constraints = certs.leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert not leaf_constraints.value.ca
    eku = certs.leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    aki = certs.leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = certs.ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ski.value.digest


def test_summary_tells_clients_how_to_trust_the_ca(certs: CertificateSet) -> None:
    summary = certs.summary()
    text = summary.render()
    ca = str(certs.paths.ca_certificate)
    assert f"--ca-bundle {ca}" in text
    assert f"AWS_CA_BUNDLE={certs.paths.ca_certificate.absolute()}" in text
    assert f"curl --cacert {ca}" in text
    assert "*.s3.amazonaws.com" in text
    assert summary.not_valid_after == certs.leaf.not_valid_after_utc
    assert summary.minting
    assert certs.describe() == text + "\n"


def test_expired_leaf_is_a_clear_error_and_renew_fixes_it(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    certs = ensure_certificates(directory, ROUTES)
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    expired = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(certs.ca_certificate.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "server.pem").write_bytes(
        expired.public_bytes(serialization.Encoding.PEM) + certs.ca_certificate.public_bytes(serialization.Encoding.PEM)
    )
    (directory / "server.key").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    with pytest.raises(CertificateError) as error:
        ensure_certificates(directory, ROUTES)
    message = str(error.value)
    assert f"{directory / 'server.pem'} expired on 2026-01-02" in message
    assert "mrapsim certs --renew" in message
    assert f"delete {directory / 'server.pem'}" in message

    ca_before = (directory / "ca.pem").read_bytes()
    renewed = renew_certificates(directory, ROUTES)
    assert (directory / "ca.pem").read_bytes() == ca_before
    assert renewed.leaf.not_valid_after_utc > datetime.datetime.now(datetime.UTC)
    assert ensure_certificates(directory, ROUTES).leaf == renewed.leaf


@pytest.mark.parametrize(
    ("file", "damage", "expected"),
    [
        ("ca.key", "garbage", "is not a PEM private key"),
        ("ca.pem", "garbage", "is not a PEM certificate"),
        ("server.pem", "garbage", "is not a PEM certificate"),
        ("server.key", "garbage", "is not a PEM private key"),
        ("ca.key", "directory", "is unreadable"),
        ("server.pem", "directory", "is unreadable"),
    ],
)
def test_a_broken_file_is_named_with_its_fix(tmp_path: Path, file: str, damage: str, expected: str) -> None:
    directory = tmp_path / "certs"
    ensure_certificates(directory, ROUTES)
    path = directory / file
    path.unlink()
    if damage == "garbage":
        path.write_bytes(b"not a certificate\n")
    else:
        path.mkdir()  # unreadable even for root, unlike chmod 000
    untouched = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}

    with pytest.raises(CertificateError) as error:
        ensure_certificates(directory, ROUTES)
    message = str(error.value)
    assert message.startswith(f"{path} {expected}")
    fix = "mrapsim certs --renew" if file.startswith("server") else "create a new CA"
    assert fix in message
    assert {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()} == untouched


def test_a_key_that_does_not_match_its_certificate_is_an_error(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    ensure_certificates(directory, ROUTES)
    (directory / "server.key").write_bytes((directory / "ca.key").read_bytes())
    with pytest.raises(CertificateError, match="is not the key of"):
        ensure_certificates(directory, ROUTES)


def test_a_leaf_from_another_ca_is_an_error(tmp_path: Path) -> None:
    ensure_certificates(tmp_path / "one", ROUTES)
    ensure_certificates(tmp_path / "two", ROUTES)
    shutil.copy(tmp_path / "two" / "ca.pem", tmp_path / "one" / "ca.pem")
    shutil.copy(tmp_path / "two" / "ca.key", tmp_path / "one" / "ca.key")
    with pytest.raises(CertificateError, match="was not issued by"):
        ensure_certificates(tmp_path / "one", ROUTES)


def test_a_name_the_leaf_lacks_is_warned_about_not_overwritten(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    ensure_certificates(directory, ROUTES)
    before = snapshot(directory)

    certs = ensure_certificates(directory, [*ROUTES, "new.example.com"])
    assert snapshot(directory) == before
    assert len(certs.warnings) == 1
    assert "does not cover new.example.com" in certs.warnings[0]
    assert "minted" in certs.warnings[0]
    assert "mrapsim certs --renew" in certs.warnings[0]

    renewed = renew_certificates(directory, [*ROUTES, "new.example.com"])
    assert renewed.warnings == ()
    assert "new.example.com" in renewed.names
    assert (directory / "ca.pem").read_bytes() == before["ca.pem"]


def test_a_missing_leaf_is_issued_from_the_existing_ca_but_a_lone_key_is_an_error(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "certs"
    first = ensure_certificates(directory, ROUTES)
    (directory / "server.pem").unlink()
    with pytest.raises(CertificateError) as error:
        ensure_certificates(directory, ROUTES)
    assert str(error.value).startswith(f"{directory / 'server.key'} exists without")

    (directory / "server.key").unlink()
    second = ensure_certificates(directory, ROUTES)
    assert second.ca_certificate == first.ca_certificate
    assert second.leaf != first.leaf


def test_without_the_ca_key_the_leaf_is_served_and_minting_is_off(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    ensure_certificates(directory, ROUTES)
    (directory / "ca.key").unlink()
    certs = ensure_certificates(directory, [*ROUTES, "new.example.com"])
    assert not certs.minting
    assert "nothing can be minted" in certs.warnings[0]
    with pytest.raises(CertificateError, match=r"ca\.key is missing"):
        renew_certificates(directory, ROUTES)


# --- handshakes --------------------------------------------------------------------------------


def test_python_client_verifies_localhost_ip_and_a_wildcard_name(certs: CertificateSet, server: TlsServer) -> None:
    ca = certs.paths.ca_certificate
    for host in ("localhost", "127.0.0.1", MRAP_HOST):
        peer, alpn = python_handshake(server.port, ca, host)
        assert peer == certs.leaf
        assert alpn == "h2"
    assert "::1" in certs.names  # not dialled: CI hosts often lack IPv6 loopback


@needs_openssl
@pytest.mark.parametrize(("name", "minted"), [(MRAP_HOST, False), (REGIONAL_HOST, True)])
def test_openssl_verifies_covered_and_minted_names_and_negotiates_h2(
    certs: CertificateSet, server: TlsServer, name: str, minted: bool
) -> None:
    output = s_client(
        server.port,
        certs.paths.ca_certificate,
        "-servername",
        name,
        "-verify_hostname",
        name,
        "-alpn",
        "h2",
    )
    assert "Verify return code: 0 (ok)" in output, output
    assert "ALPN protocol: h2" in output, output
    expected_cn = name if minted else "*.mrap.accesspoint.s3-global.amazonaws.com"
    assert f"CN = {expected_cn}" in output, output
    assert (certs.paths.minted / f"{name}.pem").exists() is minted
    assert server.alpn == ["h2"]


@needs_openssl
def test_without_sni_the_default_certificate_is_served(certs: CertificateSet, server: TlsServer) -> None:
    output = s_client(server.port, certs.paths.ca_certificate, "-noservername", "-alpn", "h2")
    assert "Verify return code: 0 (ok)" in output, output
    assert "CN = *.mrap.accesspoint.s3-global.amazonaws.com" in output, output
    peer, _ = python_handshake(server.port, certs.paths.ca_certificate, None)
    assert peer == certs.leaf
    assert certs.minted_names() == ()


def test_minted_certificates_are_cached_on_disk_and_reused(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    certs = ensure_certificates(directory, ROUTES)
    with TlsServer(certs.server_context(["h2", "http/1.1"], routed)) as server:
        peer, alpn = python_handshake(server.port, certs.paths.ca_certificate, REGIONAL_HOST)
        assert alpn == "h2"  # ALPN survives the context swap
        for host in ("bucket.localhost", "bucket.s3.eu-west-1.amazonaws.com"):
            other, _ = python_handshake(server.port, certs.paths.ca_certificate, host)
            assert dns_sans(other) == [host]
    assert dns_sans(peer) == [REGIONAL_HOST]
    assert common_name(peer) == REGIONAL_HOST
    minted_chain = directory / "minted" / f"{REGIONAL_HOST}.pem"
    minted_key = directory / "minted" / f"{REGIONAL_HOST}.key"
    assert pem_certificates(minted_chain) == [peer, certs.ca_certificate]
    assert stat.S_IMODE(minted_key.stat().st_mode) == 0o600
    assert set(certs.minted_names()) == {
        REGIONAL_HOST,
        "bucket.localhost",
        "bucket.s3.eu-west-1.amazonaws.com",
    }

    # A later start reuses the minted files; an http/1.1-only listener gets its own context.
    restarted = ensure_certificates(directory, ROUTES)
    with TlsServer(restarted.server_context(["http/1.1"], routed)) as server:
        again, alpn = python_handshake(server.port, certs.paths.ca_certificate, REGIONAL_HOST)
    assert again == peer
    assert alpn == "http/1.1"


def default_certificate_for(port: int, cafile: Path, server_name: bytes) -> x509.Certificate:
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = False  # the default leaf does not cover these names
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock,
        # bytes: sent as they are, without Python's IDNA checks
        context.wrap_socket(sock, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)


def test_names_outside_the_routes_get_the_default_certificate(certs: CertificateSet, server: TlsServer) -> None:
    peer = default_certificate_for(server.port, certs.paths.ca_certificate, b"example.com")
    assert peer == certs.leaf
    assert certs.minted_names() == ()


def test_names_that_are_not_dns_names_are_never_minted(certs: CertificateSet) -> None:
    # mint_for accepts anything here: the certificate set must validate names itself.
    bad_names = [
        b"s3.us_east_1.amazonaws.com",
        b"a..localhost",
        b"s3." + b"a" * 64 + b".amazonaws.com",
        b"-a.localhost",
        (b"a" * 63 + b".") * 3 + b"b" * 52 + b".localhost",  # 254 characters
    ]
    with TlsServer(certs.server_context(["h2"], lambda name: True)) as server:
        for name in bad_names:
            peer = default_certificate_for(server.port, certs.paths.ca_certificate, name)
            assert peer == certs.leaf, name
    assert certs.minted_names() == ()
    assert not certs.paths.minted.exists()


def test_the_minted_cache_in_memory_is_bounded(tmp_path: Path) -> None:
    certs = ensure_certificates(tmp_path / "certs", ROUTES, max_minted=2)
    hosts = [f"b{i}.localhost" for i in range(3)]
    with TlsServer(certs.server_context(["http/1.1"], routed)) as server:
        for host in hosts:
            python_handshake(server.port, certs.paths.ca_certificate, host)
    assert certs.minted_names() == tuple(hosts[1:])


def test_rsa_keys_on_request(tmp_path: Path) -> None:
    certs = ensure_certificates(tmp_path / "certs", ROUTES, key_type="rsa")
    assert certs.key_type == "rsa"
    public_key = certs.leaf.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 2048
    assert isinstance(certs.ca_certificate.public_key(), rsa.RSAPublicKey)
    with TlsServer(certs.server_context(["h2", "http/1.1"], routed)) as server:
        peer, alpn = python_handshake(server.port, certs.paths.ca_certificate, "localhost")
        assert peer == certs.leaf and alpn == "h2"
        minted, _ = python_handshake(server.port, certs.paths.ca_certificate, REGIONAL_HOST)
        assert isinstance(minted.public_key(), rsa.RSAPublicKey)


def test_asking_for_rsa_over_an_ecdsa_set_warns(tmp_path: Path) -> None:
    ensure_certificates(tmp_path / "certs", ROUTES)
    certs = ensure_certificates(tmp_path / "certs", ROUTES, key_type="rsa")
    assert certs.key_type == "ecdsa"
    assert any("--renew" in warning and "rsa" in warning for warning in certs.warnings)


def test_minted_leaves_can_live_in_their_own_directory(tmp_path: Path) -> None:
    minted = tmp_path / "cache" / "minted"
    certs = ensure_certificates(tmp_path / "certs", ["s3.*.amazonaws.com"], minted_dir=minted)
    assert certs.paths.minted == minted
