"""Issue 12, must-show 2: headless Chromium loads a page from another origin (a tiny HTTP server on
its own port) that uploads files to mrapsim with a presigned POST through CORS. The allowed file
lands; a file over the policy's content-length-range is refused with S3's EntityTooLarge, which
the page can read because the error carries the CORS headers too. Skipped without Chromium."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.s3.conftest import LiveServer, make_client
from tests.s3.own_server import own_live_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-quic"]  # fmt: skip


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    """This module's own server: the buckets its tests create stay out of other modules' listings."""
    with own_live_server() as server:
        yield server


@pytest.fixture(scope="module")
def s3(live: LiveServer) -> Any:
    return make_client(live.url)


PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
const post = %(post)s;
async function upload(name, size) {
  const form = new FormData();
  for (const [k, v] of Object.entries(post.fields)) form.append(k, v);
  form.append("file", new Blob(["x".repeat(size)], {type: "text/plain"}), name);
  try {
    const answer = await fetch(post.url, {method: "POST", body: form});
    const text = await answer.text();
    const code = (text.match(/<Code>([^<]*)<\\/Code>/) || [null, ""])[1];
    return name + " " + answer.status + " " + code + " " + (answer.headers.get("etag") || "-");
  } catch (error) {
    return name + " failed " + error;
  }
}
(async () => {
  const lines = [await upload("small.txt", 10), await upload("large.txt", 2000)];
  document.getElementById("out").textContent = "done\\n" + lines.join("\\n");
})();
</script></body></html>"""


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static file server on 127.0.0.1:<its own port>: the page's origin."""
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        thread.join(10)


def test_chromium_uploads_through_a_presigned_post_from_another_origin(
    live: LiveServer, s3: Any, page_server: tuple[str, Path], tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    origin, root = page_server
    bucket = "browser-uploads"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [origin],
                    "AllowedMethods": ["POST"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                }
            ]
        },
    )
    post = make_client(live.url, signature_version="s3v4").generate_presigned_post(
        bucket,
        "incoming/${filename}",
        Conditions=[["starts-with", "$key", "incoming/"], ["content-length-range", 1, 1000]],
        ExpiresIn=600,
    )
    (root / "upload.html").write_text(PAGE % {"post": json.dumps(post)})
    flags = [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", f"{origin}/upload.html"], capture_output=True, text=True, timeout=90
    ).stdout
    out = dom.split('<pre id="out">', 1)[1].split("</pre>", 1)[0]
    lines = out.splitlines()
    assert lines[0] == "done", out
    etag = s3.head_object(Bucket=bucket, Key="incoming/small.txt")["ETag"]
    assert lines[1] == f"small.txt 204  {etag}"
    assert lines[2] == "large.txt 400 EntityTooLarge -"
    assert s3.get_object(Bucket=bucket, Key="incoming/small.txt")["Body"].read() == b"x" * 10
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="incoming/large")
    origins = [r for r in live.records if r.operation == "PostObject"]
    assert len(origins) >= 2
