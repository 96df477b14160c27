"""Toxiproxy's REST API over mrapsim's fault set, so that Toxiproxy's own clients and CLI drive
mrapsim unchanged (docs/faults.md).

A Toxiproxy "proxy" is a mrapsim listener (`s3`, `mrap`) or one of its routes (`mrap:<match>`);
its toxics are the fault set's toxics scoped to it, so `/faults` and this API see and change the
same faults. Proxies cannot be created or deleted here (listeners come from the configuration);
`enabled: false` takes one down and `true` brings it back. The answers follow Toxiproxy's
api.go: the same paths, bodies, status codes and `{"error", "status"}` documents.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from mrapsim import __version__
from mrapsim.config import Config
from mrapsim.faults import TOXIC_ATTRIBUTES, FaultConflict, FaultError, FaultSet, Toxic, proxy_name

Answer = tuple[int, Any]


@dataclass(frozen=True)
class Proxy:
    name: str
    listen: str
    upstream: str
    listener: str
    route: str | None


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def answer(self) -> Answer:
        return self.status, {"error": str(self), "status": self.status}


@dataclass(frozen=True)
class ToxiproxyApi:
    config: Config
    listeners: Mapping[str, str]  # name -> bound HOST:PORT
    faults: FaultSet

    def handle(self, method: str, path: str, document: object) -> Answer:
        """Answer one request: `path` as sent (percent-encoded), `document` the parsed JSON body."""
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        try:
            return self._route(method, parts, document)
        except ApiError as error:
            return error.answer()
        except FaultConflict as error:
            return ApiError(409, f"toxic already exists: {error}").answer()
        except FaultError as error:
            return ApiError(400, f"bad request body: {error}").answer()

    def _route(self, method: str, parts: list[str], document: object) -> Answer:
        match parts, method:
            case ["version"], "GET":
                return 200, {"version": f"mrapsim-{__version__}"}
            case ["reset"], "POST":
                self.faults.disabled.clear()
                self.faults.remove_toxics()
                return 204, None
            case ["proxies"], "GET":
                return 200, {proxy.name: self._proxy_json(proxy) for proxy in self.proxies()}
            case ["proxies"], "POST":
                return 201, self._proxy_json(self._populate_one(document))
            case ["populate"], "POST":
                if not isinstance(document, list):
                    raise ApiError(400, "bad request body: populate takes a JSON list of proxies")
                return 201, {"proxies": [self._proxy_json(self._populate_one(d)) for d in document]}
            case ["proxies", name], "GET":
                return 200, self._proxy_json(self.proxy(name))
            case ["proxies", name], "POST" | "PATCH":
                return 200, self._proxy_json(self._update_proxy(self.proxy(name), document))
            case ["proxies", name], "DELETE":
                self.proxy(name)
                raise ApiError(405, f"mrapsim cannot delete proxy {name}: its listeners come from the configuration")
            case ["proxies", name, "toxics"], "GET":
                return 200, [_toxic_json(t) for t in self._toxics(self.proxy(name))]
            case ["proxies", name, "toxics"], "POST":
                return 200, _toxic_json(self._create_toxic(self.proxy(name), document))
            case ["proxies", name, "toxics", toxic_name], "GET":
                return 200, _toxic_json(self._toxic(self.proxy(name), toxic_name))
            case ["proxies", name, "toxics", toxic_name], "POST" | "PATCH":
                return 200, _toxic_json(self._update_toxic(self.proxy(name), toxic_name, document))
            case ["proxies", name, "toxics", toxic_name], "DELETE":
                self.faults.remove(self._toxic(self.proxy(name), toxic_name).id)
                return 204, None
        raise ApiError(404, f"no route {method} /{'/'.join(parts)}")

    # -- proxies ------------------------------------------------------------------------------

    def proxies(self) -> list[Proxy]:
        found = []
        for listener in self.config.listeners:
            listen = self.listeners.get(listener.name, str(listener.address))
            targets = dict.fromkeys(route.target for route in listener.routes)
            found.append(Proxy(listener.name, listen, ",".join(targets), listener.name, None))
            for route in listener.routes:
                name = proxy_name(listener.name, route.match)
                found.append(Proxy(name, listen, route.target, listener.name, route.match))
        return found

    def proxy(self, name: str) -> Proxy:
        for proxy in self.proxies():
            if proxy.name == name:
                return proxy
        known = ", ".join(p.name for p in self.proxies())
        raise ApiError(404, f"proxy not found: {name!r}; known: {known}")

    def _proxy_json(self, proxy: Proxy) -> dict[str, Any]:
        return {
            "name": proxy.name,
            "listen": proxy.listen,
            "upstream": proxy.upstream,
            "enabled": proxy.name not in self.faults.disabled,
            "toxics": [_toxic_json(t) for t in self._toxics(proxy)],
        }

    def _populate_one(self, document: object) -> Proxy:
        """Toxiproxy creates proxies; mrapsim's exist already: a known name is taken as it is
        (with `enabled` applied), an unknown one is refused with the known names."""
        if not isinstance(document, Mapping) or not isinstance(document.get("name"), str):
            raise ApiError(400, "missing required field: name")
        return self._update_proxy(self.proxy(document["name"]), document)

    def _update_proxy(self, proxy: Proxy, document: object) -> Proxy:
        if not isinstance(document, Mapping):
            raise ApiError(400, "bad request body: must be a JSON object")
        unknown = set(document) - {"name", "listen", "upstream", "enabled"}
        if unknown:
            raise ApiError(400, f"bad request body: unknown field(s) {', '.join(sorted(unknown))}")
        if "enabled" in document:
            if not isinstance(document["enabled"], bool):
                raise ApiError(400, "bad request body: enabled must be true or false")
            self.faults.set_enabled(proxy.name, document["enabled"])
        return proxy

    # -- toxics -------------------------------------------------------------------------------

    def _toxics(self, proxy: Proxy) -> list[Toxic]:
        return [
            f
            for f in self.faults.all()
            if isinstance(f, Toxic) and f.listener == proxy.listener and f.route == proxy.route
        ]

    def _toxic(self, proxy: Proxy, name: str) -> Toxic:
        for toxic in self._toxics(proxy):
            if toxic.name == name:
                return toxic
        raise ApiError(404, f"toxic not found: {name!r} on proxy {proxy.name}")

    def _create_toxic(self, proxy: Proxy, document: object) -> Toxic:
        if not isinstance(document, Mapping):
            raise ApiError(400, "bad request body: must be a JSON object")
        if document.get("type") not in _toxic_types():
            known = ", ".join(_toxic_types())
            raise ApiError(400, f"invalid toxic type: {document.get('type')!r}; known: {known}")
        scoped = {**document, "listener": proxy.listener, "route": proxy.route}
        fault = self.faults.parse(scoped, "toxic")
        fault_id = self.faults.add(fault)
        added = self.faults.get(fault_id)
        assert isinstance(added, Toxic)
        return added

    def _update_toxic(self, proxy: Proxy, name: str, document: object) -> Toxic:
        """toxics.go UpdateToxicJson: the body is laid over the toxic as it is; attributes merge."""
        toxic = self._toxic(proxy, name)
        if not isinstance(document, Mapping):
            raise ApiError(400, "bad request body: must be a JSON object")
        current = _toxic_json(toxic)
        given_attributes = document.get("attributes", {})
        if not isinstance(given_attributes, Mapping):
            raise ApiError(400, "bad request body: attributes must be an object")
        merged = {
            **current,
            **{k: v for k, v in document.items() if k != "attributes"},
            "attributes": {**current["attributes"], **given_attributes},
            "listener": proxy.listener,
            "route": proxy.route,
            "seed": toxic.seed,
        }
        if merged.get("type") != toxic.type:
            raise ApiError(400, "bad request body: a toxic's type cannot change")
        updated = self.faults.parse({k: v for k, v in merged.items() if k != "direction"}, "toxic")
        result = self.faults.update(toxic.id, replace(updated, seed=toxic.seed))
        assert isinstance(result, Toxic)
        return result


def _toxic_types() -> tuple[str, ...]:
    return tuple(TOXIC_ATTRIBUTES)


def _toxic_json(toxic: Toxic) -> dict[str, Any]:
    """A toxic as Toxiproxy writes it (toxics/toxic.go ToxicWrapper)."""
    document = toxic.to_json()
    return {k: document[k] for k in ("name", "type", "stream", "toxicity", "attributes")}
