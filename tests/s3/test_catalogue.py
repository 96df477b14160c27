"""docs/s3-operations.md is what the generator prints, and what it claims is what the dispatch
table does: every SDK operation resolves to its own route, or to none (501)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from mrapsim.s3.catalogue import (
    NOT_IMPLEMENTED,
    OTHER_ENDPOINT,
    Operation,
    answered_as,
    render,
    sdk_operations,
    status,
)
from mrapsim.s3.request import Level
from mrapsim.s3.routing import resolve_route

DOC = Path(__file__).resolve().parents[2] / "docs" / "s3-operations.md"
OPERATIONS = sdk_operations()


def test_the_document_is_the_generated_table() -> None:
    assert DOC.read_text() == render(OPERATIONS), "regenerate: python -m mrapsim.s3.catalogue > docs/s3-operations.md"


def _request_of(operation: Operation) -> tuple[Level, dict[str, str], dict[str, str]]:
    """The level, query and required headers of a request for `operation`, from the SDK model."""
    path, _, query_text = operation.uri.partition("?")
    level = Level.SERVICE if path == "/" else Level.BUCKET if "{Key+}" not in path else Level.OBJECT
    query = {}
    for part in filter(None, query_text.split("&")):
        name, _, value = part.partition("=")
        query[name] = value
    session: Any = importlib.import_module("botocore.session").get_session()
    shape = session.get_service_model("s3").operation_model(operation.name).input_shape
    headers = {}
    for name in getattr(shape, "required_members", []) if shape is not None else []:
        member = shape.members[name]
        if member.serialization.get("location") == "header":
            headers[member.serialization["name"].lower()] = "x"
        if member.serialization.get("location") == "querystring":
            query[member.serialization["name"]] = "1"
    return level, query, headers


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.name)
def test_each_operation_is_routed_as_the_table_says(operation: Operation) -> None:
    level, query, headers = _request_of(operation)
    route = resolve_route(operation.method, level, query, headers)
    if status(operation.name) == OTHER_ENDPOINT:
        assert route is None or route.operation != operation.name
    elif status(operation.name) == NOT_IMPLEMENTED:
        assert route is None or route.handler is None, f"{operation.name} is answered by {route.operation}"
    else:
        assert route is not None and route.operation == answered_as(operation.name)
