"""`mrapsim serve --workers N`: N worker processes behind one set of listening sockets.

The supervisor binds every listener once and hands the sockets to N `mrapsim serve` worker
processes, which all accept on them (the kernel spreads the connections). Workers share objects
through the sqlite store, so they need `store.kind = "sqlite"`. The supervisor serves the admin
API for the whole server over its workers' own (`admin/workers.py`). A worker that dies takes the
server down (exit 1): a half-served test run is worse than a failed one. SIGTERM drains every worker.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from mrapsim.admin.app import create_admin_app
from mrapsim.admin.http import serve_admin_app
from mrapsim.admin.workers import WorkersBackend
from mrapsim.config import Address, Config, ConfigError, dump_toml
from mrapsim.logs import log_listening
from mrapsim.names import format_host_port
from mrapsim.store.seed import create_store

log = logging.getLogger("mrapsim")

ENV_LISTEN_FDS = "MRAPSIM_WORKER_LISTEN_FDS"  # name=fd,name=fd (internal: supervisor → worker)
ENV_READY_FD = "MRAPSIM_WORKER_READY_FD"
ENV_PARENT_FD = "MRAPSIM_WORKER_PARENT_FD"  # read end of a pipe only the supervisor writes to
WORKER_START_SECONDS = 30.0
WORKER_STOP_SECONDS = 15.0


@dataclass(frozen=True)
class WorkerHandoff:
    """What a worker gets from its supervisor: listening sockets, and where to say it is ready."""

    listener_fds: Mapping[str, int]
    ready_fd: int
    parent_fd: int | None = None

    async def wait_for_parent_death(self) -> None:
        """Return when the supervisor is gone, however it went (kill -9 included): the write end
        of the pipe is held by the supervisor alone, so the read end sees EOF when it dies. A
        worker must not outlive it, serving on sockets that a restarted server cannot bind."""
        if self.parent_fd is None:
            await trio.sleep_forever()
            return
        async with trio.lowlevel.FdStream(self.parent_fd) as stream:
            while await stream.receive_some(64):
                pass

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> WorkerHandoff | None:
        if ENV_LISTEN_FDS not in environ:
            return None
        fds = dict(item.split("=", 1) for item in environ[ENV_LISTEN_FDS].split(",") if item)
        parent = environ.get(ENV_PARENT_FD)
        return cls(
            {name: int(fd) for name, fd in fds.items()},
            int(environ[ENV_READY_FD]),
            int(parent) if parent else None,
        )

    def report_ready(self, admin: str) -> None:
        os.write(self.ready_fd, json.dumps({"admin": admin}).encode() + b"\n")
        os.close(self.ready_fd)


def bind_listener(address: Address, name: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address.host, address.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"listeners.{name}.address", f"cannot listen on {address}: {exc.strerror or exc}") from exc
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


@dataclass
class Worker:
    index: int
    process: trio.Process
    admin: str | None = None
    ready: trio.Event = field(default_factory=trio.Event)


@dataclass
class Supervision:
    config: Config
    listeners: dict[str, str]
    workers: list[Worker] = field(default_factory=list)
    stopping: bool = False

    @property
    def ready(self) -> bool:
        return not self.stopping and all(w.admin is not None for w in self.workers)

    @property
    def worker_count(self) -> int:
        return len(self.workers)

    def worker_admins(self) -> list[str]:
        return [w.admin for w in self.workers if w.admin is not None]


async def supervise(config: Config, reload: Callable[[], Config] | None = None) -> int:
    """Run `config.workers` workers until SIGTERM/SIGINT (exit 0) or until one dies (exit 1).
    On SIGHUP, `reload` re-reads the configuration for the workers, which each apply it."""
    await _open_store_once(config)
    sockets = {listener.name: bind_listener(listener.address, listener.name) for listener in config.listeners}
    try:
        with tempfile.TemporaryDirectory(prefix="mrapsim-") as scratch:
            config_file = Path(scratch) / "effective.toml"
            config_file.write_text(dump_toml(config, show_secrets=True))
            config_file.chmod(0o600)
            return await _supervise(config, sockets, config_file, reload)
    finally:
        for sock in sockets.values():
            sock.close()


async def _open_store_once(config: Config) -> None:
    """Open (and seed) the shared store here first: a bad `store.path` is a one-line start-up
    error, and N workers starting at once find the seeding done."""
    (await create_store(config)).close()


async def _supervise(
    config: Config, sockets: Mapping[str, socket.socket], config_file: Path, reload: Callable[[], Config] | None
) -> int:
    listeners = {name: _address_of(sock) for name, sock in sockets.items()}
    supervision = Supervision(config, listeners)
    async with trio.open_nursery() as nursery:
        admin_stop = trio.Event()
        admin_app = create_admin_app(WorkersBackend(supervision))
        admin = await nursery.start(serve_admin_app, admin_app, config.admin, admin_stop)
        for index in range(config.workers):
            await nursery.start(_run_worker, supervision, index, config_file, sockets)
        with trio.move_on_after(WORKER_START_SECONDS):
            for worker in supervision.workers:
                await worker.ready.wait()
        if supervision.ready:
            log_listening(log, listeners, admin, workers=config.workers)
            failed = await _wait_for_signal_or_death(supervision, partial(_rewrite_config, config_file, reload))
        else:
            log.error("a worker did not start (its own log lines above say why); stopping the server")
            failed = True
        supervision.stopping = True
        await _stop_workers(supervision)
        admin_stop.set()
    return 1 if failed else 0


def _address_of(sock: socket.socket) -> str:
    host, port, *_ = sock.getsockname()
    return format_host_port(host, port)


async def _run_worker(
    supervision: Supervision,
    index: int,
    config_file: Path,
    sockets: Mapping[str, socket.socket],
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    ready_read, ready_write = os.pipe()
    life_read, life_write = os.pipe()  # the supervisor keeps life_write open until it exits
    env = {k: v for k, v in os.environ.items() if not k.startswith("MRAPSIM_")}
    env[ENV_LISTEN_FDS] = ",".join(f"{name}={sock.fileno()}" for name, sock in sockets.items())
    env[ENV_READY_FD] = str(ready_write)
    env[ENV_PARENT_FD] = str(life_read)
    command = [
        sys.executable,
        "-m",
        "mrapsim.cli",
        "serve",
        "--config",
        str(config_file),
        "--workers",
        "1",
        "--admin",
        "127.0.0.1:0",
    ]
    try:
        process = await trio.lowlevel.open_process(
            command, env=env, pass_fds=(ready_write, life_read, *(s.fileno() for s in sockets.values()))
        )
    except BaseException:
        os.close(life_write)
        raise
    finally:
        os.close(ready_write)
        os.close(life_read)
    worker = Worker(index, process)
    supervision.workers.append(worker)
    task_status.started()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_ready, worker, ready_read)
            await process.wait()
            nursery.cancel_scope.cancel()
    finally:
        os.close(life_write)
    worker.ready.set()  # it is not coming: nobody waits out the start-up deadline for it
    if not supervision.stopping:
        log.error("worker %d (pid %d) exited with code %s; stopping the server", index, process.pid, process.returncode)


async def _read_ready(worker: Worker, fd: int) -> None:
    stream = trio.lowlevel.FdStream(fd)
    data = b""
    async with stream:
        while chunk := await stream.receive_some(4096):
            data += chunk
    if data:
        worker.admin = json.loads(data)["admin"]
    worker.ready.set()  # with no admin address: the worker died before it was ready


def _rewrite_config(config_file: Path, reload: Callable[[], Config] | None) -> None:
    """Before the workers re-read their file on SIGHUP: write what the supervisor re-read."""
    if reload is None:
        return
    try:
        config_file.write_text(dump_toml(reload(), show_secrets=True))
    except ConfigError as exc:
        log.error("SIGHUP: configuration not reloaded, the running one stays: %s", exc)


async def _wait_for_signal_or_death(supervision: Supervision, on_sighup: Callable[[], None]) -> bool:
    """Returns True when a worker died, False on SIGTERM/SIGINT."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            died = False

            async def on_signal() -> None:
                async for signum in signals:
                    if signum == signal.SIGHUP:  # every worker reloads certificates and configuration
                        on_sighup()
                        for worker in supervision.workers:
                            worker.process.send_signal(signal.SIGHUP)
                        continue
                    log.info("received %s: stopping %d workers", signal.Signals(signum).name, len(supervision.workers))
                    nursery.cancel_scope.cancel()
                    return

            async def on_death(worker: Worker) -> None:
                nonlocal died
                await worker.process.wait()
                died = True
                nursery.cancel_scope.cancel()

            nursery.start_soon(on_signal)
            for worker in supervision.workers:
                nursery.start_soon(on_death, worker)
    return died


async def _stop_workers(supervision: Supervision) -> None:
    for worker in supervision.workers:
        if worker.process.returncode is None:
            worker.process.send_signal(signal.SIGTERM)
    with trio.move_on_after(WORKER_STOP_SECONDS):
        for worker in supervision.workers:
            await worker.process.wait()
    for worker in supervision.workers:
        if worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()
