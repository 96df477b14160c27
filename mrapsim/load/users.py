"""Scenarios in Python: a user class with weighted tasks, think time, start/stop hooks, the
harness's clients, and k6-like checks (`mrapsim load --scenario my_mix.py`).

    from mrapsim.load.users import User, between, task

    class Reader(User):
        wait_time = between(0.5, 1.5)          # think time after each task (Locust's helpers)
        seed_sizes = (1024,)                   # objects written before the run for s3.get/head

        async def on_start(self) -> None:      # once per user, before its first task
            await self.s3.put("mine.txt", body=b"hello", name="setup_put")

        @task(3)
        async def read(self) -> None:
            response = await self.s3.get(size=1024)
            self.check(response, {"status is 200": lambda r: r.status == 200,
                                  "1 KiB": lambda r: r.content_length == 1024})

        @task
        async def handshake_nosni(self) -> None:
            await self.tls.handshake(sni=False)

Tasks are `async` methods (trio). Every client call is one request in the reports, named after
the task it runs in (or `name=`); it never raises for a failed request: the `Result` carries the
status, the failure class (`stalled`, `s3:NoSuchKey`…), the headers and the first 64 KiB of the
body. `check` counts each named predicate as passed or failed (k6's checks: a failed check does
not fail the request; threshold them with `checks>0.99`). The built-in scenarios are such files
(mrapsim/load/scenarios/); a TOML scenario becomes such a class too.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, overload

from mrapsim.load.scenario import ConnectionMode, TaskKind, TaskSpec, parse_size

if TYPE_CHECKING:
    from mrapsim.load.stats import RunStats

WaitTime = Callable[["User"], float]
TaskFunction = Callable[["User"], Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Any])


# -- think time (Locust's helpers) ------------------------------------------------------------


def constant(seconds: float) -> WaitTime:
    """The same pause after every task."""
    return lambda user: seconds


def between(low: float, high: float) -> WaitTime:
    """A pause drawn uniformly between `low` and `high` seconds."""
    return lambda user: user.rng.uniform(low, high)


def constant_pacing(seconds: float) -> WaitTime:
    """Start a task every `seconds` at most (the pause is what the task left of it)."""

    def pause(user: User) -> float:
        import trio  # loaded by then; not at import, so that scenario files load light

        return max(0.0, seconds - (trio.current_time() - user.task_started))

    return pause


pacing = constant_pacing


@overload
def task(weight: F) -> F: ...


@overload
def task(weight: int = 1) -> Callable[[F], F]: ...


def task(weight: int | F = 1) -> F | Callable[[F], F]:
    """`@task` or `@task(3)`: mark a method as a task, chosen by weight."""
    if callable(weight):
        weight.task_weight = 1  # type: ignore[attr-defined]
        return weight
    chosen = weight

    def mark(function: F) -> F:
        function.task_weight = chosen  # type: ignore[attr-defined]
        return function

    return mark


# -- what a request gives back --------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One request's outcome, for checks. `failure` is None on success."""

    name: str
    status: int  # 0 when no HTTP response came back (handshake tasks, transport failures)
    failure: str | None
    content_length: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""  # the first 64 KiB
    elapsed: float = 0.0  # seconds

    @property
    def ok(self) -> bool:
        return self.failure is None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


# -- clients --------------------------------------------------------------------------------


class _Client:
    def __init__(self, user: User) -> None:
        self.user = user

    async def _run(self, spec: TaskSpec) -> Result:
        return await self.user.context.execute(spec)

    def _spec(self, kind: TaskKind, name: str | None, **fields: Any) -> TaskSpec:
        return self.user.context.spec(kind, name, fields)


class S3Client(_Client):
    """S3 operations, signed (SigV4, or SigV4A with --sigv4a) when the run has credentials.
    Connection options on every call: `sni` (True: the target's host, False: none, or a name),
    `connection` ("keep-alive" or "new"), `http` ("1.1" or "2")."""

    async def list(self, prefix: str = "", max_keys: int = 1000, name: str | None = None, **connection: Any) -> Result:
        return await self._run(self._spec(TaskKind.LIST, name, prefix=prefix, max_keys=max_keys, **connection))

    async def get(
        self,
        key: str | None = None,
        size: int | str = 1024,
        range: str | None = None,
        name: str | None = None,
        **connection: Any,
    ) -> Result:
        """`key`, or the seeded object of `size`; `range` like "0-1023" or "-512"."""
        ranges = (range.removeprefix("bytes="),) if range else ()
        return await self._run(
            self._spec(TaskKind.GET, name, key=key, sizes=(parse_size(size),), ranges=ranges, **connection)
        )

    async def head(
        self, key: str | None = None, size: int | str = 1024, name: str | None = None, **connection: Any
    ) -> Result:
        return await self._run(self._spec(TaskKind.HEAD, name, key=key, sizes=(parse_size(size),), **connection))

    async def put(
        self,
        key: str | None = None,
        size: int | str = 1024,
        name: str | None = None,
        body: bytes | None = None,
        **connection: Any,
    ) -> Result:
        """`key` as given, or a key of the user's own under the run's key prefix; `body` as
        given, or `size` generated bytes."""
        sizes = (len(body),) if body is not None else (parse_size(size),)
        return await self._run(self._spec(TaskKind.PUT, name, key=key, sizes=sizes, body=body, **connection))


