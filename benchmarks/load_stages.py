"""Issue 15, must-show 1 at full length: a k6-stages run (0→20 users over 10 s, hold 10 s, down
to 0 over 10 s) shows the ramp in the users column of the CSV history and in the HTML's users
chart; then an arrival-rate stage (ramp 5 s to 100/s, hold 20 s) holds its rate within 5%.

    python benchmarks/load_stages.py [--out DIR]

Starts `mrapsim serve` on loopback (OS-chosen ports), runs `python -m mrapsim.load` twice against
the `s3` listener, prints the users per second and the held arrival rate, and exits 1 unless the
ramp goes up, holds and comes down, and the rate over the held seconds is within 5% of the
target (a single second's count varies with the machine's load: an arrival counts when it
completes).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.mrapsim_process import start_mrapsim

RATE = 100


def run(server: object, *args: str) -> None:
    target = f"https://localhost:{server.port('s3')}/mraps3sample"  # type: ignore[attr-defined]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mrapsim.load",
            "-H",
            target,
            "--ca-bundle",
            str(server.ca),  # type: ignore[attr-defined]
            "-f",
            "list",
            "--only-summary",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="keep the CSV, JSON and HTML reports here")
    args = parser.parse_args()
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        server = start_mrapsim(Path(tmp))
        try:
            run(
                server,
                "--stages",
                "10s:20,10s:20,10s:0",
                "--csv",
                str(out / "stages"),
                "--html",
                str(out / "stages.html"),
                "--json",
                str(out / "stages.json"),
            )
            run(server, "--stages", f"5s:{RATE}/s,20s:{RATE}/s", "-u", "40", "--json", str(out / "rate.json"))
        finally:
            server.stop()
        with (out / "stages_stats_history.csv").open() as f:
            users = [int(r["User Count"]) for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
        print("users per second:", " ".join(map(str, users)))
        peak = users.index(max(users))
        if max(users) != 20 or users[: peak + 1] != sorted(users[: peak + 1]) or users[-1] > 2:
            problems.append("the users did not ramp 0→20→0")
        timeline = json.loads((out / "rate.json").read_text())["timeline"]
        held = [i["requests"] for i in timeline][6:-1]  # the full seconds at the held rate
        mean = sum(held) / len(held)
        print(
            f"arrival rate held at {RATE}/s: {mean:.1f}/s over {len(held)} s "
            f"({100 * abs(mean - RATE) / RATE:.1f}% off); completions per second {held}"
        )
        if abs(mean - RATE) > 0.05 * RATE:
            problems.append(f"the arrival rate was {mean:.1f}/s, not {RATE}/s within 5%")
    for problem in problems:
        print(f"✗ {problem}")
    print("✓ users ramp 0→20→0 in the history; the arrival rate held within 5%" if not problems else "✗")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
