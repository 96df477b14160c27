"""The live view (must-show 4): `mrapsim load --web` serves a page that headless Chromium shows
with data changing between two looks, and a Prometheus /metrics, while the run goes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from mrapsim.load.server_metrics import parse_prometheus
from tests.load.commands import env_without_credentials, s3_load_command
from tests.load.test_html_browser import CHROMIUM, FLAGS
from tests.mrapsim_process import MrapsimProcess

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")


def chromium(profile: Path, *args: str) -> str:
    """Headless Chromium with a profile of its own; tried twice, since on a loaded machine it
    sometimes exits before drawing."""
    assert CHROMIUM is not None
    flags = [*[f for f in FLAGS if not f.startswith("--virtual-time-budget")], "--virtual-time-budget=1500"]
    out = ""
    for attempt in range(2):
        where = profile.with_name(f"{profile.name}-{attempt}")
        done = subprocess.run(
            [CHROMIUM, *flags, f"--user-data-dir={where}", *args], capture_output=True, text=True, timeout=60
        )
        out = done.stdout
        if out or "--dump-dom" not in args:
            break
    return out


def look(url: str, profile: Path, shot: Path) -> int:
    """The page's DOM after a second and a half of its own time: how many requests it shows.
    Also a screenshot."""
    dom = chromium(profile.with_name(profile.name + "-dom"), "--dump-dom", url)
    chromium(profile.with_name(profile.name + "-shot"), "--window-size=1250,1300", f"--screenshot={shot}", url)
    assert dom.count('class="uplot') == 4, dom[:2000]
    found = re.search(r'data-requests="(\d+)"', dom)
    assert found is not None, dom[:2000]
    return int(found.group(1))


def test_live_page_and_metrics_while_running(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    load = subprocess.Popen(
        s3_load_command(
            mrapsim, "-u", "3", "-r", "1", "--only-summary", "--web", "127.0.0.1:0", "--stages", "4s:3,56s:3"
        ),  # stopped by the test once it has looked
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_without_credentials(),
    )
    try:
        assert load.stderr is not None
        url = ""
        deadline = time.monotonic() + 20
        while not url and time.monotonic() < deadline:
            line = load.stderr.readline()
            found = re.search(r"live view on (http://\S+/)", line)
            url = found.group(1) if found else ""
        assert url, "no live view address on stderr"
        where = Path(os.environ.get("MRAPSIM_TEST_ARTIFACTS", tmp_path))
        where.mkdir(parents=True, exist_ok=True)
        time.sleep(1)
        first = look(url, tmp_path / "first", where / "load-live-1.png")
        with urllib.request.urlopen(f"{url}metrics", timeout=5) as response:
            metrics = parse_prometheus(response.read().decode())
        second = look(url, tmp_path / "second", where / "load-live-2.png")
        assert 0 < first < second, (first, second)
        assert (where / "load-live-1.png").read_bytes() != (where / "load-live-2.png").read_bytes()
        assert (where / "load-live-1.png").stat().st_size > 20_000
        requests = sum(v for (name, _), v in metrics.items() if name == "mrapsim_load_requests_total")
        assert requests > 0 and any(name == "mrapsim_load_users" for name, _ in metrics)
        load.send_signal(signal.SIGINT)  # Ctrl-C: the harness stops the run, reports, and the page stops
        out, err = load.communicate(timeout=30)
        assert load.returncode == 130 and "interrupted" in err, err
        assert "█ SUMMARY" in out and "Run stopped early: interrupted (Ctrl-C)" in out, out
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=5)
    finally:
        if load.poll() is None:
            load.kill()
            load.communicate()
