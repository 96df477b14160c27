"""Run a scenario: users in a nursery, a closed or an open (arrival-rate) model, a graceful stop.

Closed model (default): `users` tasks each run weighted tasks back to back, started at
`spawn_rate` per second, like Locust with `wait_time = constant(0)`.

Open model (`rate`): arrivals are scheduled at fixed intervals, independent of how fast the
server answers, and queued for the `users` workers; a task's latency is measured from its
*scheduled* start, so time spent queued behind a slow response counts (coordinated omission
corrected, as wrk2 and k6's arrival-rate executors do). Arrivals still queued when the run stops
are counted as `not_sent`.

Stopping: when the duration is over (or the `requests` budget is spent) users finish the task in
hand — it is bounded by the handshake and request deadlines — and take no more; after
`stop_timeout` whatever is left is cancelled. So every request that reached the server is
counted, which is what lets the summary agree with the server's own metrics.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from mrapsim.load import failures
from mrapsim.load.client import Connection, ConnectOptions, Endpoint, HttpConnection, open_transport
from mrapsim.load.http2 import Http2Connection
from mrapsim.load.requests import Body, PreparedRequest, build_request, seed_requests
from mrapsim.load.scenario import ConnectionMode, Scenario, TaskKind, TaskSpec
from mrapsim.load.sigv4 import Credentials, Signer
from mrapsim.load.stats import RunStats, TaskStats
from mrapsim.load.tls import ClientTlsStream


@dataclass(frozen=True)
class RunOptions:
    endpoint: Endpoint
    scenario: Scenario
    users: int = 1
    spawn_rate: float = 0.0  # users per second; 0: all at once
    duration: float | None = 10.0
    requests: int | None = None
    rate: float | None = None
    handshake_timeout: float = 5.0
    timeout: float = 10.0
    credentials: Credentials | None = None
    region: str = "us-east-1"
    ca_bundle: str | None = None
    insecure: bool = False
    key_prefix: str = "mrapsim-load/"
    seed: int | None = None
    stop_timeout: float | None = None  # default: handshake_timeout + timeout
    first_user: int = 0  # numbering across processes

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError("--users must be at least 1")
        if self.duration is None and self.requests is None:
            raise ValueError("give --duration or --requests")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("--duration must be more than 0")
        if self.requests is not None and self.requests < 0:
            raise ValueError("--requests must be 0 or more")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("--rate must be more than 0")
        if self.handshake_timeout <= 0 or self.timeout <= 0:
            raise ValueError("timeouts must be more than 0")
        if self.spawn_rate < 0:
            raise ValueError("--spawn-rate must be 0 or more")


class SetupError(Exception):
    """The objects get/head tasks read could not be created."""


@dataclass
class Run:
    """One process's run: options, shared clients, the stats being filled, the stop signal."""

    options: RunOptions
    stats: RunStats = field(default_factory=RunStats)
    stop: trio.Event = field(default_factory=trio.Event)
    budget: int | None = None
    signer: Signer | None = None
    connect: ConnectOptions | None = None
    bodies: dict[int, Body] = field(default_factory=dict)
    task_stats: dict[str, TaskStats] = field(default_factory=dict)
    server_names: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        o = self.options
        self.budget = o.requests
        if o.credentials is not None:
            self.signer = Signer(o.credentials, o.region)
        self.stats.meta["task_kinds"] = {t.name: t.kind.value for t in o.scenario.tasks}
        self.connect = ConnectOptions.create(o.ca_bundle, o.insecure, o.handshake_timeout, o.timeout)
        for task in o.scenario.tasks:
            self.task_stats[task.name] = self.stats.task(task.name, task.method)
            self.server_names[task.name] = o.endpoint.server_name(task.sni)
            if task.kind is TaskKind.PUT:
                for size in task.sizes:
                    self.bodies.setdefault(size, Body.of_size(size))

    def take(self) -> bool:
        """May a user start another task?"""
        if self.stop.is_set():
            return False
        if self.budget is None:
            return True
        if self.budget <= 0:
            return False
        self.budget -= 1
        return True

    @property
    def stop_timeout(self) -> float:
        o = self.options
        return o.stop_timeout if o.stop_timeout is not None else o.handshake_timeout + o.timeout + 1


# -- connections and tasks -----------------------------------------------------------------


