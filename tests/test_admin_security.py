"""Who may use the admin API (issue 16, must-show 4): the guard's rules, the start-up refusal of
an admin API beyond loopback without a token, and a live server — one process and the supervisor
of two workers — refusing what a hostile web page or a stranger would send."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mrapsim.admin.guard import AdminPolicy, check
from mrapsim.config import ConfigError, load_config
from tests.mrapsim_process import MrapsimProcess, start_mrapsim
from tests.test_cli import assert_one_line_error, mrapsim

TOKEN = "t0ken-for-the-tests-0123456789"
LATENCY = {"type": "latency", "listener": "s3", "direction": "downstream", "attributes": {"latency_ms": 1}}

LOOPBACK = AdminPolicy(token=None, loopback=True, bind_host="127.0.0.1")
LOOPBACK_TOKEN = AdminPolicy(token=TOKEN, loopback=True, bind_host="127.0.0.1")
WIDE_TOKEN = AdminPolicy(token=TOKEN, loopback=False, bind_host="0.0.0.0", allowed_hosts=("mrapsim.test.svc",))
BEARER = {"authorization": f"Bearer {TOKEN}"}
JSON = {"content-type": "application/json"}


def status(policy: AdminPolicy, method: str, path: str, **headers: str) -> int:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    found = check(policy, method, path, {"host": "127.0.0.1:9911", **named})
    return 200 if found is None else found.status


def test_reads_on_loopback_need_no_token_and_changes_need_json_from_no_foreign_origin() -> None:
    assert status(LOOPBACK, "GET", "/connections") == 200
    assert status(LOOPBACK, "POST", "/faults", content_type="application/json") == 200
    assert status(LOOPBACK, "POST", "/faults", content_type="application/json; charset=utf-8") == 200
    assert status(LOOPBACK, "POST", "/faults", content_type="text/plain", content_length="2") == 415
    form = "application/x-www-form-urlencoded"
    assert status(LOOPBACK, "POST", "/faults", content_type=form, transfer_encoding="chunked") == 415
    assert status(LOOPBACK, "PUT", "/faults", content_length="2") == 415
    assert status(LOOPBACK, "POST", "/reset") == 200  # no body, nothing to interpret (Toxiproxy's clients)
    assert status(LOOPBACK, "POST", "/reset", content_length="0", origin="https://evil.example") == 403
    assert status(LOOPBACK, "POST", "/faults", content_type="application/json", origin="https://evil.example") == 403
    assert status(LOOPBACK, "DELETE", "/faults/f1", origin="null") == 403
    assert status(LOOPBACK, "POST", "/faults", content_type="application/json", origin="http://127.0.0.1:9911") == 200


def test_dns_rebinding_is_refused_by_host() -> None:
    for host in ("evil.example", "evil.example:9911", "", "localhost.evil.example"):
        assert check(LOOPBACK, "GET", "/connections", {"host": host}) is not None
    for host in ("127.0.0.1:9911", "localhost:9911", "[::1]:9911", "10.1.2.3:9911", "LOCALHOST."):
        assert check(LOOPBACK, "GET", "/connections", {"host": host}) is None
    assert check(WIDE_TOKEN, "GET", "/healthz", {"host": "mrapsim.test.svc:9911"}) is None
    refused = check(LOOPBACK, "GET", "/connections", {"host": "evil.example"})
    assert refused is not None and refused.status == 421


def test_a_configured_token_guards_every_change_and_beyond_loopback_everything() -> None:
    assert status(LOOPBACK_TOKEN, "GET", "/connections") == 200
    assert status(LOOPBACK_TOKEN, "POST", "/faults", content_type="application/json") == 401
    wrong = {"authorization": "Bearer nope"}
    assert status(LOOPBACK_TOKEN, "POST", "/faults", content_type="application/json", **wrong) == 401
    assert status(LOOPBACK_TOKEN, "POST", "/faults", content_type="application/json", **BEARER) == 200
    assert status(WIDE_TOKEN, "GET", "/connections") == 401
    assert status(WIDE_TOKEN, "GET", "/metrics", authorization=f"bearer {TOKEN}") == 200
    assert status(WIDE_TOKEN, "GET", "/healthz") == 200 and status(WIDE_TOKEN, "GET", "/readyz") == 200
    # With the token, any Host: a Service name in a cluster needs no allow-list entry.
    assert check(WIDE_TOKEN, "GET", "/metrics", {"host": "other.name:9911", **BEARER}) is None


def test_an_admin_api_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ConfigError, match=r"admin\.token"):
        load_config(overrides={"admin": {"address": "0.0.0.0:9911"}})
    with pytest.raises(ConfigError, match=r"admin\.token"):
        load_config(overrides={"admin": {"address": "0.0.0.0:9911", "token": "short"}})
    config = load_config(overrides={"admin": {"address": "0.0.0.0:9911", "token": TOKEN}})
    assert config.admin_token == TOKEN
    assert load_config().admin_token is None


def test_start_up_beyond_loopback_without_a_token_exits_2(tmp_path: Path) -> None:
    result = mrapsim("serve", "--admin", "0.0.0.0:0", "--certs-dir", str(tmp_path / "c"))
    assert_one_line_error(result, "admin.token", "MRAPSIM_ADMIN_TOKEN")
    printed = mrapsim("config", "--admin", "0.0.0.0:0", env={"MRAPSIM_ADMIN_TOKEN": TOKEN})
    assert printed.returncode == 0 and TOKEN not in printed.stdout and 'token = "<redacted>"' in printed.stdout


ONE_PROCESS, TWO_WORKERS = "one process", "two workers"


@pytest.fixture(scope="module", params=[ONE_PROCESS, TWO_WORKERS])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MrapsimProcess]:
    where = tmp_path_factory.mktemp("guarded")
    config = f'[admin]\ntoken = "{TOKEN}"\n'
    if request.param == TWO_WORKERS:
        pytest.importorskip("mrapsim.store.sqlite")
        config = f'workers = 2\n[store]\nkind = "sqlite"\npath = "{where / "data"}"\n' + config
    started = start_mrapsim(where, config)
    yield started
    started.stop()
    assert started.process.returncode == 0


def call(server: MrapsimProcess, method: str, path: str, body: bytes | None, **headers: str) -> tuple[int, Any]:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return server.admin_call(method, path, body, named)


def test_must_show_4_live(server: MrapsimProcess) -> None:
    fault = json.dumps(LATENCY).encode()
    bearer = f"Bearer {TOKEN}"
    assert call(server, "POST", "/faults", fault, content_type="application/json")[0] == 401
    as_json = {"content_type": "application/json"}
    assert call(server, "POST", "/faults", fault, **as_json, authorization="Bearer wrong")[0] == 401
    foreign = call(server, "POST", "/faults", fault, **as_json, authorization=bearer, origin="https://evil.example")
    assert foreign[0] == 403
    assert call(server, "POST", "/faults", fault, content_type="text/plain", authorization=bearer)[0] == 415
    assert call(server, "GET", "/connections", None, host="rebound.evil.example")[0] == 421
    assert call(server, "GET", "/faults", None) == (200, [])  # nothing above changed anything
    created = call(server, "POST", "/faults", fault, content_type="application/json", authorization=bearer)
    assert created == (201, {"id": "f1"})
    assert call(server, "DELETE", "/faults/f1", None)[0] == 401
    assert call(server, "DELETE", "/faults/f1", None, authorization=bearer)[0] == 204
    assert call(server, "GET", "/readyz", None)[0] == 200
    huge = b"[" + b"{}," * 400_000 + b"{}]"
    assert call(server, "PUT", "/faults", huge, content_type="application/json", authorization=bearer)[0] == 413
