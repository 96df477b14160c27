"""s3fs (aiobotocore) against the S3 listener, unchanged. aiobotocore pins a botocore of its own,
so s3fs gets a virtual environment of its own rather than sharing aws-cli's botocore."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.mrapsim_process import MrapsimProcess

SCRIPT = textwrap.dedent(
    """
    import sys
    import s3fs

    port, ca = sys.argv[1], sys.argv[2]
    fs = s3fs.S3FileSystem(
        key="AKIAIOSFODNN7EXAMPLE", secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        endpoint_url=f"https://localhost:{port}", client_kwargs={"verify": ca, "region_name": "us-east-1"},
    )
    assert "mraps3sample/hello.txt" in fs.ls("mraps3sample")
    assert fs.cat("mraps3sample/hello.txt") == b"hello from mrapsim\\n"
    fs.pipe("mraps3sample/s3fs/one.bin", b"x" * 10_000_000)
    assert fs.cat("mraps3sample/s3fs/one.bin") == b"x" * 10_000_000
    with fs.open("mraps3sample/s3fs/big.bin", "wb", block_size=5 * 2**20) as f:  # multipart
        for _ in range(3):
            f.write(b"y" * (6 * 2**20))
    assert fs.info("mraps3sample/s3fs/big.bin")["size"] == 18 * 2**20
    assert fs.cat_file("mraps3sample/s3fs/big.bin", start=2**20, end=2**20 + 4) == b"yyyy"
    assert fs.find("mraps3sample/s3fs") == ["mraps3sample/s3fs/big.bin", "mraps3sample/s3fs/one.bin"]
    fs.rm("mraps3sample/s3fs", recursive=True)
    assert not fs.exists("mraps3sample/s3fs/one.bin")
    print("s3fs ok")
    """
)


@pytest.fixture(scope="module")
def s3fs_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("s3fs-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "s3fs"], capture_output=True, text=True, timeout=300
    )
    if installed.returncode != 0:
        pytest.skip(f"s3fs could not be installed: {installed.stderr.strip()[-300:]}")
    return python


def test_s3fs_lists_reads_writes_and_removes(mrapsim: MrapsimProcess, s3fs_python: Path, tmp_path: Path) -> None:
    script = tmp_path / "s3fs_check.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [str(s3fs_python), str(script), str(mrapsim.port("s3")), str(mrapsim.ca)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "s3fs ok" in result.stdout


VERSIONED_SCRIPT = textwrap.dedent(
    """
    import sys
    import s3fs

    port, ca = sys.argv[1], sys.argv[2]
    fs = s3fs.S3FileSystem(
        key="AKIAIOSFODNN7EXAMPLE", secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", version_aware=True,
        endpoint_url=f"https://localhost:{port}", client_kwargs={"verify": ca, "region_name": "us-east-1"},
    )
    for bucket, versioned in (("s3fs-versioned", True), ("s3fs-plain", False)):
        fs.mkdir(bucket)
        if versioned:
            fs.call_s3("put_bucket_versioning", Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for key in ("a/one", "a/one", "a/two", "b"):
            fs.pipe(f"{bucket}/{key}", b"x")
        versions = fs.object_version_info(f"{bucket}/a/one")
        assert len(versions) == (2 if versioned else 1), versions
        fs.rm(f"{bucket}/a", recursive=True)
        assert not fs.exists(f"{bucket}/a/one") and fs.find(bucket) == [f"{bucket}/b"], fs.find(bucket)
        fs.rm(bucket, recursive=True)  # every version, every marker, then the bucket itself
        fs.invalidate_cache()
        assert bucket not in fs.ls(""), fs.ls("")
        print(bucket, "emptied and removed")
    print("s3fs versions ok")
    """
)


def test_s3fs_rm_recursive_on_versioned_and_plain_buckets(
    mrapsim: MrapsimProcess, s3fs_python: Path, tmp_path: Path
) -> None:
    script = tmp_path / "s3fs_versions.py"
    script.write_text(VERSIONED_SCRIPT)
    result = subprocess.run(
        [str(s3fs_python), str(script), str(mrapsim.port("s3")), str(mrapsim.ca)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "s3fs versions ok" in result.stdout
