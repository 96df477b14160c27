"""Scenarios: weighted tasks, built in by name or read from a TOML file.

A TOML scenario is a list of `[[task]]` tables:

    name = "my-mix"                       # optional
    [[task]]
    kind = "get"                          # list | get | put | head | handshake
    weight = 3
    name = "get-1k"                       # optional, defaults to the kind
    sizes = ["1KiB", "64KiB"]             # get/put/head: object sizes
    ranges = ["0-1023"]                   # get: Range header values (bytes=…), one at random
    key = "hello.txt"                     # get/head: an existing key instead of seeded objects
    prefix = ""                           # list: prefix
    max_keys = 100                        # list: max-keys
    sni = true                            # true (the target's host) | false (none) | "a.name"
    connection = "keep-alive"             # keep-alive | new (a new TLS connection per request)
    http = "1.1"                          # "1.1" or "2" (h2 by ALPN, TLS only)

Everything here is parsed once into frozen dataclasses and validated at construction.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class TaskKind(enum.StrEnum):
    LIST = "list"
    GET = "get"
    PUT = "put"
    HEAD = "head"
    HANDSHAKE = "handshake"


class ConnectionMode(enum.StrEnum):
    KEEP_ALIVE = "keep-alive"
    NEW = "new"


METHODS = {
    TaskKind.LIST: "GET",
    TaskKind.GET: "GET",
    TaskKind.PUT: "PUT",
    TaskKind.HEAD: "HEAD",
    TaskKind.HANDSHAKE: "TLS",
}

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KIB|K|MB|MIB|M|GB|GIB|G)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KB": 1000,
    "KIB": 1024,
    "M": 1 << 20,
    "MB": 10**6,
    "MIB": 1 << 20,
    "G": 1 << 30,
    "GB": 10**9,
    "GIB": 1 << 30,
}
_RANGE = re.compile(r"^(\d+)-(\d*)$|^-(\d+)$")
_TASK_KEYS = {"kind", "weight", "name", "sizes", "ranges", "key", "prefix", "max_keys", "sni", "connection", "http"}


def parse_size(text: str | int) -> int:
    """`1024`, `"1KiB"`, `"64k"`, `"1MB"` → bytes."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = _SIZE.match(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a size (like 1024, 1KiB, 64KiB, 1MiB)")
    return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: TaskKind
    weight: int = 1
    sni: bool | str = True
    connection: ConnectionMode = ConnectionMode.KEEP_ALIVE
    http: str = "1.1"
    prefix: str = ""
    max_keys: int = 1000
    sizes: tuple[int, ...] = (1024,)
    ranges: tuple[str, ...] = ()
    key: str | None = None

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in ":, \t\n"):
            raise ValueError(f"task name {self.name!r}: must be non-empty, without ':', ',' or spaces")
        if self.weight < 0:
            raise ValueError(f"task {self.name}: weight must be 0 or more")
        if self.http not in ("1.1", "2"):
            raise ValueError(f'task {self.name}: http {self.http!r}: "1.1" or "2"')
        if not 1 <= self.max_keys <= 1000:
            raise ValueError(f"task {self.name}: max_keys must be 1..1000")
        if not self.sizes:
            raise ValueError(f"task {self.name}: sizes must not be empty")
        for value in self.ranges:
            if _RANGE.match(value) is None:
                raise ValueError(f"task {self.name}: range {value!r} is not FIRST-[LAST] or -SUFFIX")
        if isinstance(self.sni, str) and not self.sni:
            raise ValueError(f"task {self.name}: sni must be true, false or a name")

    @property
    def method(self) -> str:
        return METHODS[self.kind]

    @property
    def uses_seeded_objects(self) -> bool:
        return self.kind in (TaskKind.GET, TaskKind.HEAD) and self.key is None


@dataclass(frozen=True)
class Scenario:
    name: str
    tasks: tuple[TaskSpec, ...]

    def __post_init__(self) -> None:
        if not self.tasks or sum(t.weight for t in self.tasks) <= 0:
            raise ValueError(f"scenario {self.name}: needs at least one task with a weight above 0")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"scenario {self.name}: task names must be unique ({', '.join(names)})")

    @property
    def seeded_sizes(self) -> tuple[int, ...]:
        """Object sizes that get/head tasks read and that the harness writes before it starts."""
        return tuple(sorted({s for t in self.tasks if t.uses_seeded_objects for s in t.sizes}))


