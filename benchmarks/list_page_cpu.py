"""CPU per 1000-key ListObjectsV2 page, in-process: the store call alone and the whole handler
(store call + XML rendering), no HTTP, TLS or SigV4. Buckets of 10,000 keys:

- `synthetic`: a synthetic key space only (`obj/{i:07d}`, 1 KiB, as compare_peers.py lists);
- `real`: 10,000 real objects with the same keys;
- `mixed`: the synthetic space with every 7th key overwritten by a real object and every 13th
  deleted, plus 1,000 real keys between synthetic ones (`obj/0001234x`): real and synthetic keys
  interleave every few keys, the worst case for reading either in bulk;
- `sparse`: the synthetic space with 1 % of its keys overwritten, 1 % deleted and 1 % real keys
  between synthetic ones (a load test's writes into a synthetic bucket).

Each on the memory store and on the sqlite store; pages start at random positions. CPU time is
`time.process_time` (all threads: the sqlite store reads on a worker thread), per batch of 10
pages; the median and the least of the batches are printed (on a shared machine the least moves
less from run to run).

    python benchmarks/list_page_cpu.py [--pages 200] [--stores memory sqlite]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mrapsim.config import SyntheticSpec, load_config
from mrapsim.s3.auth import Authorized
from mrapsim.s3.context import Context
from mrapsim.s3.headers import Headers
from mrapsim.s3.listing import list_objects_v2
from mrapsim.s3.request import Addressing, S3Request, Target
from mrapsim.s3.tokens import ContinuationTokens
from mrapsim.store import MemoryStore, ObjectWrite, Store
from mrapsim.store.content import BytesContent
from mrapsim.store.sqlite import SqliteStore

KEYS = 10_000
PAGE = 1000
SPEC = SyntheticSpec(KEYS, "obj/{i:07d}", 1024, 1)


async def fill(store: Store) -> None:
    await store.create_bucket("synthetic")
    await store.set_synthetic("synthetic", SPEC)
    await store.create_bucket("real")
    await store.create_bucket("mixed")
    await store.set_synthetic("mixed", SPEC)
    await store.create_bucket("sparse")
    await store.set_synthetic("sparse", SPEC)
    body = ObjectWrite(BytesContent(b"x" * 1024))
    for i in range(KEYS):
        await store.put_object("real", f"obj/{i:07d}", body)
        if i % 7 == 0:
            await store.put_object("mixed", f"obj/{i:07d}", body)
        elif i % 13 == 0:
            await store.delete_object("mixed", f"obj/{i:07d}")
        if i % 10 == 0:
            await store.put_object("mixed", f"obj/{i:07d}x", body)
        if i % 100 == 0:
            await store.put_object("sparse", f"obj/{i:07d}", body)
        elif i % 100 == 50:
            await store.delete_object("sparse", f"obj/{i:07d}")
        elif i % 100 == 75:
            await store.put_object("sparse", f"obj/{i:07d}x", body)


def context(store: Store, bucket: str, start_after: str) -> Context:
    query = f"list-type=2&start-after={start_after}"
    request = S3Request("GET", f"/{bucket}", query, Headers((("host", "localhost"),)), "req", "host")
    auth = Authorized("AKIAIOSFODNN7EXAMPLE", "AWS4-HMAC-SHA256", False, None, None)
    return Context(
        request,
        Target(Addressing.PATH, bucket, None),
        auth,
        cast(Any, None),  # a listing reads no body
        store,
        load_config(),
        ContinuationTokens(b"k" * 32),
        lambda: None,  # type: ignore[arg-type,return-value]
    )


async def measure(store: Store, bucket: str, pages: int, handler: bool) -> tuple[float, float]:
    """Median and least CPU µs per page over `pages` pages at random positions (batches of 10)."""
    rng = random.Random(1)
    batches: list[float] = []
    for _ in range(max(1, pages // 10)):
        starts = [f"obj/{rng.randrange(0, KEYS - PAGE - 100):07d}" for _ in range(10)]
        contexts = [context(store, bucket, start) for start in starts]
        started = time.process_time()
        for start, ctx in zip(starts, contexts, strict=True):
            if handler:
                response = await list_objects_v2(ctx)
                assert response.status == 200
            else:
                page = await store.list_page(bucket, start_after=start, max_keys=PAGE)
                assert len(page.entries) == PAGE
        batches.append((time.process_time() - started) / 10 * 1e6)
    return statistics.median(batches), min(batches)


async def run(kind: str, pages: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store: Store = MemoryStore() if kind == "memory" else SqliteStore.open(Path(tmp) / "store")
        await fill(store)
        for bucket in ("synthetic", "real", "mixed", "sparse"):
            await measure(store, bucket, 20, handler=True)  # warm-up
            in_store, in_store_least = await measure(store, bucket, pages, handler=False)
            whole, whole_least = await measure(store, bucket, pages, handler=True)
            print(
                f"{kind:<8}{bucket:<11}{in_store:>10,.0f}{in_store_least:>8,.0f}"
                f"{whole:>12,.0f}{whole_least:>8,.0f}{whole / PAGE:>12.2f}"
            )
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--stores", nargs="+", default=["memory", "sqlite"], choices=["memory", "sqlite"])
    args = parser.parse_args()
    print(f"ListObjectsV2, {PAGE}-key pages of {KEYS:,}-key buckets, CPU µs per page (median, least)")
    print(f"{'store':<8}{'bucket':<11}{'list_page':>10}{'least':>8}{'handler':>12}{'least':>8}{'µs/key':>12}")
    for kind in args.stores:
        trio.run(run, kind, args.pages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
