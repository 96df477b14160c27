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
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from mrapsim.load import failures
from mrapsim.load.catalog import shape_class, user_classes
from mrapsim.load.client import (
    Connection,
    ConnectOptions,
    Endpoint,
    HttpConnection,
    Response,
    open_transport,
)
from mrapsim.load.http2 import Http2Connection
from mrapsim.load.requests import Body, PreparedRequest, build_request, seed_requests
from mrapsim.load.scenario import ConnectionMode, Scenario, TaskKind, TaskSpec
from mrapsim.load.shapes import Stages
from mrapsim.load.sigv4 import Credentials, Signer, SignerV4A
from mrapsim.load.stats import RunStats, TaskStats
from mrapsim.load.thresholds import Threshold
from mrapsim.load.tls import ClientTlsStream
from mrapsim.load.users import Executor, TaskFunction, User, UserContext

CONTROL_TICK = 0.05  # seconds between the user controller's looks at its target
USERS_SAMPLE = 0.25  # seconds between samples of the running users


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
    system_ca: bool = False  # trust the system store as well as ca_bundle
    stages: Stages | None = None
    process_share: float = 1.0  # this process's share of users and rates (several processes)
    id_stride: int = 1  # user numbers go first_user, first_user + id_stride, … (several processes)
    abort_thresholds: tuple[Threshold, ...] = ()
    sigv4a: bool = False  # sign with SigV4A (ECDSA P-256, region set "*") instead of SigV4

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError("--users must be at least 1")
        if self.duration is None and self.requests is None and self.stages is None:
            raise ValueError("give --duration, --requests or --stages")
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
    signer: Signer | SignerV4A | None = None
    connect: ConnectOptions | None = None
    bodies: dict[int, Body] = field(default_factory=dict)
    server_names: dict[bool | str, str | None] = field(default_factory=dict)
    running: int = 0  # users running now
    aborted: str = ""  # the abortOnFail threshold that stopped the run

    def __post_init__(self) -> None:
        o = self.options
        self.budget = o.requests
        if o.credentials is not None:
            self.signer = SignerV4A(o.credentials) if o.sigv4a else Signer(o.credentials, o.region)
        self.connect = ConnectOptions.create(o.ca_bundle, o.insecure, o.handshake_timeout, o.timeout, o.system_ca)

    def task_stats(self, task: TaskSpec) -> TaskStats:
        return self.stats.task(task.name, task.method)

    def server_name(self, sni: bool | str) -> str | None:
        if sni not in self.server_names:
            self.server_names[sni] = self.options.endpoint.server_name(sni)
        return self.server_names[sni]

    def body(self, size: int) -> Body:
        found = self.bodies.get(size)
        if found is None:
            found = self.bodies[size] = Body.of_size(size)
        return found

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


async def handshake_task(run: Run, task: TaskSpec) -> None:
    connection = await connect(run, run.server_name(task.sni), task.http == "2")
    await close(run, connection)


async def request_task(run: Run, task: TaskSpec, pool: UserPool, request: PreparedRequest) -> Response:
    """One S3 request; returns the response. A stale keep-alive connection (closed by the
    server while idle, nothing received) is retried once on a new connection."""
    server_name = run.server_name(task.sni)
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
    return response


@dataclass(frozen=True)
class Outcome:
    failure: str | None
    response: Response | None


async def execute(
    run: Run,
    task: TaskSpec,
    pool: UserPool,
    rng: random.Random,
    user: int,
    sequence: int,
    scheduled: float,
) -> Outcome:
    """Run one request (or handshake) and record it; `scheduled` is when it was due (trio clock)."""
    failure: str | None = None
    response = None
    try:
        if task.kind is TaskKind.HANDSHAKE:
            await handshake_task(run, task)
        else:
            request = build_request(task, run.options.endpoint, run.options.key_prefix, run.body, rng, user, sequence)
            response = await request_task(run, task, pool, request)
            failure = response.failure
    except failures.TaskFailure as exc:
        failure = exc.failure
    latency_us = int((trio.current_time() - scheduled) * 1_000_000)
    content = response.content_length if response is not None else 0
    run.stats.record(run.task_stats(task), latency_us, content, failure, time.time())
    run.stats.operation(task.kind.value)
    return Outcome(failure, response)