class TlsClient(_Client):
    """TLS handshakes on new connections, no request: `sni` True, False or a name."""

    async def handshake(self, sni: bool | str = True, http: str = "1.1", name: str | None = None) -> Result:
        return await self._run(self._spec(TaskKind.HANDSHAKE, name, sni=sni, http=http, connection=ConnectionMode.NEW))


# -- the user class -------------------------------------------------------------------------


class User:
    """Subclass it; see the module's docstring."""

    weight: int = 1
    wait_time: ClassVar[WaitTime] = constant(0)
    seed_sizes: tuple[int, ...] = ()
    uses_s3: bool = True  # False for handshake-only classes: no bucket check before the run
    abstract: bool = True  # a subclass is concrete unless it says otherwise

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "abstract" not in cls.__dict__:
            cls.abstract = False

    def __init__(self, context: UserContext) -> None:
        self.context = context
        self.s3 = S3Client(self)
        self.tls = TlsClient(self)
        self.task_started = 0.0

    @property
    def rng(self) -> random.Random:
        return self.context.rng

    @property
    def user_id(self) -> int:
        return self.context.user

    async def on_start(self) -> None:
        """Once per user, before its first task (requests here are counted like any other)."""

    async def on_stop(self) -> None:
        """Once per user, when it stops."""

    def check(self, value: Any, checks: Mapping[str, Callable[[Any], Any]]) -> bool:
        """k6's `check`: each predicate counted as passed or failed under the current task; a
        predicate that raises has failed. True when all passed."""
        passed_all = True
        for label, predicate in checks.items():
            try:
                passed = bool(predicate(value))
            except Exception:  # a check that cannot be evaluated has failed
                passed = False
            self.context.stats.check(self.context.current_task, label, passed)
            passed_all &= passed
        return passed_all

    @classmethod
    def task_functions(cls) -> list[tuple[str, int, TaskFunction]]:
        """(name, weight, function) of each `@task` method, in definition order."""
        found = []
        for name, member in inspect.getmembers(cls, predicate=inspect.isfunction):
            weight = getattr(member, "task_weight", None)
            if weight is not None:
                found.append((name, int(weight), member))
        order = {name: i for i, name in enumerate(_definition_order(cls))}
        return sorted(found, key=lambda t: order.get(t[0], len(order)))


def _definition_order(cls: type) -> list[str]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        names.extend(n for n in vars(klass) if n not in names)
    return names


class Executor(Protocol):
    """How a user's request reaches the run (runner.py provides it): run `spec`, record it,
    and give back the failure class (None on success) and the response, if one came."""

    async def __call__(self, context: UserContext, spec: TaskSpec, scheduled: float) -> tuple[str | None, Any]: ...


class UserContext:
    """What a user object reaches the run through: its numbers, random source, the stats (for
    checks), and the executor that sends its requests over its own connections."""

    def __init__(self, executor: Executor, stats: RunStats, user: int, rng: random.Random, pool: Any) -> None:
        self.executor = executor
        self.stats = stats
        self.user = user
        self.rng = rng
        self.pool = pool
        self.sequence = 0
        self.current_task = "on_start"
        self.scheduled: float | None = None  # open model: when this task's arrival was due
        self.specs: dict[tuple[Any, ...], TaskSpec] = {}

    def spec(self, kind: TaskKind, name: str | None, fields: Mapping[str, Any]) -> TaskSpec:
        key = (kind, name, self.current_task, tuple(sorted(fields.items())))
        found = self.specs.get(key)
        if found is None:
            values = {k: v for k, v in fields.items() if v is not None}
            if "connection" in values:
                values["connection"] = ConnectionMode(values["connection"])
            found = self.specs[key] = TaskSpec(name or self.current_task, kind, **values)
        return found

    async def execute(self, spec: TaskSpec) -> Result:
        import trio  # loaded by then; not at import, so that scenario files load light

        scheduled, self.scheduled = self.scheduled, None
        started = trio.current_time()
        failure, response = await self.executor(self, spec, started if scheduled is None else scheduled)
        self.sequence += 1
        return Result(
            spec.name,
            response.status if response else 0,
            failure,
            response.content_length if response else 0,
            response.headers if response else (),
            response.body_head if response else b"",
            trio.current_time() - started,
        )


def spec_user(tasks: tuple[TaskSpec, ...], seeded: tuple[int, ...]) -> type[User]:
    """A user class for TOML tasks: each task runs its TaskSpec as given."""

    def make(spec: TaskSpec) -> TaskFunction:
        async def run_spec(user: User) -> None:
            await user.context.execute(spec)

        run_spec.task_weight = spec.weight  # type: ignore[attr-defined]
        return run_spec

    members: dict[str, Any] = {"seed_sizes": seeded}
    for spec in tasks:
        members[spec.name] = make(spec)
    return type("TomlUser", (User,), members)
