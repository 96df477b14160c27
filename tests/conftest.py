from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mrapsim_process import MrapsimProcess, start_mrapsim


@pytest.fixture(scope="module")
def mrapsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MrapsimProcess]:
    """One `mrapsim serve` on the embedded defaults (loopback, OS-chosen ports) per test module."""
    server = start_mrapsim(tmp_path_factory.mktemp("mrapsim"))
    yield server
    server.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[object]:
    """Start a server with a configuration of the test's own; stopped at the end of the test."""
    started: list[MrapsimProcess] = []

    def start(config: str = "", extra_args: tuple[str, ...] = ()) -> MrapsimProcess:
        where = tmp_path / f"server{len(started)}"
        where.mkdir()
        server = start_mrapsim(where, config, extra_args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def start_server_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MrapsimProcess]:
    """A module's own server with short timeouts, for tests that hammer it with bad input."""
    server = start_mrapsim(
        tmp_path_factory.mktemp("mrapsim-once"),
        '[listeners.mrap]\nclient_hello_timeout = "1s"\nstall_timeout = "1s"\n',
    )
    yield server
    server.stop()
