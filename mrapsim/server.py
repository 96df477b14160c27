"""`mrapsim serve`: the edge listeners, the S3 app and the admin API in one trio process.

Task tree: the root nursery holds the admin server and the connection-handler nursery; the
accept loops live in a nursery of their own so that a shutdown can stop accepting while open
connections drain (readiness answers 503 meanwhile), then cancel what is left.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio
from hypercorn.trio.worker_context import WorkerContext

from mrapsim.admin.app import create_admin_app
from mrapsim.admin.backend import LocalBackend, ServerState
from mrapsim.admin.http import serve_admin_app
from mrapsim.capacity import Admission, FdLimit, accept_loop, raise_fd_limit, tune_gc
from mrapsim.config import Config, ConfigError, ListenerConfig, changed_settings, needs_restart
from mrapsim.edge.connection import ListenerRuntime, handle_connection
from mrapsim.edge.drop import StalledConnections
from mrapsim.edge.forward import BuiltinBackend, hypercorn_config
from mrapsim.edge.http1 import Http1Settings, IdleConnections
from mrapsim.edge.tlsfaults import FaultyCertificates
from mrapsim.faults import FaultError, FaultObserver, FaultSet, Vocabulary
from mrapsim.logs import batch_log_writes, log_listening
from mrapsim.names import format_host_port, name_matches
from mrapsim.replication import Replicator
from mrapsim.s3.app import S3App, create_app
from mrapsim.s3.routing import ROUTES
from mrapsim.store.seed import create_store
from mrapsim.supervisor import WorkerHandoff
from mrapsim.telemetry import Telemetry
from mrapsim.tls.certs import CertificateError, CertificateSet, ensure_certificates, renew_certificates

log = logging.getLogger("mrapsim")

DRAIN_SECONDS = 5.0


def certificate_names(config: Config) -> list[str]:
    """Every name a builtin route answers for: the leaf covers what a SAN can express."""
    names: list[str] = []
    for listener in config.listeners:
        for route in listener.routes:
            if route.is_builtin and route.match not in names:
                names.append(route.match)
    return names


def load_certificates(config: Config, *, renew: bool = False) -> CertificateSet:
    """The certificate set `config` needs, created where absent, or the leaf re-issued with
    `renew` (raises CertificateError)."""
    load = renew_certificates if renew else ensure_certificates
    return load(
        config.certs_dir,
        certificate_names(config),
        config.key_type,
        minted_dir=config.minted_dir,
        max_minted=config.limits.minted_certificates,
    )


def fault_vocabulary(config: Config) -> Vocabulary:
    """The names a fault may refer to: this configuration's listeners and routes, S3's operations."""
    routes = dict.fromkeys(route.match for listener in config.listeners for route in listener.routes)
    return Vocabulary(
        listeners=tuple(listener.name for listener in config.listeners),
        routes=tuple(routes),
        operations=tuple(sorted({route.operation for route in ROUTES})),
    )


def load_faults(config: Config, observer: FaultObserver | None = None) -> FaultSet:
    """The configuration's faults, checked against its listeners and routes: ConfigError if one
    is bad (`mrapsim serve` exits 2, before any worker starts)."""
    faults = FaultSet(vocabulary=fault_vocabulary(config), observer=observer)
    try:
        faults.load(config.faults)
    except FaultError as exc:
        raise ConfigError("faults", str(exc)) from exc
    return faults


def _mint_predicate(listener: ListenerConfig) -> Callable[[str], bool]:
    patterns = [route.match for route in listener.routes if route.is_builtin]
    return lambda name: any(name_matches(pattern, name) for pattern in patterns)


async def serve(
    config: Config,
    certificates: CertificateSet | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
    handoff: WorkerHandoff | None = None,
    reload: Callable[[], Config] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or `shutdown` returns); `reload` re-reads the configuration
    on SIGHUP (the file and the environment, as at start)."""
    certificates = certificates or load_certificates(config)
    fd_limit = raise_fd_limit()
    telemetry = Telemetry(config)
    admission = Admission.for_process(config.limits, telemetry.metrics, fd_limit.soft)
    faults = load_faults(config, telemetry)
    store = await create_store(config)
    state = ServerState()
    replicator = Replicator(
        config.replication,
        store,
        on_backlog=telemetry.metrics.replication_backlog_now,
        on_copied=lambda task: telemetry.metrics.replicated.labels(task.source, task.target).inc(),
    )
    s3_app = create_app(
        config,
        store,
        on_request=telemetry.request_finished,
        faults=faults,
        replicator=replicator,
        draining=lambda: state.draining,
    )
    http1 = Http1Settings()
    idle = IdleConnections()
    http = hypercorn_config(http1)
    worker = WorkerContext(None)
    contexts = server_contexts(config, certificates)
    faulty_certificates = FaultyCertificates(lambda kind, name, alpn: certificates.faulty_context(kind, name, alpn))
    # By name, read per connection: SIGHUP swaps in a listener's new routes.
    runtimes = {
        listener.name: ListenerRuntime(
            config=listener,
            builtin=BuiltinBackend(
                ssl_context=functools.partial(contexts.__getitem__, listener.name),
                app=s3_app,
                http=http,
                http1=http1,
                worker=worker,
                idle=idle,
                handshake_timeout=listener.client_hello_timeout,
            ),
            observer=telemetry,
            faults=faults,
            stalls=StalledConnections(
                listener.max_stalled,
                listener.stall_timeout,
                functools.partial(telemetry.stalled_connection_evicted, listener.name),
            ),
            faulty_certificates=faulty_certificates,
        )
        for listener in config.listeners
    }
    for runtime in runtimes.values():
        telemetry.metrics.watch_stalled(runtime.config.name, runtime.stalls.__len__)
    async with trio.open_nursery() as root:
        live = LiveParts(contexts, runtimes, s3_app, faults, certificates)
        root.start_soon(reload_on_sighup, config, live, reload)
        root.start_soon(replicator.run)  # MRAP replication; stops with the root nursery
        root.start_soon(batch_log_writes)  # until the root nursery stops, then what is pending
        admin_stop = trio.Event()
        admin_app = create_admin_app(LocalBackend(state, telemetry, faults, store))
        state.admin = await root.start(serve_admin_app, admin_app, config.admin, admin_stop)
        async with trio.open_nursery() as handlers:
            async with trio.open_nursery() as acceptors:
                for name in runtimes:
                    fd = handoff.listener_fds.get(name) if handoff else None
                    state.listeners[name] = await acceptors.start(
                        _serve_listener, runtimes, name, handlers, fd, admission
                    )
                tune_gc()
                log_fd_limit(fd_limit, admission.budget)  # once bound: a start-up error stays one line
                state.ready = True
                if handoff:
                    handoff.report_ready(state.admin)
                else:
                    _announce(state, certificates)
                orphaned = await _wait_for_stop(shutdown or wait_for_signal, handoff)
                if orphaned:
                    log.error("the supervisor is gone: this worker stops now, without draining")
                else:
                    log.info("shutting down: no new connections; draining for up to %g s", DRAIN_SECONDS)
                state.draining = True
                acceptors.cancel_scope.cancel()
            idle.close_all()  # idle keep-alive connections close now
            await worker.terminated.set()  # and those on h2
            with trio.move_on_after(0 if orphaned else DRAIN_SECONDS):
                await telemetry.wait_until_idle()
            handlers.cancel_scope.cancel()
        admin_stop.set()
        root.cancel_scope.cancel()  # the SIGHUP watcher and the replicator


