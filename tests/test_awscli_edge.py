"""aws-cli through the edge's standard S3 listener, auth on, default key pair (issue 2 must-show 5)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from tests.mrapsim_process import MrapsimProcess

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def aws(server: MrapsimProcess, *args: str, secret: str = SECRET_KEY) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    return subprocess.run(
        ["aws", "--endpoint-url", f"https://localhost:{server.port('s3')}", "--ca-bundle", str(server.ca), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_s3_ls_lists_the_seeded_bucket(mrapsim: MrapsimProcess) -> None:
    result = aws(mrapsim, "s3", "ls", "s3://mraps3sample")
    assert result.returncode == 0, result.stderr
    assert "hello.txt" in result.stdout and "PRE data/" in result.stdout
    buckets = aws(mrapsim, "s3", "ls")
    assert buckets.returncode == 0 and "mraps3sample" in buckets.stdout


def test_list_objects_v2_max_items(mrapsim: MrapsimProcess) -> None:
    result = aws(mrapsim, "s3api", "list-objects-v2", "--bucket", "mraps3sample", "--max-items", "2")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    assert len(document["Contents"]) == 2
    assert document["NextToken"]
    record = mrapsim.wait_for_connection(listener="s3", outcome="forwarded")
    assert record["requests"] >= 1 and record["tls_version"] == "TLSv1.3"


def test_wrong_secret_is_refused(mrapsim: MrapsimProcess) -> None:
    result = aws(mrapsim, "s3", "ls", "s3://mraps3sample", secret="wrong")
    assert result.returncode != 0
    assert "SignatureDoesNotMatch" in result.stderr
