"""Flame graphs of mrapsim's four hot paths, sampled with py-spy from a running server.

    pip install py-spy
    python benchmarks/profile_paths.py [--seconds 15] [--out benchmarks/profiles]

Starts `mrapsim serve` (one worker, memory store, a synthetic bucket of 10,000 keys), then for
each path attaches `py-spy record --pid` to the server while a load runs, and writes
`<out>/<path>.svg`:

- `new_conn_get`: a new TLS connection per request + one small signed GET (`mrapsim load`,
  `connection = "new"`, listener `s3`);
- `keepalive_get_sigv4`: kept-alive signed GETs of the same small object;
- `list_1000`: ListObjectsV2 pages of 1,000 keys from the synthetic bucket;
- `put_chunked_crc64nvme`: boto3 PutObject of 4 KiB bodies with `ChecksumAlgorithm="CRC64NVME"`,
  which botocore sends aws-chunked with the checksum in a trailer.

py-spy needs ptrace on the server process (root, or `kernel.yama.ptrace_scope = 0`). Sampling
pauses the server ~100 times a second, so absolute rates here are not benchmarks.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import run_load, scenario_toml
from tests.mrapsim_process import MrapsimProcess, start_mrapsim

CONFIG = """
[[buckets]]
name = "synthetic"
synthetic = { keys = 10000, key_format = "obj/{i:07d}", size = 1024, seed = 1 }
[[buckets]]
name = "puts"
"""
SCENARIOS = {
    "new_conn_get": scenario_toml("get", connection="new", key="hello.txt"),
    "keepalive_get_sigv4": scenario_toml("get", key="hello.txt"),
    "list_1000": scenario_toml("list", max_keys=1000),
}
BUCKETS = {"new_conn_get": "mraps3sample", "keepalive_get_sigv4": "mraps3sample", "list_1000": "synthetic"}


def record(pid: int, seconds: float, svg: Path, fmt: str = "flamegraph") -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200"]
    command += ["--format", fmt, "--output", str(svg), "--nonblocking"]
    print("py-spy record --pid <server> " + " ".join(command[4:]), flush=True)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def put_loop(server: MrapsimProcess, stop: threading.Event) -> int:
    s3 = server.s3_client()
    body = b"x" * 4096
    count = 0
    while not stop.is_set():
        s3.put_object(Bucket="puts", Key=f"k/{count % 100}", Body=body, ChecksumAlgorithm="CRC64NVME")
        count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "profiles")
    parser.add_argument("--only", nargs="*", default=None, help="some of the paths, by file name")
    parser.add_argument("--raw", action="store_true", help="collapsed stacks (.txt) instead of SVGs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    fmt, suffix = ("raw", "txt") if args.raw else ("flamegraph", "svg")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        server = start_mrapsim(tmp, CONFIG)
        pid = server.process.pid
        port = server.port("s3")
        try:
            for name, scenario in SCENARIOS.items():
                if args.only and name not in args.only:
                    continue
                scenario_file = tmp / f"{name}.toml"
                scenario_file.write_text(scenario)
                spy = record(pid, args.seconds, args.out / f"{name}.{suffix}", fmt)
                time.sleep(1)  # py-spy attached
                rate, failures = run_load(
                    f"https://localhost:{port}/{BUCKETS[name]}",
                    scenario_file,
                    seconds=args.seconds - 2,
                    users=args.users,
                    out=tmp / f"{name}.json",
                    ca=server.ca,
                )
                spy.wait(timeout=60)
                print(f"{name}: {rate:.0f}/s under the sampler, {failures} failures", flush=True)
            if not args.only or "put_chunked_crc64nvme" in args.only:
                stop = threading.Event()
                counts: list[int] = []
                worker = threading.Thread(target=lambda: counts.append(put_loop(server, stop)))
                spy = record(pid, args.seconds, args.out / f"put_chunked_crc64nvme.{suffix}", fmt)
                time.sleep(1)
                worker.start()
                time.sleep(args.seconds - 2)
                stop.set()
                worker.join()
                spy.wait(timeout=60)
                print(f"put_chunked_crc64nvme: {counts[0] / (args.seconds - 2):.0f}/s under the sampler")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
