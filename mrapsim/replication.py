"""Replication between the buckets of a Multi-Region Access Point, as MRAP replication rules set
it up in S3: every new version (and delete marker) written to a member bucket is copied to every
other member, in both directions, `[replication] lag` seconds later (plus a uniform jitter drawn
from a generator seeded with `seed`). As in S3, replication needs versioning Enabled on the
source and the target; the source version says `x-amz-replication-status: PENDING` until the copy
lands and `COMPLETED` after; the copy keeps the version id and says `REPLICA`; replicas are not
replicated again (no ping-pong); removing a version for good (DELETE with versionId) is not
replicated.

The queue lives in the store (`Store.enqueue_replication` / `claim_replication`), not in this
process: a claim removes the tasks in the same transaction that reads them, so with
`--workers N` over the sqlite store every worker's replicator takes tasks and no task is copied
twice. A task claimed by a worker that dies before copying is lost (the source stays PENDING):
at-most-once, which is also what a crashed Region looks like. Replication to a paused bucket (its
Region "down", `Store.set_replication_paused`) waits in the queue; `/metrics` shows the backlog.

The replicator is a task in the server's root nursery: it polls every POLL_SECONDS, each round
bounded by ROUND_DEADLINE, and stops with the server.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

import trio

from mrapsim.config import ReplicationConfig
from mrapsim.store import NoSuchBucketError, NoSuchVersionError, ReplicationTask, Store

log = logging.getLogger("mrapsim.replication")

POLL_SECONDS = 0.1
ROUND_DEADLINE = 30.0  # one round of copies; a stuck store call is abandoned, the loop goes on
BATCH = 16
STATUS_HEADER = "x-amz-replication-status"
ENABLED = "Enabled"

BacklogHook = Callable[[Mapping[str, int]], None]
CopiedHook = Callable[[ReplicationTask], None]


class Replicator:
    def __init__(
        self,
        config: ReplicationConfig,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        on_backlog: BacklogHook | None = None,
        on_copied: CopiedHook | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._rng = random.Random(config.seed)
        self._on_backlog = on_backlog
        self._on_copied = on_copied

    def delay(self) -> float:
        jitter = self._rng.uniform(-self._config.jitter, self._config.jitter) if self._config.jitter else 0.0
        return max(0.0, self._config.lag + jitter)

    async def written(self, bucket: str, key: str, version_id: str, *, delete_marker: bool = False) -> int:
        """A new version of `key` in `bucket`: queue its copies to the bucket's MRAP partners.
        Returns how many copies were queued."""
        partners = sorted(
            {
                route.bucket
                for mrap in await self._store.list_mraps()
                if any(route.bucket == bucket for route in mrap.routes)
                for route in mrap.routes
                if route.bucket != bucket
            }
        )
        if not partners or await self._store.get_versioning(bucket) != ENABLED:
            return 0
        targets = [target for target in partners if await _versioning(self._store, target) == ENABLED]
        if not targets:
            return 0
        due = self._clock() + self.delay()
        await self._store.enqueue_replication([ReplicationTask(bucket, key, version_id, t, due) for t in targets])
        if not delete_marker:
            await self._store.set_replication_status(bucket, key, version_id, "PENDING")
        return len(targets)

    async def run(self) -> None:
        while True:
            with trio.move_on_after(ROUND_DEADLINE):
                await self.round()
            await trio.sleep(POLL_SECONDS)

    async def round(self) -> int:
        """Copy every task due now; returns how many were copied."""
        copied = 0
        while tasks := await self._store.claim_replication(self._clock(), BATCH):
            for task in tasks:
                try:
                    copied += await self.copy(task)
                except Exception:  # one bad task must not stop replication
                    what = (task.source, task.key, task.version_id, task.target)
                    log.exception("replicating %s/%s (%s) to %s failed", *what)
        if self._on_backlog is not None:
            self._on_backlog(await self._store.replication_backlog())
        return copied

    async def copy(self, task: ReplicationTask) -> int:
        try:
            stored = await self._store.get_object_version(task.source, task.key, task.version_id)
        except (NoSuchVersionError, NoSuchBucketError):
            return 0  # removed for good before its turn came
        info = stored.info
        if info.stored_headers.get(STATUS_HEADER) == "REPLICA":
            return 0
        headers = {**info.stored_headers, STATUS_HEADER: "REPLICA"}
        await self._store.put_replica(task.target, task.key, replace(info, stored_headers=headers), stored.content)
        if not info.delete_marker:
            await self._store.set_replication_status(task.source, task.key, task.version_id, "COMPLETED")
        if self._on_copied is not None:
            self._on_copied(task)
        return 1


async def _versioning(store: Store, bucket: str) -> str:
    try:
        return await store.get_versioning(bucket)
    except NoSuchBucketError:
        return ""
