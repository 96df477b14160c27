"""`mrapsim serve`: the edge listeners, the S3 app and the admin API in one trio process.

Task tree: the root nursery holds the admin server and the connection-handler nursery; the
accept loops live in a nursery of their own so that a shutdown can stop accepting while open
connections drain (readiness answers 503 meanwhile), then cancel what is left.
"""

from __future__ import annotations

import functools
import logging
import random
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable

import trio
from hypercorn.trio.worker_context import WorkerContext

from mrapsim.admin.app import create_admin_app
from mrapsim.admin.backend import LocalBackend, ServerState
from mrapsim.admin.http import serve_admin_app
from mrapsim.config import Config, ConfigError, ListenerConfig
from mrapsim.edge.connection import ListenerRuntime, handle_connection
from mrapsim.edge.drop import StalledConnections
from mrapsim.edge.forward import BuiltinBackend, hypercorn_config
from mrapsim.faults import FaultError, FaultSet
from mrapsim.logs import log_listening
from mrapsim.names import format_host_port, name_matches
from mrapsim.replication import Replicator
from mrapsim.s3.app import create_app
from mrapsim.store.seed import create_store
from mrapsim.supervisor import WorkerHandoff
from mrapsim.telemetry import Telemetry
from mrapsim.tls.certs import CertificateError, CertificateSet, ensure_certificates

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


def _mint_predicate(listener: ListenerConfig) -> Callable[[str], bool]:
    patterns = [route.match for route in listener.routes if route.is_builtin]
    return lambda name: any(name_matches(pattern, name) for pattern in patterns)


async def serve(
    config: Config,
    certificates: CertificateSet | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
    handoff: WorkerHandoff | None = None,
) -> None:
    certificates = certificates or ensure_certificates(
        config.certs_dir, certificate_names(config), config.key_type, minted_dir=config.minted_dir
    )
    telemetry = Telemetry(config)
    try:
        faults = FaultSet.from_documents(config.faults)
    except FaultError as exc:
        raise ConfigError("faults", str(exc)) from exc
    store = await create_store(config)
    replicator = Replicator(
        config.replication,
        store,
        on_backlog=telemetry.metrics.replication_backlog_now,
        on_copied=lambda task: telemetry.metrics.replicated.labels(task.source, task.target).inc(),
    )
    s3_app = create_app(config, store, on_request=telemetry.request_finished, faults=faults, replicator=replicator)
    http = hypercorn_config()
    worker = WorkerContext(None)
    state = ServerState()
    contexts = server_contexts(config, certificates)
    runtimes = [
        ListenerRuntime(
            config=listener,
            builtin=BuiltinBackend(
                ssl_context=functools.partial(contexts.__getitem__, listener.name),
                app=s3_app,
                http=http,
                worker=worker,
                handshake_timeout=listener.client_hello_timeout,
            ),
            observer=telemetry,
            faults=faults,
            rng=random.Random(),
            stalls=StalledConnections(
                listener.max_stalled,
                listener.stall_timeout,
                functools.partial(telemetry.stalled_connection_evicted, listener.name),
            ),
        )
        for listener in config.listeners
    ]
    for runtime in runtimes:
        telemetry.metrics.watch_stalled(runtime.config.name, runtime.stalls.__len__)
    async with trio.open_nursery() as root:
        root.start_soon(reload_certificates_on_sighup, config, contexts)
        root.start_soon(replicator.run)  # MRAP replication; stops with the root nursery
        admin_stop = trio.Event()
        admin_app = create_admin_app(LocalBackend(state, telemetry, faults, store))
        state.admin = await root.start(serve_admin_app, admin_app, config.admin, admin_stop)
        async with trio.open_nursery() as handlers:
            async with trio.open_nursery() as acceptors:
                for runtime in runtimes:
                    fd = handoff.listener_fds.get(runtime.config.name) if handoff else None
                    state.listeners[runtime.config.name] = await acceptors.start(_serve_listener, runtime, handlers, fd)
                state.ready = True
                if handoff:
                    handoff.report_ready(state.admin)
                else:
                    _announce(state, certificates)
                await (shutdown or wait_for_signal)()
                log.info("shutting down: no new connections; draining for up to %g s", DRAIN_SECONDS)
                state.draining = True
                acceptors.cancel_scope.cancel()
            await worker.terminated.set()  # idle keep-alive connections close now
            with trio.move_on_after(DRAIN_SECONDS):
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


async def reload_certificates_on_sighup(config: Config, contexts: dict[str, ssl.SSLContext]) -> None:
    """SIGHUP re-reads the certificate files (cert-manager renewed them, `mrapsim certs --renew`
    ran): new connections get the new contexts, open ones keep theirs. A broken file is logged
    and the old certificates stay."""
    with trio.open_signal_receiver(signal.SIGHUP) as signals:
        async for _ in signals:
            try:
                certificates = ensure_certificates(
                    config.certs_dir, certificate_names(config), config.key_type, minted_dir=config.minted_dir
                )
            except CertificateError as exc:
                log.error("SIGHUP: certificates not reloaded, the previous ones stay: %s", exc)
                continue
            contexts.update(server_contexts(config, certificates))
            log.info(
                "SIGHUP: certificates reloaded; the leaf is valid until %s",
                certificates.leaf.not_valid_after_utc.isoformat(),
            )


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
    runtime: ListenerRuntime, handlers: trio.Nursery, inherited_fd: int | None, *, task_status: trio.TaskStatus[str]
) -> None:
    """Accept on the listener's address, or on a socket inherited from a supervisor."""
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
    handler = functools.partial(handle_connection, runtime=runtime)
    await trio.serve_listeners(handler, listeners, handler_nursery=handlers)