def server_contexts(config: Config, certificates: CertificateSet) -> dict[str, ssl.SSLContext]:
    """Each listener's TLS context: its ALPN, certificates minted for its own routes only."""
    return {
        listener.name: certificates.server_context(listener.alpn, _mint_predicate(listener))
        for listener in config.listeners
    }


@dataclass
class LiveParts:
    """What SIGHUP may change in a running server; new connections and requests see the change,
    open ones keep what they started with."""

    contexts: dict[str, ssl.SSLContext]  # by listener name
    runtimes: dict[str, ListenerRuntime]  # by listener name
    s3_app: S3App
    faults: FaultSet
    certificates: CertificateSet


async def reload_on_sighup(config: Config, live: LiveParts, reload: Callable[[], Config] | None) -> None:
    """SIGHUP re-reads the certificate files and, with `reload`, the configuration: what can
    change live does (credentials, MRAPs, faults, listener routes), and the log names what needs
    a restart."""
    current = config
    with trio.open_signal_receiver(signal.SIGHUP) as signals:
        async for _ in signals:
            reload_certificates(current, live)
            if reload is not None:
                current = reload_settings(current, reload, live)


def reload_certificates(config: Config, live: LiveParts) -> None:
    """Re-read the certificate files (cert-manager renewed them, `mrapsim certs --renew` ran):
    new connections get the new contexts, open ones keep theirs. A broken file is logged and the
    old certificates stay."""
    try:
        certificates = load_certificates(config)
    except CertificateError as exc:
        log.error("SIGHUP: certificates not reloaded, the previous ones stay: %s", exc)
        return
    live.certificates = certificates
    live.contexts.update(server_contexts(config, certificates))
    log.info(
        "SIGHUP: certificates reloaded; the leaf is valid until %s",
        certificates.leaf.not_valid_after_utc.isoformat(),
    )


