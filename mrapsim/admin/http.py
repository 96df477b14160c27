"""Serving an admin app over plain HTTP with hypercorn, on the caller's nursery."""

from __future__ import annotations

import logging

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from starlette.types import ASGIApp

from mrapsim.config import Address, ConfigError


async def serve_admin_app(
    app: ASGIApp, address: Address, stop: trio.Event, *, task_status: trio.TaskStatus[str]
) -> None:
    """Serve `app` on `address` until `stop` is set; `task_status` gets the bound HOST:PORT.
    An address that cannot be bound is a ConfigError naming `admin.address`."""
    http = HypercornConfig()
    http.bind = [str(address)]
    http.accesslog = None
    http.errorlog = logging.getLogger("mrapsim.admin.http")
    http.errorlog.setLevel(logging.WARNING)  # mrapsim announces its own addresses

    class _Status:
        def started(self, binds: list[str] | None = None) -> None:
            task_status.started((binds or [str(address)])[0].removeprefix("http://"))

    try:
        await hypercorn_serve(app, http, shutdown_trigger=stop.wait, task_status=_Status())  # type: ignore[arg-type]
    except* OSError as group:
        raise ConfigError("admin.address", f"cannot listen on {address}: {_first_reason(group)}") from None


def _first_reason(group: BaseExceptionGroup[OSError]) -> str:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return (error.strerror if isinstance(error, OSError) else None) or str(error)
