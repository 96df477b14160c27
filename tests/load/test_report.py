"""Reports: Locust's CSV columns, thresholds (✓/✗, exit 99), JSON merge, the HTML page."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mrapsim.load import report
from mrapsim.load.html import render_html
from mrapsim.load.stats import RunStats
from mrapsim.load.thresholds import evaluate, parse_threshold

# Locust's StatsCSV columns (locust/stats.py, 2.x), as documented; compared with the installed
# Locust itself below when it is there.
DOCUMENTED_STATS = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
]

LOCUST_COLUMNS = """
import json
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, StatsCSVFileWriter
env = Environment()
writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, "{prefix}")
print(json.dumps({{"stats": writer.requests_csv_columns, "history": writer.stats_history_csv_columns,
                  "failures": writer.failures_columns, "exceptions": writer.exceptions_columns}}))
"""


def sample_stats(offset: int = 0, started: float = 1_800_000_000.0) -> RunStats:
    stats = RunStats(started=started, ended=started + 10, users=4)
    get = stats.task("get", "GET")
    hs = stats.task("handshake_nosni", "TLS")
    for i in range(1000):
        stats.record(get, 800 + i + offset, 1024, "s3:SlowDown" if i % 100 == 0 else None, started + i / 100)
    for i in range(50):
        stats.record(hs, 1_000_000 + i, 0, "stalled", started + i / 5)
        stats.handshake("stalled")
    stats.handshake("ok")
    stats.bytes_sent, stats.bytes_received = 10_000, 2_000_000
    return stats


def header(path: Path) -> list[str]:
    with path.open() as f:
        return next(csv.reader(f))


def locust_columns(tmp_path: Path) -> dict[str, list[str]] | None:
    """Locust's own column lists, read in a subprocess (importing locust monkey-patches)."""
    code = LOCUST_COLUMNS.format(prefix=tmp_path / "locust")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_csv_columns_are_locusts(tmp_path: Path) -> None:
    prefix = str(tmp_path / "run")
    written = report.write_csv(sample_stats(), prefix)
    assert [p.name for p in written] == [
        "run_stats.csv",
        "run_stats_history.csv",
        "run_failures.csv",
        "run_exceptions.csv",
    ]
    assert header(tmp_path / "run_stats.csv") == DOCUMENTED_STATS
    theirs = locust_columns(tmp_path)
    if theirs is None:
        pytest.skip("locust is not installed: compared with the documented columns only")
    assert header(tmp_path / "run_stats.csv") == theirs["stats"]
    assert header(tmp_path / "run_stats_history.csv") == theirs["history"]
    assert header(tmp_path / "run_failures.csv") == theirs["failures"]
    assert header(tmp_path / "run_exceptions.csv") == theirs["exceptions"]


def test_csv_rows(tmp_path: Path) -> None:
    report.write_csv(sample_stats(), str(tmp_path / "run"))
    with (tmp_path / "run_stats.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["Name"] for r in rows] == ["get", "handshake_nosni", "Aggregated"]
    assert rows[0]["Request Count"] == "1000" and rows[0]["Failure Count"] == "10"
    assert float(rows[1]["50%"]) == pytest.approx(1000.0, rel=1e-3)
    with (tmp_path / "run_failures.csv").open() as f:
        failures = {r["Error"]: r for r in csv.DictReader(f)}
    assert failures["stalled"]["Occurrences"] == "50" and failures["stalled"]["Method"] == "TLS"
    assert failures["s3:SlowDown"]["First Seen"] == "2027-01-15T08:00:00Z"


@pytest.mark.parametrize(
    ("text", "passes"),
    [
        ("p99<2000ms", True),
        ("p50<1ms", False),
        ("p99.9<=1.5s", True),
        ("get:p99<2ms", True),
        ("fail_rate<0.1", True),
        ("fail_rate<0.01", False),
        ("get:fail_rate<=0.01", True),
        ("rps>100", True),
        ("rps>500", False),
        ("max<1s", False),
        ("requests>=1050", True),
    ],
)
def test_thresholds(text: str, passes: bool) -> None:
    (verdict,) = evaluate([parse_threshold(text)], sample_stats())
    assert verdict.passed is passes
    assert verdict.render().startswith("  ✓" if passes else "  ✗")


@pytest.mark.parametrize("text", ["p99 < fast", "latency<5ms", "rps>5ms", "p200<1ms"])
def test_bad_thresholds_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_threshold(text)


def test_merge_is_exact_and_a_failed_threshold_exits_99(tmp_path: Path) -> None:
    a, b = sample_stats(), sample_stats(offset=5000, started=1_800_000_005.0)
    report.write_json(a, str(tmp_path / "a.json"))
    report.write_json(b, str(tmp_path / "b.json"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mrapsim.load",
            "merge",
            str(tmp_path / "a.json"),
            str(tmp_path / "b.json"),
            "--threshold",
            "p50<1ms",
            "--threshold",
            "fail_rate<0.5",
            "--json",
            str(tmp_path / "m.json"),
            "--csv",
            str(tmp_path / "m"),
            "--html",
            str(tmp_path / "m.html"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 99, done.stderr
    assert "✗ 'p50<1ms'" in done.stdout and "✓ 'fail_rate<0.5'" in done.stdout
    merged = report.load_json(str(tmp_path / "m.json"))
    expected = sample_stats()
    expected.merge(sample_stats(offset=5000, started=1_800_000_005.0))
    assert merged.tasks["get"].histogram == expected.tasks["get"].histogram
    assert merged.total().requests == 2100 and merged.handshakes == {"ok": 2, "stalled": 100}
    assert merged.started == a.started and merged.ended == b.ended and merged.users == 8
    assert (tmp_path / "m_stats.csv").exists() and (tmp_path / "m.html").exists()


def test_passing_thresholds_exit_0(tmp_path: Path) -> None:
    report.write_json(sample_stats(), str(tmp_path / "a.json"))
    done = subprocess.run(
        [sys.executable, "-m", "mrapsim.load", "merge", str(tmp_path / "a.json"), "--threshold", "p99<5s"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "✓ 'p99<5s'" in done.stdout


def test_bad_report_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    done = subprocess.run(
        [sys.executable, "-m", "mrapsim.load", "merge", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "not an mrapsim load" in done.stderr


def test_html_is_self_contained_with_charts() -> None:
    page = render_html(sample_stats(), evaluate([parse_threshold("p99<1ms")], sample_stats()))
    assert "uPlot" in page and "<script src" not in page and "http://" not in page.split("<script>")[0]
    for title in ("Requests per second", "Latency percentiles", "Latency distribution", "Failures by class"):
        assert title in page
    assert "✗ p99&lt;1ms" in page and "stalled" in page
    assert len(page) < 250_000


def test_summary_names_failures_and_handshakes() -> None:
    text = report.summary(sample_stats())
    assert "stalled" in text and "s3:SlowDown" in text and "Handshakes (new connections): stalled 50  ok 1" in text
    assert "Aggregated" in text
