"""A large synthetic object through `aws s3 cp` to a file (s3transfer's parallel ranged GETs with
If-Match), bytes spot-checked against the generator, the server's RSS sampled throughout.

    python benchmarks/download_synthetic.py [--gib 2] [--checks 256] [--dir /tmp]

Prints throughput and RSS before/peak/after; exit status 1 when a spot check fails or the RSS
grows by 64 MiB or more (the object is generated per range, never held). The CI-sized version
(stdout streaming, 2 GiB) is tests/s3/test_mustshow.py::test_two_gib_synthetic_download_*.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mrapsim.config import SyntheticSpec
from mrapsim.store.synthetic import synthetic_content
from tests.mrapsim_process import start_mrapsim

KEY = "big-0.bin"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--checks", type=int, default=256)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the downloaded file goes")
    args = parser.parse_args()
    spec = SyntheticSpec(keys=1, key_format="big-{i:01d}.bin", size=int(args.gib * 1024**3), seed=2)
    config = f"""
[[buckets]]
name = "synthetic-big"
synthetic = {{ keys = 1, key_format = "{spec.key_format}", size = {spec.size}, seed = {spec.seed} }}
"""
    with tempfile.TemporaryDirectory() as tmp:
        server = start_mrapsim(Path(tmp), config)
        target = Path(args.dir) / f"mrapsim-download-{os.getpid()}.bin"
        try:
            pid = server.process.pid
            before = rss_mib(pid)
            samples: list[float] = []
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.2):
                    samples.append(rss_mib(pid))

            threading.Thread(target=sample, daemon=True).start()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
                "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            }
            started = time.monotonic()
            subprocess.run(
                [
                    "aws", "--endpoint-url", f"https://localhost:{server.port('s3')}", "--ca-bundle", str(server.ca),
                    "s3", "cp", f"s3://synthetic-big/{KEY}", str(target), "--no-progress",
                ],
                check=True, env=env,
            )  # fmt: skip
            elapsed = time.monotonic() - started
            done.set()
            after = rss_mib(pid)
            expected = synthetic_content(spec, KEY)
            rng = random.Random(7)
            offsets = [rng.randrange(0, spec.size - 4096) for _ in range(args.checks)] + [spec.size - 4096]
            failed = 0
            with target.open("rb") as downloaded:
                assert downloaded.seek(0, 2) == spec.size, "size differs"
                for offset in offsets:
                    downloaded.seek(offset)
                    failed += downloaded.read(4096) != expected.read(offset, offset + 4096)
        finally:
            target.unlink(missing_ok=True)
            server.stop()
    peak = max(samples, default=after)
    print(f"{spec.size / 1024**3:g} GiB via aws s3 cp in {elapsed:.1f} s = {spec.size / elapsed / 1e6:.0f} MB/s")
    print(f"spot checks: {len(offsets) - failed}/{len(offsets)} 4 KiB ranges identical")
    growth = peak - before
    print(f"server RSS: before {before:.0f} MiB, peak {peak:.0f} MiB, after {after:.0f} MiB (growth {growth:.1f})")
    return 0 if failed == 0 and growth < 64 else 1


if __name__ == "__main__":
    raise SystemExit(main())
