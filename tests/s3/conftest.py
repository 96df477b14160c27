"""A live S3 app on 127.0.0.1 (hypercorn + trio in a background thread, port chosen by the OS)
and the clients that drive it: boto3, raw signed requests, the aws-cli."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import boto3
import pytest
import trio
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from starlette.types import ASGIApp

from mrapsim.config import Config, load_config
from mrapsim.s3 import RequestRecord, create_app
from mrapsim.store import MemoryStore, seed_store

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
BULK_BUCKET = "bulk"
BULK_KEYS = 2500
NAMES_BUCKET = "names"
WRITE_BUCKET = "writes"  # for tests that write: the other buckets' contents are asserted exactly
ODD_KEYS = (
    "dir/a b.txt",
    "dir/plus+sign.txt",
    "dir/date=2026-03-01/part.csv",
    "dir/100%.txt",
    "dir/ünïcødé/😀.txt",
    "dir/sub+x/y.txt",
    "top.txt",
)


@dataclass
class LiveServer:
    url: str
    port: int
    config: Config
    store: MemoryStore
    records: list[RequestRecord] = field(default_factory=list)


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:<os-chosen port> until the block ends; yields the base URL."""
    hypercorn_config = HypercornConfig()
    hypercorn_config.bind = ["127.0.0.1:0"]
    hypercorn_config.graceful_timeout = 1
    state: dict[str, Any] = {}
    started = threading.Event()

    async def main() -> None:
        stop = trio.Event()
        state["stop"], state["token"] = stop, trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            serving = partial(serve, cast(Any, app), hypercorn_config, shutdown_trigger=stop.wait)
            state["binds"] = await nursery.start(serving)
            started.set()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # surfaced to the test thread below
            state["error"] = exc
            started.set()

    thread = threading.Thread(target=run, name="s3-test-server", daemon=True)
    thread.start()
    assert started.wait(10), "the test server did not start"
    if "error" in state:
        raise state["error"]
    try:
        yield state["binds"][0]
    finally:
        trio.from_thread.run_sync(state["stop"].set, trio_token=state["token"])
        thread.join(10)


@pytest.fixture(scope="session")
def live() -> Iterator[LiveServer]:
    config = load_config(overrides={"buckets": [{"name": BULK_BUCKET}, {"name": NAMES_BUCKET}, {"name": WRITE_BUCKET}]})
    store = MemoryStore()

    async def fill() -> None:
        await seed_store(store, config)
        for i in range(BULK_KEYS):
            await store.put_bytes(BULK_BUCKET, f"k/{i:05d}", b"x")
        for key in ODD_KEYS:
            await store.put_bytes(NAMES_BUCKET, key, key.encode())

    trio.run(fill)
    records: list[RequestRecord] = []
    app = create_app(config, store, on_request=records.append)
    with serving(app) as url:
        yield LiveServer(url, int(url.rsplit(":", 1)[1]), config, store, records)


def make_client(
    url: str,
    *,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    signature_version: str | None = None,
) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=BotoConfig(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            signature_version=signature_version,
        ),
    )


@pytest.fixture(scope="session")
def s3(live: LiveServer) -> Any:
    return make_client(live.url)


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def send(request: urllib.request.Request) -> RawResponse:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return RawResponse(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return RawResponse(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def signed_request(
    url: str,
    method: str = "GET",
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    secret_key: str = SECRET_KEY,
) -> RawResponse:
    """Send a request signed by botocore's S3 SigV4 signer: any query, no client-side validation."""
    request = AWSRequest(method=method, url=url, headers=headers or {}, data=body)
    S3SigV4Auth(Credentials(ACCESS_KEY, secret_key), "s3", REGION).add_auth(request)
    prepared = request.prepare()
    return send(urllib.request.Request(prepared.url, data=body or None, headers=dict(prepared.headers), method=method))


def aws_cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
    )
    return env
