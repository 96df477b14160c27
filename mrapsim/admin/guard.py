"""Who may use the admin API: a pure ASGI middleware in front of the route table.

The admin API injects faults and lists every connection, so it must not be usable by whatever
can reach it by accident — above all a web page in the user's browser:

- `Host` must be a loopback name, an IP literal, the admin address's own host or one of
  `[admin] allowed_hosts`: a page on a DNS name the attacker controls, re-pointed at 127.0.0.1
  (DNS rebinding), sends its own name (421). A request with the token needs no such check.
- A call that changes something carries the token when one is configured, must not come from a
  foreign `Origin` (403, no CSRF), and its body, if it has one, must be `application/json` (415),
  which a browser cannot send cross-origin without asking (a CORS preflight, never answered).
- With the admin bound beyond loopback every call needs the token (the start-up refuses such an
  address without one, config.py), except `/healthz` and `/readyz`, which kubelet probes call
  and which tell nothing, and `/`, the admin page, which is static: its data come from
  `/events`, which the page asks for with the token (admin/page.py).

The token is compared in constant time; the answer never says which part was wrong beyond the
status code and one short sentence.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from mrapsim.config import Config, is_loopback_host
from mrapsim.names import is_ip_literal, normalize_name, split_host_port

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})  # probes, and the page without data (admin/page.py)
JSON_TYPES = frozenset({"application/json"})


@dataclass(frozen=True)
class AdminPolicy:
    token: str | None
    loopback: bool  # the admin address is a loopback one
    bind_host: str
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> AdminPolicy:
        return cls(
            token=config.admin_token,
            loopback=is_loopback_host(config.admin.host),
            bind_host=normalize_name(config.admin.host),
            allowed_hosts=config.admin_allowed_hosts,
        )


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    challenge: bool = False  # 401: say how to authenticate


def check(policy: AdminPolicy, method: str, path: str, headers: dict[str, str]) -> Refusal | None:
    """None when the request may go on; otherwise why not. `headers` are lower-case names with
    their (first) values."""
    mutating = method not in SAFE_METHODS
    authorized = policy.token is not None and _token_matches(policy.token, headers.get("authorization", ""))
    if not authorized and not host_allowed(policy, headers.get("host", "")):
        return Refusal(421, "this admin API does not answer for that Host")
    if policy.token is not None and not authorized and (mutating or not policy.loopback) and path not in OPEN_PATHS:
        return Refusal(401, "a bearer token is required (Authorization: Bearer <[admin] token>)", challenge=True)
    if mutating:
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, headers.get("host", "")):
            return Refusal(403, "a cross-origin request may not change anything here")
        if _has_body(headers) and _media_type(headers.get("content-type", "")) not in JSON_TYPES:
            return Refusal(415, "the body must be Content-Type: application/json")
    return None


def host_allowed(policy: AdminPolicy, host_header: str) -> bool:
    try:
        host, _ = split_host_port(host_header.strip(), 0)
    except ValueError:
        return False
    if not host:
        return False
    host = normalize_name(host)
    if is_ip_literal(host) or is_loopback_host(host):
        return True
    return host == policy.bind_host or host in policy.allowed_hosts


def _same_origin(origin: str, host_header: str) -> bool:
    return origin.strip().lower() == f"http://{host_header.strip().lower()}"


def _has_body(headers: dict[str, str]) -> bool:
    """A call without a body (Toxiproxy's clients POST /reset so) has no media type to check;
    the Origin check still keeps a browser's cross-origin form away."""
    length = headers.get("content-length", "").strip()
    return "transfer-encoding" in headers or (length not in ("", "0"))


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _token_matches(token: str, authorization: str) -> bool:
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


class AdminGuard:
    """The ASGI middleware applying `check` to every HTTP request."""

    def __init__(self, app: ASGIApp, policy: AdminPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        refusal = check(self.policy, scope["method"], scope["path"], headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": refusal.message}).encode()
        response_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if refusal.challenge:
            response_headers.append((b"www-authenticate", b'Bearer realm="mrapsim admin"'))
        await send({"type": "http.response.start", "status": refusal.status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
