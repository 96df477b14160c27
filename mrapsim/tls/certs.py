"""The local CA, the server certificate chain and certificates minted per server name.

mrapsim stands where a real AWS endpoint would, so clients (aws-cli, boto3, curl, Envoy) must
verify its certificate. On first use `ensure_certificates` creates in the certificates directory:

    ca.pem, ca.key          a local CA; ca.pem is what clients trust (`--ca-bundle certs/ca.pem`)
    server.pem, server.key  the default leaf followed by the CA (the chain the server sends)
    minted/<name>.pem|.key  leaves minted on demand, one per server name (a cache)

The leaf carries every configured route name an X.509 SAN can express (a wildcard only as the
whole leftmost label, at least three labels), plus `localhost`, 127.0.0.1 and ::1. A route that no
SAN can express (`s3.*.amazonaws.com`, `*.localhost`) is served by minting: during the handshake,
`CertificateSet.server_context`'s SNI callback issues a leaf for exactly that name from the local
CA (ECDSA P-256 takes about a millisecond), caches it in a bounded LRU and on disk, and swaps it
into the connection.

Existing files are reused and never silently overwritten: a file that is unreadable, expired or
does not belong to the set stops start-up with a `CertificateError` that names the file and the
fix. A leaf that lacks a name the configuration now needs is kept; the name is minted instead and
the returned set says so in `warnings`. `renew_certificates` (`mrapsim certs --renew`) re-issues
the leaf and keeps a still-valid CA, so clients keep trusting the same ca.pem.

The certificates satisfy OpenSSL's X509_V_FLAG_X509_STRICT (Python 3.13's default client flags):
the CA has critical basicConstraints, keyUsage and a subject key identifier; every certificate
carries an authority key identifier.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import ipaddress
import logging
import os
import re
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mrapsim.names import is_ip_literal, is_san_expressible, name_matches, normalize_name

__all__ = [
    "CertificateError",
    "CertificatePaths",
    "CertificateSet",
    "CertificateSummary",
    "KeyType",
    "client_hints",
    "ensure_certificates",
    "is_host_name",
    "renew_certificates",
]

logger = logging.getLogger(__name__)

KeyType: TypeAlias = Literal["ecdsa", "rsa"]
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
SniCallback: TypeAlias = Callable[[ssl.SSLObject, str | None, ssl.SSLContext], None]

CA_VALIDITY = datetime.timedelta(days=3650)
# 397 days is the longest leaf lifetime browsers and Apple's TLS stack accept.
LEAF_VALIDITY = datetime.timedelta(days=397)
# Backdating absorbs small clock differences between this host and its clients (VMs, CI runners).
BACKDATE = datetime.timedelta(hours=1)
RENEW_WARNING = datetime.timedelta(days=30)
# A minted leaf this close to expiry is minted again rather than served.
MINT_MARGIN = datetime.timedelta(days=1)
RSA_KEY_BITS = 2048
# Minted leaves kept, in memory and on disk alike (least recently used go): both caches are keyed
# by client-chosen names. `[limits] minted_certificates` sets it.
DEFAULT_MAX_MINTED = 256
MAX_HOST_NAME = 253
# X.509 upper bound for a commonName (RFC 5280 ub-common-name).
MAX_COMMON_NAME = 64
LOCAL_DNS_NAMES = ("localhost",)
LOCAL_IPS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
CA_COMMON_NAME = "mrapsim local CA"
ORGANIZATION = "mrapsim"
# The one name a `wrong_name` certificate fault's leaf holds: under .invalid, no client asks for it.
FAULTY_WRONG_NAME = "wrong-name.mrapsim.invalid"

_LDH_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


class CertificateError(Exception):
    """A certificate file is missing, unreadable, invalid or expired; the message says the fix."""


def is_host_name(name: str) -> bool:
    """Whether `name` (already normalised) is a DNS host name made of LDH labels, ≤ 253 chars.

    Minted file names are built from it, so this is also what keeps them inside `minted/`.
    """
    if not name or len(name) > MAX_HOST_NAME or is_ip_literal(name):
        return False
    return all(_LDH_LABEL.fullmatch(label) for label in name.split("."))


def _is_san_pattern(name: str) -> bool:
    """A host name, or one whose whole leftmost label is `*`, that a SAN can carry."""
    if not is_san_expressible(name):
        return False
    labels = name.split(".")
    return is_host_name(".".join(labels[1:]) if labels[0] == "*" else name)


@dataclass(frozen=True)
class CertificatePaths:
    """Where each file of a certificate set lives inside the certificates directory.

    Minted leaves go to `minted_dir` when one is given: in a container the certificates may be
    a read-only Secret while the minted cache needs a writable volume.
    """

    directory: Path
    minted_dir: Path | None = None

    @property
    def ca_certificate(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def chain(self) -> Path:
        return self.directory / "server.pem"

    @property
    def key(self) -> Path:
        return self.directory / "server.key"

    @property
    def minted(self) -> Path:
        return self.minted_dir or self.directory / "minted"

    @property
    def lock(self) -> Path:
        return self.directory / ".lock"

    def minted_chain(self, name: str) -> Path:
        return self.minted / f"{name}.pem"

    def minted_key(self, name: str) -> Path:
        return self.minted / f"{name}.key"

    def ca_fix(self) -> str:
        return (
            f"restore it, or delete {self.ca_certificate} and {self.ca_key} and run "
            f"`mrapsim certs` to create a new CA (clients must then trust the new "
            f"{self.ca_certificate})"
        )

    def leaf_fix(self) -> str:
        return f"run `mrapsim certs --renew` or delete {self.chain} and {self.key}"


@dataclass(frozen=True)
class CertificateSummary:
    """What `mrapsim certs` prints: the files, the names served and how clients trust them."""

    ca_certificate: Path
    ca_key: Path
    chain: Path
    key: Path
    minted: Path
    key_type: KeyType
    names: tuple[str, ...]
    not_valid_after: datetime.datetime
    ca_not_valid_after: datetime.datetime
    ca_sha256: str
    minting: bool
    warnings: tuple[str, ...]
    client_hints: tuple[str, ...]

    def render(self) -> str:
        lines = [
            f"CA certificate:  {self.ca_certificate} (expires {_day(self.ca_not_valid_after)}, "
            f"SHA-256 {self.ca_sha256})",
            f"CA key:          {self.ca_key}",
            f"server chain:    {self.chain} ({self.key_type}, expires {_day(self.not_valid_after)})",
            f"server key:      {self.key}",
            f"names:           {', '.join(self.names)}",
            f"minted:          {self.minted}/" + ("" if self.minting else f" (disabled: {self.ca_key} is absent)"),
            "",
            "Clients trust mrapsim with:",
            *(f"  {hint}" for hint in self.client_hints),
        ]
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


def client_hints(ca_certificate: Path) -> tuple[str, ...]:
    """The ways aws-cli, SDKs and curl are told to trust `ca_certificate`."""
    # The environment variable outlives a `cd`, so it gets the absolute path.
    return (
        f"aws --ca-bundle {ca_certificate} ...",
        f"export AWS_CA_BUNDLE={ca_certificate.absolute()}",
        f"curl --cacert {ca_certificate} https://...",
    )


@dataclass(frozen=True)
class _WantedNames:
    dns: tuple[str, ...]
    warnings: tuple[str, ...]


def _wanted_names(names: Sequence[str]) -> _WantedNames:
    """The leaf's DNS SANs: the SAN-expressible route names, then `localhost`, deduplicated."""
    dns: list[str] = []
    warnings: list[str] = []
    for raw in names:
        name = normalize_name(raw)
        if is_ip_literal(name):
            continue  # SNI never carries an IP literal (RFC 6066), so a route never matches one
        if not is_san_expressible(name):
            continue  # served by minting
        if not _is_san_pattern(name):
            warnings.append(f"{raw!r} is not a DNS name; it is left out of the certificate")
            continue
        if name not in dns:
            dns.append(name)
    dns += [name for name in LOCAL_DNS_NAMES if name not in dns]
    return _WantedNames(tuple(dns), tuple(warnings))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _day(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d")


# --- issuing -----------------------------------------------------------------------------------


def _new_private_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return ec.generate_private_key(ec.SECP256R1())


def _key_type_of(key: PrivateKey) -> KeyType:
    return "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ecdsa"


def _issue_ca(key: PrivateKey, now: datetime.datetime) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
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
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )


def _authority_key_identifier(ca: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    # Strict verifiers match AKI to the CA's SKI; a CA brought by the user may lack an SKI.
    try:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        public_key = ca.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise CertificateError("the CA's key is neither ECDSA nor RSA") from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _leaf_subject(dns_names: Sequence[str]) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)]
    if dns_names and len(dns_names[0]) <= MAX_COMMON_NAME:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0]))
    return x509.Name(attributes)


def _issue_leaf(
    ca: x509.Certificate,
    ca_key: PrivateKey,
    key: PrivateKey,
    dns_names: Sequence[str],
    ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
    now: datetime.datetime,
) -> x509.Certificate:
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ip) for ip in ips]
    not_after = min(now + LEAF_VALIDITY, ca.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_leaf_subject(dns_names))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # TLS 1.2 RSA key exchange encrypts to the key; ECDSA keys only sign.
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_identifier(ca), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


# --- files -------------------------------------------------------------------------------------


def _write_file(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """Write `path` atomically with `mode`; without `replace`, never clobber an existing file."""
    try:
        _write_complete_file(path, data, mode, replace=replace)
    except FileExistsError:
        raise CertificateError(
            f"{path} appeared while mrapsim was creating it (is another mrapsim creating "
            f"certificates in {path.parent}?); run the command again"
        ) from None
    except OSError as exc:
        raise CertificateError(
            f"cannot write {path} ({exc.strerror or exc}); make {path.parent} writable or "
            f"choose another directory with --certs-dir"
        ) from exc


def _write_complete_file(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    # Readers (another worker, a crash and restart) see the whole file or none of it.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        if replace:
            os.replace(temporary, path)
            return
        try:
            # link() fails if the name exists: exclusive creation of a complete file.
            os.link(temporary, path)
        except FileExistsError:
            raise
        except OSError:
            _write_exclusive(path, data, mode)  # a file system without hard links
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _write_exclusive(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _read_file(path: Path, fix: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"{path} is unreadable ({exc.strerror or exc}); {fix}") from exc


def _load_certificates(path: Path, fix: str) -> list[x509.Certificate]:
    data = _read_file(path, fix)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateError(f"{path} is not a PEM certificate ({exc}); {fix}") from exc
    return certificates


def _load_private_key(path: Path, fix: str) -> PrivateKey:
    data = _read_file(path, fix)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise CertificateError(f"{path} is encrypted; mrapsim needs an unencrypted key: {fix}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"{path} is not a PEM private key ({exc}); {fix}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError(f"{path} holds a key that is neither ECDSA nor RSA; {fix}")
    return key


def _same_public_key(key: PrivateKey, certificate: x509.Certificate) -> bool:
    encoding, form = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(encoding, form) == certificate.public_key().public_bytes(encoding, form)


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _chain_reaches(chain: Sequence[x509.Certificate], ca: x509.Certificate) -> bool:
    """Whether the leaf `chain[0]` leads to `ca`, possibly through intermediates in `chain`."""
    current = chain[0]
    for candidate in (*chain[1:], ca):
        if _issued_by(current, ca):
            return True
        if _issued_by(current, candidate):
            current = candidate
    return _issued_by(current, ca)


def _dns_sans(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(normalize_name(name) for name in sans.get_values_for_type(x509.DNSName))


def _ip_sans(
    certificate: x509.Certificate,
) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        ip
        for ip in sans.get_values_for_type(x509.IPAddress)
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    )


def _covers(patterns: Sequence[str], name: str) -> bool:
    """Whether SANs `patterns` cover `name`, which may itself be a wildcard pattern."""
    return name in patterns or ("*" not in name and any(name_matches(p, name) for p in patterns))


@contextlib.contextmanager
def _directory_lock(paths: CertificatePaths) -> Iterator[None]:
    """Serialise certificate creation between processes (`--workers N` start together)."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; creation stays exclusive per file (os.link)
        yield
        return
    try:
        handle = open(paths.lock, "a+b")  # noqa: SIM115 - held across the yield
    except OSError:
        yield  # a read-only directory (a Kubernetes Secret): nothing will be written
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertificateError(
            f"cannot create {directory} ({exc.strerror or exc}); create it or choose another directory with --certs-dir"
        ) from exc


# --- the CA ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Authority:
    certificate: x509.Certificate
    key: PrivateKey | None  # None: a CA brought without its key; minting is then disabled
    warnings: tuple[str, ...] = ()


def _create_ca(paths: CertificatePaths, key_type: KeyType, *, replace: bool) -> _Authority:
    key = _new_private_key(key_type)
    certificate = _issue_ca(key, _now())
    _write_file(paths.ca_key, _key_pem(key), 0o600, replace=replace)
    _write_file(paths.ca_certificate, _cert_pem(certificate), 0o644, replace=replace)
    return _Authority(certificate, key)


def _load_ca(paths: CertificatePaths, *, renew: bool, key_type: KeyType) -> _Authority:
    fix = paths.ca_fix()
    certificates = _load_certificates(paths.ca_certificate, fix)
    certificate = certificates[0]
    now = _now()
    if certificate.not_valid_after_utc <= now:
        if renew:
            authority = _create_ca(paths, key_type, replace=True)
            warning = (
                f"{paths.ca_certificate} expired on {_day(certificate.not_valid_after_utc)}; "
                f"a new CA was created: clients must trust the new {paths.ca_certificate}"
            )
            return _Authority(authority.certificate, authority.key, (warning,))
        raise CertificateError(
            f"{paths.ca_certificate} expired on {_day(certificate.not_valid_after_utc)}; run "
            f"`mrapsim certs --renew` (creates a new CA: clients must then trust the new "
            f"{paths.ca_certificate}) or delete {paths.ca_certificate} and {paths.ca_key}"
        )
    warnings: list[str] = []
    if certificate.not_valid_after_utc - now < RENEW_WARNING:
        warnings.append(
            f"{paths.ca_certificate} expires on {_day(certificate.not_valid_after_utc)}; "
            f"delete {paths.ca_certificate} and {paths.ca_key} and run `mrapsim certs`"
        )
    if not paths.ca_key.exists():
        return _Authority(certificate, None, tuple(warnings))
    key = _load_private_key(paths.ca_key, fix)
    if not _same_public_key(key, certificate):
        raise CertificateError(f"{paths.ca_key} is not the key of {paths.ca_certificate}; {fix}")
    return _Authority(certificate, key, tuple(warnings))


def _ensure_ca(paths: CertificatePaths, key_type: KeyType, *, renew: bool) -> _Authority:
    if paths.ca_certificate.exists():
        return _load_ca(paths, renew=renew, key_type=key_type)
    if paths.ca_key.exists():
        raise CertificateError(
            f"{paths.ca_key} exists without {paths.ca_certificate} (an interrupted run?); "
            f"restore {paths.ca_certificate}, or delete {paths.ca_key} to create a new CA"
        )
    if paths.chain.exists() and not renew:
        raise CertificateError(
            f"{paths.chain} exists but its CA {paths.ca_certificate} does not; put the issuing "
            f"CA certificate in {paths.ca_certificate}, or {paths.leaf_fix()}"
        )
    return _create_ca(paths, key_type, replace=False)


# --- the default leaf --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Leaf:
    certificate: x509.Certificate
    key_type: KeyType
    warnings: tuple[str, ...] = ()


def _issue_default_leaf(
    paths: CertificatePaths,
    authority: _Authority,
    wanted: _WantedNames,
    key_type: KeyType,
    *,
    replace: bool,
) -> _Leaf:
    if authority.key is None:
        raise CertificateError(
            f"{paths.ca_key} is missing, so mrapsim cannot issue {paths.chain}; restore "
            f"{paths.ca_key}, or delete {paths.ca_certificate} to create a new CA"
        )
    key = _new_private_key(key_type)
    leaf = _issue_leaf(authority.certificate, authority.key, key, wanted.dns, LOCAL_IPS, _now())
    _write_file(paths.key, _key_pem(key), 0o600, replace=replace)
    _write_file(paths.chain, _cert_pem(leaf, authority.certificate), 0o644, replace=replace)
    return _Leaf(leaf, key_type)


def _coverage_warnings(
    paths: CertificatePaths, leaf: x509.Certificate, wanted: _WantedNames, minting: bool
) -> list[str]:
    sans = _dns_sans(leaf)
    missing = [name for name in wanted.dns if not _covers(sans, name)]
    if not missing:
        return []
    served = (
        "connections for these names get a certificate minted from the local CA"
        if minting
        else f"connections for these names get {paths.chain}, which clients will reject "
        f"({paths.ca_key} is absent, so nothing can be minted)"
    )
    return [
        f"{paths.chain} does not cover {', '.join(missing)}; {served}; run "
        f"`mrapsim certs --renew` to add them to {paths.chain}"
    ]


def _load_leaf(paths: CertificatePaths, authority: _Authority, wanted: _WantedNames, key_type: KeyType) -> _Leaf:
    fix = paths.leaf_fix()
    chain = _load_certificates(paths.chain, fix)
    if not paths.key.exists():
        raise CertificateError(f"{paths.key} is missing but {paths.chain} exists; {fix}")
    key = _load_private_key(paths.key, fix)
    leaf = chain[0]
    if not _same_public_key(key, leaf):
        raise CertificateError(f"{paths.key} is not the key of {paths.chain}; {fix}")
    if not _chain_reaches(chain, authority.certificate):
        raise CertificateError(
            f"{paths.chain} was not issued by {paths.ca_certificate}, so clients trusting "
            f"{paths.ca_certificate} would reject it; {fix}"
        )
    now = _now()
    if leaf.not_valid_after_utc <= now:
        raise CertificateError(f"{paths.chain} expired on {_day(leaf.not_valid_after_utc)}; {fix}")
    if leaf.not_valid_before_utc > now:
        raise CertificateError(
            f"{paths.chain} is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
            f"(is this host's clock right?); {fix}"
        )
    warnings = _coverage_warnings(paths, leaf, wanted, authority.key is not None)
    if leaf.not_valid_after_utc - now < RENEW_WARNING:
        warnings.append(f"{paths.chain} expires on {_day(leaf.not_valid_after_utc)}; run `mrapsim certs --renew`")
    missing_ips = [str(ip) for ip in LOCAL_IPS if ip not in _ip_sans(leaf)]
    if missing_ips:
        warnings.append(
            f"{paths.chain} has no IP SAN for {', '.join(missing_ips)}; clients connecting by "
            f"IP address will reject it; run `mrapsim certs --renew`"
        )
    actual_type = _key_type_of(key)
    if actual_type != key_type:
        warnings.append(
            f"{paths.key} is {actual_type}, not {key_type}; run `mrapsim certs --renew` to re-issue it as {key_type}"
        )
    return _Leaf(leaf, actual_type, tuple(warnings))


# --- minting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MintedFiles:
    chain: Path
    key: Path
    not_valid_after: datetime.datetime


class _Minter:
    """Leaves for single names, from the local CA: an LRU of server contexts over a disk cache.

    The names come from clients' SNI, so both caches are bounded: a hostile client cycling
    through names costs CPU per handshake, never unbounded memory or disk.
    """

    def __init__(
        self,
        paths: CertificatePaths,
        authority: _Authority,
        key_type: KeyType,
        max_cached: int,
    ) -> None:
        self._paths = paths
        self._ca = authority.certificate
        self._ca_key = authority.key
        self._key_type = key_type
        self._max_cached = max_cached
        # One context per (name, ALPN): each listener offers its own ALPN list.
        self._contexts: collections.OrderedDict[
            tuple[str, tuple[str, ...]], tuple[ssl.SSLContext, datetime.datetime]
        ] = collections.OrderedDict()
        self._files_on_disk: int | None = None
        # SNI callbacks run inside handshakes; --workers or threaded servers may run several.
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._ca_key is not None

    def cached_names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(dict.fromkeys(name for name, _ in self._contexts))

    def context_for(self, name: str, alpn: tuple[str, ...]) -> ssl.SSLContext | None:
        """A server context holding a leaf for exactly `name`, or None if none can be made."""
        name = normalize_name(name)
        if self._ca_key is None or not is_host_name(name):
            return None
        with self._lock:
            cached = self._contexts.get((name, alpn))
            if cached is not None and cached[1] - _now() > MINT_MARGIN:
                self._contexts.move_to_end((name, alpn))
                return cached[0]
            context, not_after = self._build_context(name, alpn, self._ca_key)
            self._contexts[(name, alpn)] = (context, not_after)
            self._contexts.move_to_end((name, alpn))
            while len(self._contexts) > self._max_cached:
                self._contexts.popitem(last=False)
            return context

    def _build_context(
        self, name: str, alpn: tuple[str, ...], ca_key: PrivateKey
    ) -> tuple[ssl.SSLContext, datetime.datetime]:
        files = self._load_from_disk(name)
        if files is not None:
            return _new_server_context(files.chain, files.key, alpn), files.not_valid_after
        key = _new_private_key(self._key_type)
        leaf = _issue_leaf(self._ca, ca_key, key, (name,), (), _now())
        chain_pem, key_pem = _cert_pem(leaf, self._ca), _key_pem(key)
        if self._store_on_disk(name, chain_pem, key_pem):
            context = _new_server_context(self._paths.minted_chain(name), self._paths.minted_key(name), alpn)
        else:
            context = _server_context_from_memory(chain_pem, key_pem, alpn)
        return context, leaf.not_valid_after_utc

    def _load_from_disk(self, name: str) -> _MintedFiles | None:
        """A valid minted pair from an earlier run, or None (a cache miss, not an error)."""
        chain_path, key_path = self._paths.minted_chain(name), self._paths.minted_key(name)
        if not chain_path.exists() or not key_path.exists():
            return None
        try:
            chain = _load_certificates(chain_path, "minting it again")
            key = _load_private_key(key_path, "minting it again")
        except CertificateError as exc:
            logger.warning("%s", exc)
            return None
        leaf = chain[0]
        valid = (
            _dns_sans(leaf) == (name,)
            and _same_public_key(key, leaf)
            and _issued_by(leaf, self._ca)
            and leaf.not_valid_after_utc - _now() > MINT_MARGIN
        )
        if not valid:
            return None
        with contextlib.suppress(OSError):
            os.utime(chain_path)  # recently used: the disk cache evicts the least recently used
        return _MintedFiles(chain_path, key_path, leaf.not_valid_after_utc)

    def _store_on_disk(self, name: str, chain_pem: bytes, key_pem: bytes) -> bool:
        chain_path = self._paths.minted_chain(name)
        try:
            self._paths.minted.mkdir(parents=True, exist_ok=True)
            if self._files_on_disk is None:
                self._files_on_disk = sum(1 for _ in self._paths.minted.glob("*.pem"))
            is_new = not chain_path.exists()
            if is_new and self._files_on_disk >= self._max_cached:
                self._files_on_disk -= self._evict_from_disk(self._files_on_disk - self._max_cached + 1)
            # Key first: a reader that sees the new chain with the old key rejects the pair.
            _write_file(self._paths.minted_key(name), key_pem, 0o600, replace=True)
            _write_file(chain_path, chain_pem, 0o644, replace=True)
        except (OSError, CertificateError) as exc:
            logger.warning("minted certificate for %s kept in memory only: %s", name, exc)
            return False
        self._files_on_disk += int(is_new)
        return True

    def _evict_from_disk(self, count: int) -> int:
        """Remove the `count` least recently used minted pairs (a use touches the chain file);
        returns how many went. The disk cache is bounded like the memory one: names come from
        clients' SNI."""
        chains = sorted(self._paths.minted.glob("*.pem"), key=_mtime)
        removed = 0
        for chain in chains[:count]:
            for path in (chain, chain.with_suffix(".key")):
                path.unlink(missing_ok=True)
            removed += 1
        return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _new_server_context(chain: Path, key: Path, alpn: Sequence[str]) -> ssl.SSLContext:
    """The one recipe for every server context, so a swapped-in context behaves the same."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # No renegotiation: the edge's TLS stream (edge/tls.py) does not drive one, and S3 refuses it.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    if alpn:
        # OpenSSL picks ALPN after the SNI callback, from the swapped-in context: set it here too.
        context.set_alpn_protocols(list(alpn))
    context.load_cert_chain(chain, key)
    return context


def _server_context_from_memory(chain_pem: bytes, key_pem: bytes, alpn: Sequence[str]) -> ssl.SSLContext:
    # load_cert_chain only reads files; a private temporary directory stands in for minted/.
    with tempfile.TemporaryDirectory(prefix="mrapsim-mint-") as directory:
        chain, key = Path(directory, "chain.pem"), Path(directory, "key.pem")
        chain.write_bytes(chain_pem)
        key.write_bytes(key_pem)
        return _new_server_context(chain, key, alpn)


# --- the set -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateSet:
    """A loaded certificate set: the CA, the default leaf and the minting cache.

    `warnings` lists what start-up should print (names served by minting, coming expiry).
    """

    paths: CertificatePaths
    key_type: KeyType
    ca_certificate: x509.Certificate
    leaf: x509.Certificate
    warnings: tuple[str, ...]
    minter: _Minter = field(repr=False, compare=False)

    @property
    def dns_names(self) -> tuple[str, ...]:
        return _dns_sans(self.leaf)

    @property
    def names(self) -> tuple[str, ...]:
        """The leaf's SANs as text: DNS names, then IP addresses."""
        return self.dns_names + tuple(str(ip) for ip in _ip_sans(self.leaf))

    @property
    def minting(self) -> bool:
        return self.minter.enabled

    def covers(self, name: str) -> bool:
        """Whether the default leaf is valid for server name `name`."""
        return _covers(self.dns_names, normalize_name(name))

    def minted_names(self) -> tuple[str, ...]:
        """Names with a minted certificate in the in-memory cache, least recently used first."""
        return self.minter.cached_names()

    def summary(self) -> CertificateSummary:
        return CertificateSummary(
            ca_certificate=self.paths.ca_certificate,
            ca_key=self.paths.ca_key,
            chain=self.paths.chain,
            key=self.paths.key,
            minted=self.paths.minted,
            key_type=self.key_type,
            names=self.names,
            not_valid_after=self.leaf.not_valid_after_utc,
            ca_not_valid_after=self.ca_certificate.not_valid_after_utc,
            ca_sha256=self.ca_certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
            minting=self.minting,
            warnings=self.warnings,
            client_hints=client_hints(self.paths.ca_certificate),
        )

    def describe(self) -> str:
        """The text `mrapsim certs` prints: files, names, expiry, client hints, warnings."""
        return self.summary().render() + "\n"

    def server_context(self, alpn: Sequence[str], mint_for: Callable[[str], bool]) -> ssl.SSLContext:
        """A TLS ≥ 1.2 server context serving the default chain, minting per SNI on demand.

        The SNI callback keeps the default certificate when there is no SNI, when the leaf
        covers the name, or when `mint_for(name)` is False; otherwise it swaps in a context
        (same ALPN and options) holding a leaf minted for exactly that name.
        """
        context = _new_server_context(self.paths.chain, self.paths.key, alpn)
        context.sni_callback = self._sni_callback(tuple(alpn), mint_for)
        return context

    def faulty_context(self, kind: str, name: str, alpn: Sequence[str]) -> ssl.SSLContext:
        """A server context whose certificate is wrong in exactly one way (the `certificate` TLS
        fault, docs/faults.md): `expired` (for `name`, by mrapsim's CA, expired days ago),
        `wrong_name` (by mrapsim's CA, for a name no client asks for), `untrusted` (for `name`,
        by a CA of its own that no client trusts). CertificateError without the CA's key."""
        now = _now()
        key = _new_private_key(self.key_type)
        if kind == "untrusted":
            issuer_key = _new_private_key(self.key_type)
            issuer = _issue_ca(issuer_key, now)
        else:
            issuer, issuer_key = self.ca_certificate, _load_private_key(self.paths.ca_key, self.paths.ca_fix())
        names = [FAULTY_WRONG_NAME] if kind == "wrong_name" else [name]
        issued = now - LEAF_VALIDITY - datetime.timedelta(days=3) if kind == "expired" else now
        leaf = _issue_leaf(issuer, issuer_key, key, names, [], issued)
        # The untrusted issuer stays out of the chain, as with a server whose CA nobody has.
        chain = _cert_pem(leaf) if kind == "untrusted" else _cert_pem(leaf, issuer)
        return _server_context_from_memory(chain, _key_pem(key), alpn)

    def _sni_callback(self, alpn: tuple[str, ...], mint_for: Callable[[str], bool]) -> SniCallback:
        def choose_certificate(connection: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
            if server_name is None:
                return
            name = normalize_name(server_name)
            if self.covers(name) or not is_host_name(name) or not mint_for(name):
                return
            try:
                minted = self.minter.context_for(name, alpn)
            except (OSError, ValueError, ssl.SSLError, CertificateError):
                # Raising here would abort the handshake with an opaque internal_error alert.
                logger.exception("cannot mint a certificate for %s; serving the default", name)
                return
            if minted is not None:
                connection.context = minted

        return choose_certificate


def _load_set(
    certs_dir: Path,
    names: Sequence[str],
    key_type: KeyType,
    *,
    renew: bool,
    max_minted: int,
    minted_dir: Path | None = None,
) -> CertificateSet:
    if key_type not in ("ecdsa", "rsa"):
        raise CertificateError(f"key type {key_type!r} is not supported; use ecdsa or rsa")
    paths = CertificatePaths(Path(certs_dir), Path(minted_dir) if minted_dir else None)
    wanted = _wanted_names(names)
    _make_directory(paths.directory)
    with _directory_lock(paths):
        authority = _ensure_ca(paths, key_type, renew=renew)
        if renew:
            leaf = _issue_default_leaf(paths, authority, wanted, key_type, replace=True)
        elif paths.chain.exists():
            leaf = _load_leaf(paths, authority, wanted, key_type)
        elif paths.key.exists():
            raise CertificateError(
                f"{paths.key} exists without {paths.chain} (an interrupted run?); {paths.leaf_fix()}"
            )
        else:
            leaf = _issue_default_leaf(paths, authority, wanted, key_type, replace=False)
    return CertificateSet(
        paths=paths,
        key_type=leaf.key_type,
        ca_certificate=authority.certificate,
        leaf=leaf.certificate,
        warnings=wanted.warnings + authority.warnings + leaf.warnings,
        minter=_Minter(paths, authority, key_type, max_minted),
    )


def ensure_certificates(
    certs_dir: Path,
    names: Sequence[str],
    key_type: KeyType = "ecdsa",
    *,
    max_minted: int = DEFAULT_MAX_MINTED,
    minted_dir: Path | None = None,
) -> CertificateSet:
    """Load the certificate set in `certs_dir`, creating whatever is absent.

    Existing files are reused, never overwritten; a broken one raises `CertificateError`.
    `names` are the route patterns; those no SAN can express are minted on demand.
    """
    return _load_set(certs_dir, names, key_type, renew=False, max_minted=max_minted, minted_dir=minted_dir)


def renew_certificates(
    certs_dir: Path,
    names: Sequence[str],
    key_type: KeyType = "ecdsa",
    *,
    max_minted: int = DEFAULT_MAX_MINTED,
    minted_dir: Path | None = None,
) -> CertificateSet:
    """Re-issue the default leaf for `names`; keep the CA unless it has expired."""
    return _load_set(certs_dir, names, key_type, renew=True, max_minted=max_minted, minted_dir=minted_dir)
