"""The HTML report in a real browser (headless Chromium): all four uPlot charts render.
Skipped where Chromium is not installed (`apt-get install chromium`). A screenshot is saved in
the test's temporary directory, or in $MRAPSIM_TEST_ARTIFACTS when that is set."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mrapsim.load.html import write_html
from mrapsim.load.thresholds import evaluate, parse_threshold
from tests.load.test_report import sample_stats

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
# The network here is closed: keep Chromium from trying to reach its update and sync services.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--virtual-time-budget=3000",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def test_charts_render_in_chromium(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    stats = sample_stats()
    page = tmp_path / "report.html"
    write_html(stats, evaluate([parse_threshold("p99<1ms")], stats), str(page))
    flags = [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60
    ).stdout
    assert dom.count('class="uplot') == 4 and dom.count("<canvas") == 4
    where = Path(os.environ.get("MRAPSIM_TEST_ARTIFACTS", tmp_path))
    where.mkdir(parents=True, exist_ok=True)
    shot = where / "load-report.png"
    subprocess.run(
        [CHROMIUM, *flags, "--window-size=1250,1500", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=60,
    )
    assert shot.stat().st_size > 20_000