async def connect(run: Run, server_name: str | None, http2: bool = False) -> HttpConnection:
    """A new connection; the handshake outcome is counted whatever it is."""
    assert run.connect is not None
    endpoint = run.options.endpoint
    try:
        if http2 and not endpoint.tls:
            raise failures.TaskFailure(failures.NOT_H2, "HTTP/2 is only offered over TLS (ALPN)")
        stream, meter = await open_transport(endpoint, server_name, run.connect, http2)
    except failures.TaskFailure as failure:
        run.stats.handshake(failure.failure)
        raise
    if endpoint.tls:
        run.stats.handshake(failures.OK)
    if not http2:
        return Connection(stream, meter)
    connection = Http2Connection(stream, meter)
    if not isinstance(stream, ClientTlsStream) or stream.selected_alpn_protocol() != "h2":
        await close(run, connection)
        raise failures.TaskFailure(failures.NOT_H2)
    return connection


async def close(run: Run, connection: HttpConnection) -> None:
    await connection.aclose()
    run.stats.bytes_sent += connection.meter.sent
    run.stats.bytes_received += connection.meter.received


class UserPool:
    """A user's keep-alive connections, one per server name (None: no SNI) and HTTP version."""

    def __init__(self) -> None:
        self.connections: dict[tuple[str | None, str], HttpConnection] = {}

    async def aclose(self, run: Run) -> None:
        for connection in self.connections.values():
            await close(run, connection)
        self.connections.clear()


async def handshake_task(run: Run, task: TaskSpec) -> int:
    connection = await connect(run, run.server_names[task.name], task.http == "2")
    await close(run, connection)
    return 0


async def request_task(run: Run, task: TaskSpec, pool: UserPool, request: PreparedRequest) -> int:
    """One S3 request; returns the body length. A stale keep-alive connection (closed by the
    server while idle, nothing received) is retried once on a new connection."""
    server_name = run.server_names[task.name]
    key = (server_name, task.http)
    keep = task.connection is ConnectionMode.KEEP_ALIVE
    connection = pool.connections.pop(key, None) if keep else None
    fresh = connection is None
    if connection is None:
        connection = await connect(run, server_name, task.http == "2")
    received_before = connection.meter.received
    headers = request.headers(run.options.endpoint, run.signer)
    try:
        response = await connection.request(
            request.method, request.target, headers, request.body.data, run.options.timeout
        )
    except failures.TaskFailure as failure:
        await close(run, connection)
        stale = failure.failure in (failures.CLOSED, failures.RESET)
        untouched = connection.meter.received == received_before
        if fresh or not (failure.retryable or (stale and untouched)):
            raise
        return await request_task(run, task, pool, request)  # the pool has none for `key` now
    except BaseException:  # cancelled at the hard stop: still close it and count its bytes
        await close(run, connection)
        raise
    if keep and connection.reusable:
        pool.connections[key] = connection
    else:
        await close(run, connection)
    if response.failure is not None:
        raise failures.TaskFailure(response.failure)
    return response.content_length


async def execute(
    run: Run,
    task: TaskSpec,
    pool: UserPool,
    rng: random.Random,
    user: int,
    sequence: int,
    scheduled: float,
) -> None:
    """Run one task and record it; `scheduled` is when it was due (trio clock)."""
    failure: str | None = None
    content = 0
    try:
        if task.kind is TaskKind.HANDSHAKE:
            content = await handshake_task(run, task)
        else:
            request = build_request(task, run.options.endpoint, run.options.key_prefix, run.bodies, rng, user, sequence)
            content = await request_task(run, task, pool, request)
    except failures.TaskFailure as exc:
        failure = exc.failure
    latency_us = int((trio.current_time() - scheduled) * 1_000_000)
    run.stats.record(run.task_stats[task.name], latency_us, content, failure, time.time())