def reload_settings(current: Config, reload: Callable[[], Config], live: LiveParts) -> Config:
    """Apply the live part of a re-read configuration; returns the configuration now in force."""
    try:
        new = reload()
        new_faults = load_faults(new)  # checked against the new listeners, routes and operations
    except ConfigError as exc:
        log.error("SIGHUP: configuration not reloaded, the running one stays: %s", exc)
        return current
    changed = changed_settings(current, new)
    applied_now = [setting for setting in changed if not needs_restart(setting)]
    later = [setting for setting in changed if needs_restart(setting)]
    rerouted = {setting.split(".")[1] for setting in applied_now if setting.startswith("listeners.")}
    listeners = tuple(new.listener(old.name) if old.name in rerouted else old for old in current.listeners)
    raw = dict(current.raw)
    raw.update({key: new.raw[key] for key in applied_now if key in new.raw})
    if rerouted:
        raw["listeners"] = {
            name: new.raw["listeners"][name] if name in rerouted else table
            for name, table in current.raw["listeners"].items()
        }
    applied = dataclasses.replace(
        current, auth=new.auth, mraps=new.mraps, faults=new.faults, listeners=listeners, raw=raw
    )
    live.s3_app.reconfigure(applied)
    if "faults" in applied_now:
        live.faults.replace(new_faults.all())
    for name in rerouted:
        live.runtimes[name] = dataclasses.replace(live.runtimes[name], config=applied.listener(name))
    if rerouted:  # a new builtin route may need a minted leaf: the SNI callback asks the routes
        live.contexts.update(server_contexts(applied, live.certificates))
    log.info(
        "SIGHUP: configuration reloaded; applied: %s; needs a restart: %s",
        ", ".join(applied_now) or "nothing changed",
        ", ".join(later) or "nothing",
        extra={"fields": {"event": "reloaded", "applied": applied_now, "restart_needed": later}},
    )
    return applied


async def _wait_for_stop(shutdown: Callable[[], Awaitable[None]], handoff: WorkerHandoff | None) -> bool:
    """Wait for `shutdown` (SIGTERM/SIGINT) or for the supervisor's death; True for the latter."""
    orphaned = False
    async with trio.open_nursery() as nursery:

        async def stop_on_signal() -> None:
            await shutdown()
            nursery.cancel_scope.cancel()

        async def stop_on_orphan() -> None:
            nonlocal orphaned
            if handoff is None:
                return
            await handoff.wait_for_parent_death()
            orphaned = True
            nursery.cancel_scope.cancel()

        nursery.start_soon(stop_on_signal)
        nursery.start_soon(stop_on_orphan)
    return orphaned


async def wait_for_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s", signal.Signals(signum).name)
            return


def _announce(state: ServerState, certificates: CertificateSet) -> None:
    log_listening(log, state.listeners, state.admin)
    log.info(
        "clients trust %s (aws --ca-bundle, AWS_CA_BUNDLE, curl --cacert); what each connection carried: "
        "curl http://%s/connections",
        certificates.paths.ca_certificate,
        state.admin,
        extra={"fields": {"event": "hint", "ca_bundle": str(certificates.paths.ca_certificate)}},
    )


async def _serve_listener(
    runtimes: dict[str, ListenerRuntime],
    name: str,
    handlers: trio.Nursery,
    inherited_fd: int | None,
    admission: Admission,
    *,
    task_status: trio.TaskStatus[str],
) -> None:
    """Accept on the listener's address, or on a socket inherited from a supervisor."""
    runtime = runtimes[name]
    address = runtime.config.address
    if inherited_fd is not None:
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(socket.socket(fileno=inherited_fd)))]
    else:
        try:
            listeners = await trio.open_tcp_listeners(address.port, host=address.host)
        except OSError as exc:
            raise ConfigError(
                f"listeners.{runtime.config.name}.address", f"cannot listen on {address}: {exc.strerror or exc}"
            ) from exc
    host, port, *_ = listeners[0].socket.getsockname()
    task_status.started(format_host_port(host, port))

    async def handler(stream: trio.SocketStream) -> None:
        await handle_connection(stream, runtime=runtimes[name])  # the runtime of the moment

    async with trio.open_nursery() as loops:
        for listener in listeners:
            loops.start_soon(accept_loop, listener, name, handler, handlers, admission)


def log_fd_limit(fd_limit: FdLimit, budget: int) -> None:
    raised = f"raised from {fd_limit.raised_from} to {fd_limit.soft}" if fd_limit.raised_from else f"{fd_limit.soft}"
    log.info(
        "file descriptors: soft limit %s (hard %s); up to %d connections at once",
        raised,
        fd_limit.hard,
        budget,
        extra={"fields": {"event": "fd_limit", "soft": fd_limit.soft, "hard": fd_limit.hard, "budget": budget}},
    )
