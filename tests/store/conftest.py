"""`make_store`: every Store implementation, so that contract.py runs against each."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
