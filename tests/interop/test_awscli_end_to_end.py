"""aws-cli end to end through every cell of the table that works: `s3 ls`, `s3 cp` up and down.

The MRAP column goes by ARN (`s3://arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap/`, SigV4A,
Host `mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com`), the S3 column by bucket
(`s3://mraps3sample/`, SigV4, Host `mraps3sample.s3.amazonaws.com`); both signatures survive the proxy
only because it keeps the Host header (see test_signature_table.py for the failure when it does not).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.interop.harness import S3_URL, Proxy, ProxyCA, client_ca, need, run_aws
from tests.mrapsim_process import MrapsimProcess

WORKING_CELLS = [
    ("intercept-no-sni", "s3"),
    ("intercept-sni", "mrap"),
    ("intercept-sni", "s3"),
    ("intercept-sni-host", "mrap"),
    ("intercept-sni-host", "s3"),
    ("passthrough", "mrap"),
    ("passthrough", "s3"),
]
MULTIPART_BYTES = 9 * 1024 * 1024  # above aws-cli's 8 MiB multipart_threshold: two parts


def check(result: object, what: str) -> None:
    returncode = getattr(result, "returncode", None)
    assert returncode == 0, f"{what}: rc={returncode}\n{getattr(result, 'stdout', '')}\n{getattr(result, 'stderr', '')}"


def round_trip(
    proxy: Proxy, edge: MrapsimProcess, proxy_ca: ProxyCA, scenario: str, listener: str, tmp_path: Path, size: int
) -> None:
    need(proxy, scenario, listener)
    port = proxy.port(scenario, listener)
    ca = client_ca(scenario, proxy_ca, edge)
    base = S3_URL[listener]
    key = f"interop/{proxy.name}/{scenario}/{listener}/upload-{size}.bin"
    original = tmp_path / "upload.bin"
    original.write_bytes(os.urandom(size))
    downloaded = tmp_path / "download.bin"

    # `s3 ls` and `s3 cp` up are independent: run them side by side (the suite has a time budget).
    with ThreadPoolExecutor(max_workers=2) as pool:
        listing_job = pool.submit(run_aws, port, ca, "s3", "ls", base)
        upload_job = pool.submit(run_aws, port, ca, "s3", "cp", str(original), base + key)
        listing, upload = listing_job.result(), upload_job.result()
    check(listing, "s3 ls")
    assert "hello.txt" in listing.stdout and "PRE data/" in listing.stdout
    check(upload, "s3 cp up")
    assert "upload:" in upload.stdout, upload.stdout

    check(run_aws(port, ca, "s3", "cp", base + key, str(downloaded)), "s3 cp down")
    assert downloaded.read_bytes() == original.read_bytes()

    # What mrapsim served, on which listener: the upload (one PutObject, or a multipart upload) and
    # the download, all signed requests that verified (status 200) on the intended listener.
    served = edge.wait_for_logs(
        lambda e: e.get("event") == "request" and e.get("key") == key and e.get("operation") == "GetObject"
    )
    served = [e for e in edge.logs() if e.get("event") == "request" and e.get("key") == key]
    operations = {e["operation"] for e in served}
    multipart = {"CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}
    assert (multipart <= operations) if size >= MULTIPART_BYTES else ("PutObject" in operations), operations
    assert "GetObject" in operations, operations
    for event in served:
        assert event["listener"] == listener and event["status"] in (200, 206), event
        assert event["addressing"] == ("mrap" if listener == "mrap" else "virtual"), event


@pytest.mark.parametrize(("scenario", "listener"), WORKING_CELLS)
def test_ls_and_cp_up_and_down(
    proxy: Proxy, edge: MrapsimProcess, proxy_ca: ProxyCA, scenario: str, listener: str, tmp_path: Path
) -> None:
    round_trip(proxy, edge, proxy_ca, scenario, listener, tmp_path, 200_000)


def test_multipart_upload_through_the_fixed_proxy(
    proxy: Proxy, edge: MrapsimProcess, proxy_ca: ProxyCA, tmp_path: Path
) -> None:
    """A 9 MiB `s3 cp` (multipart, parts in parallel) to the MRAP through the proxy that sends SNI."""
    round_trip(proxy, edge, proxy_ca, "intercept-sni-host", "mrap", tmp_path, MULTIPART_BYTES)
