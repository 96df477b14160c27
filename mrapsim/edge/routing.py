"""Which route a ClientHello's server name selects on a listener."""

from __future__ import annotations

from mrapsim.config import ListenerConfig, Route
from mrapsim.names import name_matches


def match_route(listener: ListenerConfig, server_name: str) -> Route | None:
    """The first route whose pattern matches `server_name`, in configuration order."""
    for route in listener.routes:
        if name_matches(route.match, server_name):
            return route
    return None


def default_route(listener: ListenerConfig) -> Route | None:
    """Where an optional-SNI listener sends a hello without SNI or with an unknown one."""
    return listener.routes[0] if listener.routes else None


def route_label(route: Route) -> str:
    return f"forward:{route.match}"
