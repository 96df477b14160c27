"""rclone (Debian's package) against the S3 listener: `purge` empties and removes a versioned and
an unversioned bucket; `sync` follows a changed and a deleted file and `check` then finds no
difference, with no error line. Skipped where rclone is not installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.mrapsim_process import ACCESS_KEY, SECRET_KEY, MrapsimProcess

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed")


def rclone(mrapsim: MrapsimProcess, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "rclone.conf"
    config.write_text(
        "[mrapsim]\ntype = s3\nprovider = Other\n"
        f"access_key_id = {ACCESS_KEY}\nsecret_access_key = {SECRET_KEY}\n"
        f"endpoint = https://localhost:{mrapsim.port('s3')}\nregion = us-east-1\n"
    )
    return subprocess.run(
        ["rclone", "--config", str(config), "--ca-cert", str(mrapsim.ca), "--low-level-retries", "1", *args],
        capture_output=True,
        text=True,
        timeout=120,
        # The AWS SDK inside rclone reads AWS_CA_BUNDLE itself and fails on rclone's transport.
        env={name: value for name, value in os.environ.items() if not name.startswith("AWS_")},
    )


@pytest.mark.parametrize("versioned", [True, False])
def test_rclone_purge_empties_and_removes_the_bucket(mrapsim: MrapsimProcess, tmp_path: Path, versioned: bool) -> None:
    s3 = mrapsim.s3_client()
    bucket = f"rclone-{'versioned' if versioned else 'plain'}"
    s3.create_bucket(Bucket=bucket)
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in ("a/one", "a/one", "a/two", "b"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    listed = rclone(mrapsim, tmp_path, "lsf", "-R", f"mrapsim:{bucket}", *(["--s3-versions"] if versioned else []))
    assert listed.returncode == 0, listed.stderr
    purged = rclone(mrapsim, tmp_path, "purge", f"mrapsim:{bucket}", *(["--s3-versions"] if versioned else []))
    assert purged.returncode == 0, purged.stderr[-2000:]
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def no_error_lines(stderr: str) -> None:
    """rclone logs failures at its ERROR level; a count ("0 errors") is not one."""
    errors = [line for line in stderr.splitlines() if re.search(r"\berror\b", line, re.IGNORECASE)]
    assert not errors, stderr[-2000:]


def test_rclone_sync_follows_changes_and_deletions_and_check_finds_no_difference(
    mrapsim: MrapsimProcess, tmp_path: Path
) -> None:
    s3 = mrapsim.s3_client()
    s3.create_bucket(Bucket="rclone-sync")
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "kept.txt").write_text("kept\n")
    (source / "changed.txt").write_text("first version\n")
    (source / "sub" / "deleted.bin").write_bytes(os.urandom(4096))
    first = rclone(mrapsim, tmp_path, "sync", str(source), "mrapsim:rclone-sync")
    assert first.returncode == 0, first.stderr[-2000:]
    no_error_lines(first.stderr)
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="rclone-sync")["Contents"]) == [
        "changed.txt",
        "kept.txt",
        "sub/deleted.bin",
    ]

    (source / "changed.txt").write_text("the second version, longer\n")
    (source / "sub" / "deleted.bin").unlink()
    second = rclone(mrapsim, tmp_path, "sync", str(source), "mrapsim:rclone-sync")
    assert second.returncode == 0, second.stderr[-2000:]
    no_error_lines(second.stderr)
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="rclone-sync")["Contents"]) == [
        "changed.txt",
        "kept.txt",
    ]
    body = s3.get_object(Bucket="rclone-sync", Key="changed.txt")["Body"].read()
    assert body == b"the second version, longer\n"

    checked = rclone(mrapsim, tmp_path, "check", str(source), "mrapsim:rclone-sync")
    assert checked.returncode == 0, checked.stderr[-2000:]
    no_error_lines(checked.stderr)
    assert "0 differences found" in checked.stderr
