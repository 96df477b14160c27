"""The run models against a plain-HTTP stand-in: open-model latency counts queueing
(coordinated omission corrected), closed-model latency does not; budgets, ramp-up, stale
keep-alive connections."""

from __future__ import annotations

import trio

from mrapsim.load.client import parse_endpoint
from mrapsim.load.runner import RunOptions, run_load
from mrapsim.load.scenario import Scenario, TaskKind, TaskSpec
from mrapsim.load.stats import RunStats
from tests.load import standins

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
GET = Scenario("get", (TaskSpec("get", TaskKind.GET, key="x"),))


def run(handler: standins.Handler, **options: object) -> RunStats:
    async def main() -> RunStats:
        async with trio.open_nursery() as nursery:
            port = await standins.start(nursery, handler)
            settings: dict[str, object] = {"scenario": GET, "users": 1, "duration": 1.0, **options}
            stats = await run_load(
                RunOptions(endpoint=parse_endpoint(f"http://127.0.0.1:{port}"), **settings), seed=False
            )  # type: ignore[arg-type]
            nursery.cancel_scope.cancel()
        return stats

    return trio.run(main)


def test_open_model_counts_time_queued_behind_slow_responses() -> None:
    slow = standins.canned_http(None, {"*": OK}, delay=0.02)
    closed = run(slow).total()
    assert closed.failures == 0 and closed.histogram.percentile(99) < 80_000
    stats = run(slow, rate=200.0)  # 200 arrivals/s for one user that can do ~50/s
    total = stats.total()
    assert total.failures == 0 and 10 <= total.requests <= 60
    assert total.histogram.percentile(90) > 300_000  # queued arrivals waited, and it shows
    assert stats.not_sent > 100


def test_open_model_request_budget_is_served_in_full() -> None:
    stats = run(standins.canned_http(None, {"*": OK}), rate=500.0, users=4, duration=None, requests=100)
    assert stats.total().requests == 100 and stats.not_sent == 0


def test_spawn_rate_ramps_users() -> None:
    stats = run(standins.canned_http(None, {"*": OK}), users=10, spawn_rate=4.0, duration=1.0)
    assert 3 <= stats.users <= 5
    assert max(i.users for i in stats.timeline.values()) <= 5


def test_stale_keep_alive_connection_is_retried_once() -> None:
    stats = run(standins.canned_http(None, {"*": OK}, close_after=1), duration=None, requests=20)
    total = stats.total()
    assert total.requests == 20 and total.failures == 0