def _builtin(name: str, *tasks: TaskSpec) -> tuple[str, Scenario]:
    return name, Scenario(name, tasks)


BUILTIN_SCENARIOS: dict[str, Scenario] = dict(
    (
        _builtin(
            "mixed",
            TaskSpec("list", TaskKind.LIST, weight=10, max_keys=100),
            TaskSpec("get", TaskKind.GET, weight=10, sizes=(1024, 16384)),
            TaskSpec("put", TaskKind.PUT, weight=5, sizes=(1024,)),
            TaskSpec("handshake", TaskKind.HANDSHAKE, weight=9, connection=ConnectionMode.NEW),
            TaskSpec("handshake_nosni", TaskKind.HANDSHAKE, weight=1, sni=False, connection=ConnectionMode.NEW),
        ),
        _builtin("handshake", TaskSpec("handshake", TaskKind.HANDSHAKE, connection=ConnectionMode.NEW)),
        _builtin("nosni", TaskSpec("handshake_nosni", TaskKind.HANDSHAKE, sni=False, connection=ConnectionMode.NEW)),
        _builtin("list", TaskSpec("list", TaskKind.LIST, max_keys=100)),
        _builtin("get", TaskSpec("get", TaskKind.GET, sizes=(1024,))),
        _builtin("put", TaskSpec("put", TaskKind.PUT, sizes=(1024,))),
        _builtin("head", TaskSpec("head", TaskKind.HEAD, sizes=(1024,))),
        _builtin("churn", TaskSpec("get_new_conn", TaskKind.GET, sizes=(1024,), connection=ConnectionMode.NEW)),
    )
)


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a TOML file; ValueError says what is wrong."""
    if name_or_path in BUILTIN_SCENARIOS:
        return BUILTIN_SCENARIOS[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(
            f"{name_or_path!r} is neither a built-in scenario ({', '.join(BUILTIN_SCENARIOS)}) nor a TOML file"
        )
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return parse_scenario(document, default_name=path.stem)


def parse_scenario(document: Mapping[str, Any], default_name: str = "custom") -> Scenario:
    unknown = set(document) - {"name", "task", "tasks"}
    if unknown:
        raise ValueError(f"unknown scenario keys: {', '.join(sorted(unknown))} (use [[task]])")
    raw_tasks = document.get("task", document.get("tasks", []))
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise ValueError("a scenario needs [[task]] tables")
    tasks = tuple(parse_task(t) for t in raw_tasks)
    return Scenario(str(document.get("name", default_name)), tasks)


def parse_task(table: Mapping[str, Any]) -> TaskSpec:
    unknown = set(table) - _TASK_KEYS
    if unknown:
        raise ValueError(f"unknown task keys: {', '.join(sorted(unknown))}")
    try:
        kind = TaskKind(table["kind"])
    except (KeyError, ValueError):
        raise ValueError(
            f"task kind {table.get('kind')!r}: use one of {', '.join(k.value for k in TaskKind)}"
        ) from None
    try:
        connection = ConnectionMode(table.get("connection", _default_connection(kind)))
    except ValueError:
        raise ValueError(f"task connection {table.get('connection')!r}: keep-alive or new") from None
    sni = table.get("sni", True)
    if not isinstance(sni, bool | str):
        raise ValueError(f"task sni {sni!r}: true, false or a server name")
    return TaskSpec(
        name=str(table.get("name", kind.value)),
        kind=kind,
        weight=int(table.get("weight", 1)),
        sni=sni,
        connection=connection,
        http=str(table.get("http", "1.1")),
        prefix=str(table.get("prefix", "")),
        max_keys=int(table.get("max_keys", 1000)),
        sizes=tuple(parse_size(s) for s in table.get("sizes", [1024])),
        ranges=tuple(str(r).removeprefix("bytes=") for r in table.get("ranges", [])),
        key=str(table["key"]) if "key" in table else None,
    )


def _default_connection(kind: TaskKind) -> str:
    return ConnectionMode.NEW.value if kind is TaskKind.HANDSHAKE else ConnectionMode.KEEP_ALIVE.value
