"""Running a load test once it is configured: in this process or in several, with the live
terminal output, the live page's updates, and the server's counts read around the run.

Kept apart from cli.py so that a usage error — a bad option, a threshold naming a task that is
not there — is reported before trio, the clients and the reports are even imported.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

import trio

from mrapsim.load import report, server_metrics
from mrapsim.load.runner import Run, RunOptions, seed_objects
from mrapsim.load.runner import run_load as run_scenario
from mrapsim.load.stats import RunStats

LIVE_TICK = 1.0  # seconds between updates of the live page and the harness's /metrics


def settled_comparison(
    admin: str, before: server_metrics.Samples, stats: RunStats, patience: float = 3.0
) -> list[server_metrics.Comparison]:
    """The server counts a connection when it ends, a moment after the client has let go:
    read /metrics until the connection rows agree, or `patience` runs out."""
    deadline = time.monotonic() + patience
    while True:
        rows = server_metrics.compare(before, server_metrics.fetch(admin), stats)
        if all(r.harness == r.server for r in rows[:2]) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


# -- live output ---------------------------------------------------------------------------


class LiveView:
    """Redraws the table in place on a TTY; prints one line per interval otherwise."""

    def __init__(self, out: TextIO, interval: float) -> None:
        self.out = out
        self.interval = max(0.2, interval)
        self.tty = out.isatty()
        self.previous: report.Totals | None = None
        self.drawn = 0

    def update(self, stats: RunStats) -> None:
        now = report.totals_of(stats, time.time())
        previous = self.previous or report.Totals(stats.started or now.at, {}, {})
        self.previous = now
        if self.tty:
            text = report.live_table(stats, previous, now)
            if self.drawn:
                self.out.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = text.count("\n")
        else:
            text = report.live_line(stats, previous, now)
        self.out.write(text)
        self.out.flush()


def run_single(options: RunOptions, view: LiveView | None, live: Any = None) -> RunStats:
    """The run in this process, with the live outputs alongside."""
    return trio.run(single_process, options, view, live)


async def single_process(options: RunOptions, view: LiveView | None, live: Any = None) -> RunStats:
    async def report_live(stats: RunStats) -> None:
        next_view = trio.current_time() + (view.interval if view else 0)
        while True:
            await trio.sleep(LIVE_TICK)
            if live is not None:
                live.publish(stats)
            if view is not None and trio.current_time() >= next_view:
                view.update(stats)
                next_view += view.interval

    return await run_scenario(options, report_live if view is not None or live is not None else None)


# -- several processes ---------------------------------------------------------------------


class WorkerError(Exception):
    pass


if TYPE_CHECKING:
    Pipe = multiprocessing.connection.Connection[Any, Any]


def split_options(options: RunOptions, processes: int) -> list[RunOptions]:
    """Users, spawn rate, arrival rate and request budget shared out between processes."""
    parts = []
    for i in range(processes):
        users = options.users // processes + (1 if i < options.users % processes else 0)
        requests = None
        if options.requests is not None:
            requests = options.requests // processes + (1 if i < options.requests % processes else 0)
        parts.append(
            replace(
                options,
                users=users,
                first_user=i,
                id_stride=processes,
                requests=requests,
                spawn_rate=options.spawn_rate / processes,
                process_share=1 / processes,
                rate=options.rate / processes if options.rate is not None else None,
            )
        )
    return parts


def _worker(options: RunOptions, interval: float, conn: Pipe) -> None:
    async def snapshots(stats: RunStats) -> None:
        while True:
            await trio.sleep(interval)
            conn.send(("snapshot", stats.to_json()))

    # Ctrl-C on a terminal reaches every process of the group: workers leave it to the parent,
    # which stops them with one SIGTERM each (a second signal would cut their run short).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stats = trio.run(run_scenario, options, snapshots, False, (signal.SIGTERM,))
        conn.send(("final", stats.to_json()))
    except BaseException as exc:  # report any death to the parent, which exits 1
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _merged(snapshots: list[dict[str, Any] | None]) -> RunStats:
    merged = RunStats()
    for snapshot in snapshots:
        if snapshot is not None:
            merged.merge(RunStats.from_json(snapshot))
    return merged


def run_processes(options: RunOptions, processes: int, view: LiveView | None, live: Any = None) -> RunStats:
    """Seed once here, then run the split options in `processes` spawned workers."""
    setup = trio.run(seed_objects, Run(options))
    context = multiprocessing.get_context("spawn")
    interval = LIVE_TICK if live is not None else view.interval if view is not None else 3600.0
    pipes = []
    workers = []
    for part in split_options(options, processes):
        receiver, sender = context.Pipe(duplex=False)
        worker = context.Process(target=_worker, args=(part, interval, sender), daemon=True)
        worker.start()
        sender.close()
        pipes.append(receiver)
        workers.append(worker)
    latest: list[dict[str, Any] | None] = [None] * processes
    final: list[dict[str, Any] | None] = [None] * processes
    interrupted: list[bool] = []

    def on_interrupt(signum: int, frame: object) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        _collect(pipes, latest, final, view, lambda: _merged(latest), live, lambda: bool(interrupted))
    finally:
        signal.signal(signal.SIGINT, previous)
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
    stats = _merged(final)
    if interrupted:
        stats.meta["interrupted"] = True
        stats.meta.setdefault("aborted", "interrupted (Ctrl-C)")
    stats.meta["setup"] = setup
    stats.meta["processes"] = processes
    return stats


def _collect(
    pipes: list[Pipe],
    latest: list[dict[str, Any] | None],
    final: list[dict[str, Any] | None],
    view: LiveView | None,
    merged: Callable[[], RunStats],
    live: Any = None,
    interrupted: Callable[[], bool] = lambda: False,
) -> None:
    open_pipes = dict(enumerate(pipes))
    next_draw = time.monotonic() + (view.interval if view else 0)
    while open_pipes:
        wait = max(0.05, next_draw - time.monotonic()) if view else None
        for pipe in multiprocessing.connection.wait(list(open_pipes.values()), timeout=wait):
            index = next(i for i, p in open_pipes.items() if p is pipe)
            try:
                kind, payload = pipes[index].recv()
            except EOFError:
                del open_pipes[index]
                # Interrupted while it was still starting, a worker dies of the SIGTERM it had
                # no handler for yet: it had nothing to report.
                if final[index] is None and not interrupted():
                    raise WorkerError(f"worker {index} exited without a report") from None
                continue
            if kind == "error":
                raise WorkerError(f"worker {index} failed: {payload}")
            if kind == "final":
                final[index] = payload
            latest[index] = payload
            if live is not None:
                live.publish(merged())
        if view is not None and time.monotonic() >= next_draw:
            current = merged()
            if current.started:  # nothing to show before the workers' first snapshot
                view.update(current)
            next_draw += view.interval
