"""`make_store`: every Store implementation, so that contract.py runs against each; and
`async def` tests, run under trio (the Store is async), hypothesis tests included."""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from mrapsim.store import MemoryStore, Store
from mrapsim.store.sqlite import SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """A factory of empty stores of one kind (sqlite: each in a directory of its own)."""
    opened: list[SqliteStore] = []
    numbers = itertools.count()

    def make() -> Store:
        if request.param == "memory":
            return MemoryStore()
        store = SqliteStore.open(tmp_path / f"store{next(numbers)}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def _run_in_trio(test: Callable[..., Any]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        trio.run(functools.partial(test, *args, **kwargs))

    return run


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an `async def` test in a fresh trio run (what pytest-trio does, without the plugin).
    A hypothesis test is a synchronous wrapper: its inner test runs once per example instead."""
    hypothesis = getattr(pyfuncitem.obj, "hypothesis", None)
    if hypothesis is not None and inspect.iscoroutinefunction(hypothesis.inner_test):
        hypothesis.inner_test = _run_in_trio(hypothesis.inner_test)
        return None
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    _run_in_trio(pyfuncitem.obj)(**arguments)
    return True
