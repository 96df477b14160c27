"""Stages, shape classes and Python scenario files against a real `mrapsim serve` (must-shows 1
and 2, shortened: benchmarks/load_stages.py runs the full 0→20→0 ramp)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

from tests.load.commands import env_without_credentials, s3_load_command
from tests.mrapsim_process import MrapsimProcess

SCENARIOS = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios"


def load(mrapsim: MrapsimProcess, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        s3_load_command(mrapsim, "--only-summary", *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env_without_credentials(),
    )


def history_users(prefix: Path) -> list[int]:
    with Path(f"{prefix}_stats_history.csv").open() as f:
        return [int(r["User Count"]) for r in csv.DictReader(f) if r["Name"] == "Aggregated"]


def test_user_stages_ramp_up_hold_and_down(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    done = load(
        mrapsim,
        "-f",
        "list",
        "--stages",
        "2s:8,2s:8,2s:0",
        "--csv",
        str(tmp_path / "run"),
        "--json",
        str(tmp_path / "run.json"),
        "--threshold",
        "rate<0.01",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    users = history_users(tmp_path / "run")
    peak = users.index(max(users))
    assert max(users) == 8 and users[-1] <= 2, users
    assert users[: peak + 1] == sorted(users[: peak + 1]) and 0 < users[1] < 8, users  # the ramp up
    assert users[peak:] == sorted(users[peak:], reverse=True), users  # and down
    document = json.loads((tmp_path / "run.json").read_text())
    assert document["users"] == 8 and 5.5 < document["summary"]["duration_s"] < 9


def test_arrival_rate_stages_hold_their_rate(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    done = load(mrapsim, "-f", "list", "--stages", "1s:40/s,3s:40/s", "-u", "10", "--json", str(tmp_path / "run.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads((tmp_path / "run.json").read_text())
    expected = 20 + 120  # the ramp's area, then 3 s at 40/s
    sent = document["summary"]["total"]["requests"]
    assert abs(sent + document["not_sent"] - expected) <= 1 and sent >= 0.95 * expected, document["not_sent"]


def test_python_scenario_with_think_time_and_a_failing_check(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    scenario = tmp_path / "mine.py"
    scenario.write_text("""
from mrapsim.load.users import User, between, task

class Mine(User):
    wait_time = between(0.01, 0.05)
    seed_sizes = (2048,)

    async def on_start(self):
        await self.s3.put(f"mine/{self.user_id}.txt", body=b"mine", name="setup_put")
        r = await self.s3.get(f"mine/{self.user_id}.txt", name="setup_get")
        self.check(r, {"reads back": lambda r: r.body == b"mine"})

    @task(3)
    async def read(self):
        r = await self.s3.get(size=2048)
        self.check(r, {"status is 200": lambda r: r.status == 200, "2 KiB": lambda r: len(r.body) == 2048})

    @task(1)
    async def missing(self):
        r = await self.s3.get("no/such/key")
        self.check(r, {"found": lambda r: r.status == 200})  # fails: counted, not a crash

    @task(1)
    async def broken(self):
        raise RuntimeError("scenario bug")
""")
    done = load(
        mrapsim,
        "-f",
        str(scenario),
        "-u",
        "3",
        "-t",
        "2s",
        "--json",
        str(tmp_path / "run.json"),
        "--threshold",
        "checks>0.99",
        "--threshold",
        "read:checks==1",
        "--threshold",
        "setup_put:count==3",
    )
    assert done.returncode == 99, done.stdout + done.stderr
    assert "✗ 'checks>0.99'" in done.stdout and "✓ 'read:checks==1'" in done.stdout
    assert "✓ 'setup_put:count==3'" in done.stdout
    document = json.loads((tmp_path / "run.json").read_text())
    checks = {(c["task"], c["check"]): (c["passes"], c["fails"]) for c in document["checks"]}
    assert checks[("on_start", "reads back")] == (3, 0)
    assert checks[("missing", "found")][0] == 0 and checks[("missing", "found")][1] > 0
    assert checks[("read", "2 KiB")][1] == 0 and checks[("read", "2 KiB")][0] > 5
    failures = document["summary"]["failures_by_class"]
    assert set(failures) == {"s3:NoSuchKey", "exception:RuntimeError"}, failures
    read = document["summary"]["tasks"]["read"]
    assert read["failures"] == 0 and read["requests"] < 3 * 2 / 0.01  # think time held them back


def test_a_shape_class_sets_the_users(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    scenario = tmp_path / "steps.py"
    scenario.write_text("""
from mrapsim.load.shapes import LoadShape
from mrapsim.load.users import User, constant, task

class Steps(LoadShape):
    def tick(self):
        t = self.get_run_time()
        return (2, 10.0) if t < 2 else (5, 10.0) if t < 4 else None

class Lister(User):
    wait_time = constant(0.05)

    @task
    async def list(self):
        await self.s3.list(max_keys=1)
""")
    done = load(mrapsim, "-f", str(scenario), "--csv", str(tmp_path / "run"))
    assert done.returncode == 0, done.stdout + done.stderr
    users = history_users(tmp_path / "run")
    assert 2 in users and max(users) == 5 and len(users) <= 8, users
