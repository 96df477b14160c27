"""tls/trust.py: a presented chain judged against the expected CAs — trusted, untrusted for the
name or the dates, or leading to none of them (an intercepting hop)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mrapsim.tls.client_outcomes import ClientOutcome
from mrapsim.tls.trust import ExpectedCA, judge_chain

NOW = dt.datetime.now(dt.UTC)
NAME = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    names: tuple[str, ...] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if subject != issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if ca:
        builder = builder.add_extension(CA_USAGE, critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


ROOT_KEY, INTERMEDIATE_KEY, LEAF_KEY, IMPOSTOR_KEY = key(), key(), key(), key()
ROOT = issue("root", ROOT_KEY, "root", ROOT_KEY, ca=True)
INTERMEDIATE = issue("intermediate", INTERMEDIATE_KEY, "root", ROOT_KEY, ca=True)
LEAF = issue("edge", LEAF_KEY, "intermediate", INTERMEDIATE_KEY, ca=False, names=(f"*.{NAME.split('.', 1)[1]}",))
# An interceptor's CA that copies the expected CA's name, on its own key.
IMPOSTOR = issue("root", IMPOSTOR_KEY, "root", IMPOSTOR_KEY, ca=True)
FORGED = issue("edge", LEAF_KEY, "root", IMPOSTOR_KEY, ca=False, names=(NAME,))

EXPECT_ROOT = ExpectedCA((ROOT,), "--ca-bundle root.pem", names_interception=True)


def test_a_chain_through_an_intermediate_is_trusted() -> None:
    assert judge_chain([LEAF, INTERMEDIATE], NAME, EXPECT_ROOT, NOW).outcome is ClientOutcome.OK


def test_the_expected_ca_for_another_name_is_untrusted_not_intercepted() -> None:
    verdict = judge_chain([LEAF, INTERMEDIATE], "other.example", EXPECT_ROOT, NOW)
    assert verdict.outcome is ClientOutcome.UNTRUSTED and verdict.error


def test_a_chain_to_another_ca_is_an_interception() -> None:
    assert judge_chain([FORGED], NAME, EXPECT_ROOT, NOW).outcome is ClientOutcome.INTERCEPTED


def test_without_an_expectation_it_is_only_untrusted() -> None:
    system = ExpectedCA((ROOT,), "the system store", names_interception=False)
    assert judge_chain([FORGED], NAME, system, NOW).outcome is ClientOutcome.UNTRUSTED
