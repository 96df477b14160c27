"""TLS faults on a builtin route (docs/faults.md): `handshake_delay` holds the ServerHello,
`certificate` serves a certificate that is expired, for the wrong name or from an untrusted
issuer — per SNI, so that a proxy's own upstream verification (Envoy's `auto_san_validation`,
nginx's `proxy_ssl_verify`) is what gets tested."""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import trio

from mrapsim.config import ListenerConfig
from mrapsim.edge.forward import BuiltinBackend
from mrapsim.faults import FaultSet
from mrapsim.names import name_matches

log = logging.getLogger("mrapsim.edge")

# The certificate a client gets when it sent no SNI: any name shows an expired or untrusted leaf.
NO_SNI_NAME = "localhost"


@dataclass
class FaultyCertificates:
    """Server contexts with one defect each, made once per (defect, name, ALPN) and kept."""

    make: Callable[[str, str, tuple[str, ...]], ssl.SSLContext]  # CertificateSet.faulty_context
    _made: dict[tuple[str, str, tuple[str, ...]], ssl.SSLContext] = field(default_factory=dict)

    def context(self, kind: str, name: str, alpn: tuple[str, ...]) -> ssl.SSLContext:
        key = (kind, name, alpn)
        if key not in self._made:
            self._made[key] = self.make(kind, name, alpn)
        return self._made[key]


async def apply_tls_faults(
    faults: FaultSet,
    listener: ListenerConfig,
    sni: str | None,
    backend: BuiltinBackend,
    certificates: FaultyCertificates | None,
    applied: list[str],
) -> BuiltinBackend:
    """Wait out a handshake delay; the backend to serve with (another certificate, or the same)."""
    for fault in faults.tls_faults_for(listener.name, lambda pattern: sni is not None and name_matches(pattern, sni)):
        if not faults.draw(fault, fault.rate):
            continue
        if fault.type == "handshake_delay":
            await trio.sleep(fault.attributes["delay"] / 1000)
        elif certificates is not None:
            try:
                context = certificates.context(str(fault.attributes["kind"]), sni or NO_SNI_NAME, listener.alpn)
            except Exception:  # the CA's key is not here: say so, serve the good certificate
                log.exception("certificate fault %s cannot be applied", fault.name)
                continue
            backend = replace(backend, ssl_context=functools.partial(_same, context))
        faults.applied(fault)
        applied.append(fault.name)
    return backend


def _same(context: ssl.SSLContext) -> ssl.SSLContext:
    return context
