"""The `/connections` and `/requests` queries: parsed once from the request's parameters, and
written back as parameters when the supervisor passes the same query on to its workers."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from mrapsim.edge.records import ConnectionState, RecordQuery
from mrapsim.outcomes import Outcome
from mrapsim.s3.records import REQUESTS_KEPT, RequestQuery

MAX_CONNECTIONS_LIMIT = 10_000
QUERY_PARAMETERS = ("limit", "outcome", "sni", "listener", "since", "state")
ALL_STATES = "all"


class BadQuery(ValueError):
    pass


def parse_record_query(params: dict[str, str]) -> RecordQuery:
    """`limit`, `outcome`, `sni`, `listener`, `since` (ISO 8601 or seconds since the epoch),
    `state` (`open`, `closed` or `all`, the default)."""
    _refuse_unknown(params, QUERY_PARAMETERS)
    limit = _limit(params, MAX_CONNECTIONS_LIMIT)
    outcome = None
    if "outcome" in params:
        try:
            outcome = Outcome(params["outcome"])
        except ValueError:
            raise BadQuery(f"outcome must be one of {', '.join(o.value for o in Outcome)}") from None
    return RecordQuery(
        limit=limit,
        outcome=outcome,
        sni=params.get("sni"),
        listener=params.get("listener"),
        since=parse_since(params["since"]) if "since" in params else None,
        state=parse_state(params.get("state", ALL_STATES)),
    )


def parse_state(text: str) -> ConnectionState | None:
    if text == ALL_STATES:
        return None
    try:
        return ConnectionState(text)
    except ValueError:
        raise BadQuery(f"state must be one of {', '.join([*ConnectionState, ALL_STATES])}") from None


def record_query_params(query: RecordQuery) -> dict[str, str]:
    """The parameters that `parse_record_query` reads back as `query`."""
    params = {"limit": str(query.limit)}
    if query.outcome is not None:
        params["outcome"] = query.outcome.value
    if query.sni is not None:
        params["sni"] = query.sni
    if query.listener is not None:
        params["listener"] = query.listener
    if query.since is not None:
        params["since"] = repr(query.since)  # repr: the float reads back exactly
    if query.state is not None:
        params["state"] = query.state.value
    return params


def parse_since(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery("since must be ISO 8601 (2026-11-26T12:00:00Z) or seconds since the epoch") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


REQUEST_PARAMETERS = ("limit", "connection")


def parse_request_query(params: dict[str, str]) -> RequestQuery:
    """`GET /requests`: `limit` (100 by default, at most REQUESTS_KEPT, all a process keeps) and
    `connection` (a connection id; every connection's by default)."""
    _refuse_unknown(params, REQUEST_PARAMETERS)
    return RequestQuery(limit=_limit(params, REQUESTS_KEPT), connection_id=params.get("connection") or None)


def _refuse_unknown(params: dict[str, str], known: Iterable[str]) -> None:
    unknown = set(params) - set(known)
    if unknown:
        raise BadQuery(f"unknown parameter(s) {', '.join(sorted(unknown))}")


def _limit(params: dict[str, str], maximum: int) -> int:
    """`limit`: 100 by default, 1 to `maximum`."""
    if "limit" not in params:
        return 100
    if not params["limit"].isdigit() or not 1 <= int(params["limit"]) <= maximum:
        raise BadQuery(f"limit must be an integer from 1 to {maximum}")
    return int(params["limit"])


def request_query_params(query: RequestQuery) -> dict[str, str]:
    """The parameters that `parse_request_query` reads back as `query`."""
    params = {"limit": str(query.limit)}
    if query.connection_id is not None:
        params["connection"] = query.connection_id
    return params