class TaskPicker:
    """Weighted choice of a user class's tasks, by bisection over cumulative weights."""

    def __init__(self, tasks: list[tuple[str, int, TaskFunction]]) -> None:
        self.tasks = [(name, function) for name, weight, function in tasks if weight > 0]
        self.cumulative: list[int] = []
        total = 0
        for _, weight, _ in (t for t in tasks if t[1] > 0):
            total += weight
            self.cumulative.append(total)
        self.total = total
        if not self.tasks:
            raise ValueError("a user class needs a task with a weight above 0")

    def pick(self, rng: random.Random) -> tuple[str, TaskFunction]:
        return self.tasks[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


def user_rng(options: RunOptions, user: int) -> random.Random:
    return random.Random(None if options.seed is None else options.seed * 1_000_003 + user)


# -- users ---------------------------------------------------------------------------------


@dataclass
class UserSlot:
    """A running user as the controller sees it: asked to stop after its task in hand."""

    stopped: trio.Event = field(default_factory=trio.Event)


class UserClasses:
    """The scenario's user classes and a weighted choice between them for each new user."""

    def __init__(self, scenario: Scenario) -> None:
        self.classes: list[type[User]] = user_classes(scenario)
        self.pickers = {cls: TaskPicker(cls.task_functions()) for cls in self.classes}
        self.weights = [max(0, cls.weight) for cls in self.classes]
        if sum(self.weights) <= 0:
            raise ValueError("the scenario's user classes all have weight 0")

    def for_user(self, user: int) -> type[User]:
        return random.Random(user).choices(self.classes, self.weights)[0]


async def run_task(run: Run, user: User, picker: TaskPicker, scheduled: float | None) -> None:
    """One task of a user; an exception in scenario code is recorded as a failure of the task."""
    context = user.context
    name, function = picker.pick(context.rng)
    context.current_task = name
    context.scheduled = scheduled
    user.task_started = trio.current_time()
    try:
        await function(user)
    except Exception as exc:  # the scenario's own code failed: count it, keep the user going
        latency = int((trio.current_time() - (scheduled or user.task_started)) * 1_000_000)
        run.stats.record(run.stats.task(name, "PY"), latency, 0, f"exception:{type(exc).__name__}", time.time())
        run.stats.meta.setdefault("exceptions", {}).setdefault(f"{type(exc).__name__}: {exc}", 0)
        run.stats.meta["exceptions"][f"{type(exc).__name__}: {exc}"] += 1


def executor_for(run: Run) -> Executor:
    """How the users' clients send their requests: over the user's own connections, recorded
    in the run's stats."""

    async def send(context: UserContext, spec: TaskSpec, scheduled: float) -> tuple[str | None, Response | None]:
        outcome = await execute(run, spec, context.pool, context.rng, context.user, context.sequence, scheduled)
        return outcome.failure, outcome.response

    return send


async def user_session(
    run: Run,
    classes: UserClasses,
    user_id: int,
    slot: UserSlot,
    arrivals: trio.MemoryReceiveChannel[float] | None = None,
) -> None:
    """A user's life: on_start, tasks (back to back with think time, or one per arrival),
    on_stop. Its connections are closed, and their bytes counted, however it ends."""
    cls = classes.for_user(user_id)
    pool = UserPool()
    user = cls(UserContext(executor_for(run), run.stats, user_id, user_rng(run.options, user_id), pool))
    picker = classes.pickers[cls]
    run.running += 1
    run.stats.running = run.running
    run.stats.users = max(run.stats.users, run.running)
    try:
        await run_on(run, user, "on_start")
        if arrivals is None:
            while not slot.stopped.is_set() and run.take():
                await run_task(run, user, picker, None)
                pause = type(user).wait_time(user)
                if pause > 0:
                    with trio.move_on_after(pause):
                        await slot.stopped.wait()
        else:
            async with arrivals:
                async for scheduled in arrivals:
                    if run.stop.is_set():
                        run.stats.not_sent += 1
                        continue
                    await run_task(run, user, picker, scheduled)
        await run_on(run, user, "on_stop")
    finally:
        run.running -= 1
        run.stats.running = run.running
        await pool.aclose(run)


async def run_on(run: Run, user: User, hook: str) -> None:
    """on_start / on_stop, their requests counted under the hook's name."""
    user.context.current_task = hook
    try:
        await getattr(user, hook)()
    except Exception as exc:  # scenario code: counted like a failed task
        run.stats.record(run.stats.task(hook, "PY"), 0, 0, f"exception:{type(exc).__name__}", time.time())


# -- models --------------------------------------------------------------------------------


def _spawn(run: Run, nursery: trio.Nursery, classes: UserClasses, slots: list[UserSlot], user_id: int) -> None:
    slot = UserSlot()
    slots.append(slot)
    nursery.start_soon(user_session, run, classes, user_id, slot)


def _my_part(total: int, index: int, processes: int) -> int:
    """This process's share of `total` users: as even as whole users allow."""
    return total // processes + (1 if index < total % processes else 0)


async def control_users(run: Run, nursery: trio.Nursery, classes: UserClasses) -> None:
    """Closed model: keep the number of users at the target of the moment — `--users` reached
    at `--spawn-rate`, the k6 stages' ramp, or a shape class's `tick` — until the run stops.
    Stage and shape targets are totals; with several processes each takes its part."""
    o = run.options
    stages = o.stages if o.stages is not None and o.stages.kind == "users" else None
    shape_type = shape_class(o.scenario)
    start = trio.current_time()
    shape = shape_type(start) if shape_type is not None else None
    slots: list[UserSlot] = []
    spawned = 0
    credit = 1.0  # the first user starts at once
    wanted, rate = o.users, o.spawn_rate or math.inf
    last = start
    next_tick = start
    while not run.stop.is_set() and not (run.budget is not None and run.budget <= 0):
        now = trio.current_time()
        if shape is not None and now >= next_tick:
            shape.now = now
            tick = shape.tick()
            if tick is None:
                run.stop.set()
                break
            wanted = _my_part(round(tick[0]), o.first_user, o.id_stride)
            rate = tick[1] * o.process_share or math.inf
            next_tick += 1.0
        elif stages is not None:
            at = stages.target_at(now - start)
            if at is None:
                break
            wanted = _my_part(round(at), o.first_user, o.id_stride)
        credit = min(credit + (now - last) * rate, max(1.0, rate))
        last = now
        slots = [s for s in slots if not s.stopped.is_set()]
        while len(slots) < wanted and credit >= 1:
            _spawn(run, nursery, classes, slots, o.first_user + spawned * o.id_stride)
            spawned += 1
            credit -= 1
        for slot in slots[wanted:]:
            slot.stopped.set()  # the newest users stop after the task in hand
        with trio.move_on_after(CONTROL_TICK):
            await run.stop.wait()
    for slot in slots:
        slot.stopped.set()


async def schedule_arrivals(run: Run, send: trio.MemorySendChannel[float]) -> None:
    """Open model: arrivals at `--rate` per second, or on the rate stages' ramp."""
    o = run.options
    async with send:
        start = trio.current_time()
        if o.stages is not None and o.stages.kind == "rate":
            for offset in _share(o.stages.arrival_times(), o.process_share, o.first_user):
                if not run.take():
                    return
                due = start + offset
                await trio.sleep_until(due)
                send.send_nowait(due)
            run.stop.set()
            return
        assert o.rate is not None
        n = 0
        while run.take():  # the budget ends the stream; queued arrivals are still served
            due = start + n / o.rate
            await trio.sleep_until(due)
            send.send_nowait(due)
            n += 1


def _share(times: list[float], share: float, index: int) -> list[float]:
    """This process's part of the arrivals: every k-th from its index (share 1/k)."""
    if share >= 1:
        return times
    return times[index :: round(1 / share)]


async def stop_after(run: Run, duration: float | None, hard: trio.CancelScope) -> None:
    """After `duration`, ask users to stop; after the stop timeout, cancel what is left.
    Without a duration the run ends when the users have spent the request budget."""
    with trio.move_on_after(math.inf if duration is None else duration):
        await run.stop.wait()
    run.stop.set()
    await trio.sleep(run.stop_timeout)
    hard.cancel()


async def sample_users(run: Run) -> None:
    while True:
        run.stats.sample_users(time.time(), run.running)
        await trio.sleep(USERS_SAMPLE)


async def watch_thresholds(run: Run) -> None:
    """abortOnFail thresholds, every second: the first that fails stops the run."""
    from mrapsim.load.thresholds import abort_verdict

    thresholds = list(run.options.abort_thresholds)
    while thresholds:
        await trio.sleep(1.0)
        run.stats.ended = time.time()
        verdict = abort_verdict(thresholds, run.stats, run.stats.ended - run.stats.started)
        if verdict is not None:
            run.aborted = verdict.threshold.text
            run.stats.meta["aborted"] = f"threshold '{verdict.threshold.text}' failed (abortOnFail)"
            run.stop.set()
            return


async def stop_on_interrupt(run: Run, stop_signals: tuple[int, ...]) -> None:
    """Ctrl-C (or, in a worker process, the parent's SIGTERM): the first stops the run as its
    end would (users finish the task in hand, the reports are written); a second one interrupts
    at once. Only where signals can be caught (the main thread)."""
    if not stop_signals or threading.current_thread() is not threading.main_thread():
        return
    with trio.open_signal_receiver(*stop_signals) as signals:
        async for _ in signals:
            if run.stop.is_set():
                raise KeyboardInterrupt
            run.stats.meta["interrupted"] = True
            run.stats.meta.setdefault("aborted", "interrupted (Ctrl-C)")
            run.stop.set()


async def drive(run: Run, stop_signals: tuple[int, ...] = (signal.SIGINT,)) -> None:
    """Run the users until the duration (or the stages) is over or the budget is spent."""
    o = run.options
    classes = UserClasses(o.scenario)
    run.stats.started = time.time()
    duration = o.duration
    if duration is None and o.stages is not None:
        duration = o.stages.total
    open_model = o.rate is not None or (o.stages is not None and o.stages.kind == "rate")
    async with trio.open_nursery() as outer:
        outer.start_soon(sample_users, run)
        outer.start_soon(watch_thresholds, run)
        outer.start_soon(stop_on_interrupt, run, stop_signals)
        async with trio.open_nursery() as users:
            outer.start_soon(stop_after, run, duration, users.cancel_scope)
            if not open_model:
                await control_users(run, users, classes)
            else:
                send, receive = trio.open_memory_channel[float](math.inf)
                users.start_soon(schedule_arrivals, run, send)
                async with receive:
                    for i in range(o.users):
                        users.start_soon(
                            user_session, run, classes, o.first_user + i * o.id_stride, UserSlot(), receive.clone()
                        )
        outer.cancel_scope.cancel()
    run.stats.ended = time.time()
    run.stats.sample_users(run.stats.ended, run.running)


CREDENTIAL_ERRORS = ("s3:AccessDenied", "s3:InvalidAccessKeyId", "s3:SignatureDoesNotMatch", "http:403")


def _setup_hint(run: Run, failure: str) -> str:
    """What to change, for the preflight failures a user can fix."""
    endpoint = run.options.endpoint
    if failure == "s3:NoSuchBucket":
        bucket = endpoint.base_path.strip("/") or endpoint.host.split(".")[0]
        return (
            f"bucket {bucket!r} does not exist at {endpoint.host_header} (s3:NoSuchBucket); "
            "name an existing one in the target (mrapsim's default: https://localhost:8444/mraps3sample)"
        )
    if failure in CREDENTIAL_ERRORS:
        if run.options.credentials is None:
            return (
                f"requests are unsigned and the server refused them ({failure}): set "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --access-key/--secret-key"
            )
        return (
            f"the server refused the key {run.options.credentials.access_key} ({failure}): check "
            "--access-key/--secret-key (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and --region"
        )
    return ""


async def seed_objects(run: Run) -> dict[str, Any]:
    """Before the run: one ListObjectsV2 (max-keys 1) to find a missing bucket or refused keys
    in a second, then PUT the objects that get/head tasks read. Returns what that took —
    requests by kind and connections — kept apart from the run's stats but beside them in the
    cross-check, since the server counts them too. SetupError says what to change."""
    scenario = run.options.scenario
    sizes = scenario.seeded_sizes
    setup: dict[str, Any] = {"puts": 0, "connections": 0, "requests": {}}
    if not scenario.uses_s3 and not sizes:
        return setup
    template = next((t for t in scenario.tasks if t.uses_seeded_objects), TaskSpec("setup", TaskKind.PUT, sni=True))
    pool = UserPool()
    scratch = Run(run.options)  # setup traffic stays out of the run's stats
    requests: dict[str, int] = setup["requests"]
    try:
        if scenario.uses_s3:
            probe = replace(template, kind=TaskKind.LIST, max_keys=1, name="setup")
            request = build_request(
                probe, run.options.endpoint, run.options.key_prefix, run.body, random.Random(0), 0, 0
            )
            failure = await _setup_request(scratch, probe, pool, request)
            requests["list"] = 1
            hint = _setup_hint(run, failure) if failure else ""
            if hint:
                raise SetupError(hint)
        for request in seed_requests(sizes, run.options.endpoint, run.options.key_prefix):
            failure = await _setup_request(scratch, template, pool, request)
            requests["put"] = requests.get("put", 0) + 1
            if failure:
                raise SetupError(
                    f"PUT {request.path}: {failure}"
                    + (f": {_setup_hint(run, failure)}" if _setup_hint(run, failure) else "")
                )
    finally:
        await pool.aclose(scratch)
        setup["connections"] = scratch.stats.handshakes.get(failures.OK, 0)
        setup["puts"] = requests.get("put", 0)
    return setup


async def _setup_request(run: Run, task: TaskSpec, pool: UserPool, request: PreparedRequest) -> str | None:
    try:
        response = await request_task(run, task, pool, request)
    except failures.TaskFailure as exc:
        return exc.failure
    return response.failure


async def run_load(
    options: RunOptions,
    reporter: Callable[[RunStats], Awaitable[None]] | None = None,
    seed: bool = True,
    stop_signals: tuple[int, ...] = (signal.SIGINT,),
) -> RunStats:
    """Seed objects (unless told not to), run, return the stats; `reporter` runs alongside;
    `stop_signals` stop the run gracefully (see stop_on_interrupt)."""
    run = Run(options)
    if seed:
        run.stats.meta["setup"] = await seed_objects(run)
    async with trio.open_nursery() as nursery:
        if reporter is not None:
            nursery.start_soon(reporter, run.stats)
        await drive(run, stop_signals)
        nursery.cancel_scope.cancel()
    order = {name: i for i, name in enumerate(options.scenario.task_names)}
    run.stats.tasks = dict(sorted(run.stats.tasks.items(), key=lambda kv: order.get(kv[0], len(order))))
    return run.stats
