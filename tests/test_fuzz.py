"""The fuzz targets (fuzz/targets.py): hypothesis properties over arbitrary bytes and the
committed seeds, the findings atheris made as plain regression cases, and a few seconds of each
target under atheris itself (the README has the 60 s command)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.targets import TARGETS

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "fuzz" / "corpus"
CI_SECONDS = 4


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_seed_passes(name: str) -> None:
    seeds = sorted((CORPUS / name).iterdir())
    assert seeds, f"fuzz/corpus/{name} is empty"
    for seed in seeds:
        TARGETS[name](seed.read_bytes())


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_get_a_verdict(name: str, data: bytes) -> None:
    TARGETS[name](data)


@st.composite
def mutated_seeds(draw: st.DrawFn, name: str) -> bytes:
    seeds = sorted((CORPUS / name).iterdir())
    data = bytearray(draw(st.sampled_from(seeds)).read_bytes())
    for _ in range(draw(st.integers(0, 8))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=32)) + bytes(data[cut:])


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_seeds_get_a_verdict(name: str, data: st.DataObject) -> None:
    TARGETS[name](data.draw(mutated_seeds(name)))


SIG = "a" * 64


@pytest.mark.parametrize(
    ("name", "finding"),
    [
        # A signature with a non-ASCII character: hmac.compare_digest refused the str (a 500).
        (
            "sigv4",
            "\nhost: localhost\nx-amz-date: 20261201T120000Z\nx-amz-content-sha256: UNSIGNED-PAYLOAD\n"
            "authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261201/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=é".encode(),
        ),
        # X-Amz-Expires with a superscript digit: str.isdigit() said yes, int() said no (a 500).
        (
            "sigv4",
            b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261201%2Fus-east-1%2Fs3"
            b"%2Faws4_request&X-Amz-Date=20261201T120000Z&X-Amz-Expires=%C2%B3600&X-Amz-SignedHeaders=host"
            b"&X-Amz-Signature=" + SIG.encode() + b"\nhost: localhost",
        ),
        ("sigv4", b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=" + b"9" * 5000 + b"\nhost: localhost"),
        # An XML declaration naming an unknown encoding: LookupError from the parser (a 500).
        ("xml_document", b'<?xml version="1.0" encoding="UTF-9"?><Delete/>'),
        # An HTTP date with a year past datetime's range: OverflowError (a 500 on a conditional GET).
        ("range_and_conditions", b"\x00\x00\x00\x10Wed, 21 Oct 99999999999 07:28:00 GMT"),
        ("range_and_conditions", b"\x00\x00\x00\x10bytes=" + b"9" * 5000 + b"-"),
    ],
    ids=[
        "sigv4-non-ascii-signature",
        "sigv4-superscript-expires",
        "sigv4-long-expires",
        "xml-unknown-encoding",
        "http-date-overflow",
        "range-5000-digits",
    ],
)
def test_findings_stay_fixed(name: str, finding: bytes) -> None:
    TARGETS[name](finding)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed (test extra)")
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_atheris_finds_nothing_in_a_few_seconds(name: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "fuzz.run",
            name,
            f"-max_total_time={CI_SECONDS}",
            "-timeout=10",
            "-rss_limit_mb=1024",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path),
            str(CORPUS / name),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "DONE" in run.stderr