class TaskPicker:
    """Weighted choice by bisection over cumulative weights."""

    def __init__(self, scenario: Scenario) -> None:
        self.tasks = [t for t in scenario.tasks if t.weight > 0]
        self.cumulative: list[int] = []
        total = 0
        for task in self.tasks:
            total += task.weight
            self.cumulative.append(total)
        self.total = total

    def pick(self, rng: random.Random) -> TaskSpec:
        return self.tasks[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


def user_rng(options: RunOptions, user: int) -> random.Random:
    return random.Random(None if options.seed is None else options.seed * 1_000_003 + user)


# -- models --------------------------------------------------------------------------------


async def closed_user(run: Run, picker: TaskPicker, user: int) -> None:
    rng = user_rng(run.options, user)
    pool = UserPool()
    sequence = 0
    try:
        while run.take():
            task = picker.pick(rng)
            await execute(run, task, pool, rng, user, sequence, trio.current_time())
            sequence += 1
    finally:
        await pool.aclose(run)


async def open_user(run: Run, picker: TaskPicker, user: int, arrivals: trio.MemoryReceiveChannel[float]) -> None:
    rng = user_rng(run.options, user)
    pool = UserPool()
    sequence = 0
    try:
        async with arrivals:
            async for scheduled in arrivals:
                if run.stop.is_set():
                    run.stats.not_sent += 1
                    continue
                await execute(run, picker.pick(rng), pool, rng, user, sequence, scheduled)
                sequence += 1
    finally:
        await pool.aclose(run)


async def schedule_arrivals(run: Run, rate: float, send: trio.MemorySendChannel[float]) -> None:
    async with send:
        start = trio.current_time()
        n = 0
        while run.take():  # the budget ends the stream; queued arrivals are still served
            due = start + n / rate
            await trio.sleep_until(due)
            send.send_nowait(due)
            n += 1


async def spawn_users(run: Run, nursery: trio.Nursery, start_user: Callable[[int], Awaitable[None]]) -> None:
    """Start users at the spawn rate; stop spawning when the run stops."""
    o = run.options
    for i in range(o.users):
        if run.stop.is_set():
            return
        nursery.start_soon(start_user, o.first_user + i)
        run.stats.users += 1
        if o.spawn_rate > 0 and i + 1 < o.users:
            with trio.move_on_after(1 / o.spawn_rate):
                await run.stop.wait()


async def stop_after(run: Run, duration: float | None, hard: trio.CancelScope) -> None:
    """After `duration`, ask users to stop; after the stop timeout, cancel what is left.
    Without a duration the run ends when the users have spent the request budget."""
    with trio.move_on_after(math.inf if duration is None else duration):
        await run.stop.wait()
    run.stop.set()
    await trio.sleep(run.stop_timeout)
    hard.cancel()


async def drive(run: Run) -> None:
    """Run the users until the duration is over or the budget is spent."""
    picker = TaskPicker(run.options.scenario)
    run.stats.started = time.time()
    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as users:
            outer.start_soon(stop_after, run, run.options.duration, users.cancel_scope)
            if run.options.rate is None:
                await spawn_users(run, users, lambda user: closed_user(run, picker, user))
            else:
                send, receive = trio.open_memory_channel[float](math.inf)
                users.start_soon(schedule_arrivals, run, run.options.rate, send)
                async with receive:
                    await spawn_users(run, users, lambda u: open_user(run, picker, u, receive.clone()))
        outer.cancel_scope.cancel()
    run.stats.ended = time.time()


async def seed_objects(run: Run) -> dict[str, int]:
    """PUT the objects that get/head tasks read; returns how many PUTs and connections that
    took (kept apart from the run's stats). SetupError names the failure."""
    sizes = run.options.scenario.seeded_sizes
    if not sizes:
        return {"puts": 0, "connections": 0}
    task = next(t for t in run.options.scenario.tasks if t.uses_seeded_objects)
    pool = UserPool()
    scratch = Run(run.options)  # setup traffic stays out of the run's stats
    try:
        for request in seed_requests(sizes, run.options.endpoint, run.options.key_prefix):
            try:
                await request_task(scratch, task, pool, request)
            except failures.TaskFailure as exc:
                raise SetupError(f"PUT {request.path}: {exc.failure}") from None
    finally:
        await pool.aclose(scratch)
    return {"puts": len(sizes), "connections": sum(scratch.stats.handshakes.values())}


async def run_load(
    options: RunOptions,
    reporter: Callable[[RunStats], Awaitable[None]] | None = None,
    seed: bool = True,
) -> RunStats:
    """Seed objects (unless told not to), run, return the stats; `reporter` runs alongside."""
    run = Run(options)
    if seed:
        run.stats.meta["setup"] = await seed_objects(run)
    async with trio.open_nursery() as nursery:
        if reporter is not None:
            nursery.start_soon(reporter, run.stats)
        await drive(run)
        nursery.cancel_scope.cancel()
    return run.stats
