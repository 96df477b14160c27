"""Toxiproxy's own clients drive mrapsim's Toxiproxy API unchanged, and aws-cli sees each effect
(issue 13, must-show 2): the Node client `toxiproxy-node-client` and the Python
`toxiproxy-python` list the listeners as proxies, add and remove a `latency` and a `reset_peer`
toxic, and take a listener down and back up. Toxiproxy's Go client and `toxiproxy-cli` do not
build here (docs/faults.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.mrapsim_process import MrapsimProcess
from tests.test_awscli_edge import aws

NODE_CLIENT = Path(__file__).parent / "toxiproxy"


def timed_aws(server: MrapsimProcess) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = aws(server, "s3api", "head-object", "--bucket", "mraps3sample", "--key", "hello.txt")
    return result, time.monotonic() - started


def fails_at_the_connection(server: MrapsimProcess) -> str:
    result, _ = timed_aws(server)
    assert result.returncode != 0
    return result.stderr


@pytest.fixture(scope="module")
def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js and npm are needed for Toxiproxy's Node client")
    if not (NODE_CLIENT / "node_modules" / "toxiproxy-node-client").is_dir():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--no-package-lock"],
            cwd=NODE_CLIENT,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return NODE_CLIENT


def node(client: Path, server: MrapsimProcess, *args: str) -> Any:
    result = subprocess.run(
        ["node", str(client / "drive.js"), f"http://{server.admin}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_node_client_drives_mrapsim(node_client: Path, start_server: Any) -> None:
    server = start_server()
    proxies = {p["name"]: p for p in node(node_client, server, "list")}
    assert {"s3", "mrap"} <= set(proxies) and proxies["s3"]["enabled"] is True
    assert proxies["s3"]["listen"] == f"127.0.0.1:{server.port('s3')}"
    result, baseline = timed_aws(server)
    assert result.returncode == 0, result.stderr

    toxic = node(node_client, server, "add", "s3", "latency", '{"latency": 1000, "jitter": 0}')
    assert toxic["name"] == "latency_downstream" and toxic["attributes"] == {"latency": 1000, "jitter": 0}
    result, slowed = timed_aws(server)
    assert result.returncode == 0 and slowed >= baseline + 1.0, (baseline, slowed)
    node(node_client, server, "remove", "s3", "latency_downstream")
    result, healed = timed_aws(server)
    assert result.returncode == 0 and healed < slowed - 0.5, (baseline, slowed, healed)

    node(node_client, server, "add", "s3", "reset_peer", '{"timeout": 0}')
    fails_at_the_connection(server)
    node(node_client, server, "remove", "s3", "reset_peer_downstream")
    assert timed_aws(server)[0].returncode == 0

    assert node(node_client, server, "enabled", "s3", "false")["enabled"] is False
    fails_at_the_connection(server)
    assert node(node_client, server, "enabled", "s3", "true")["enabled"] is True
    assert timed_aws(server)[0].returncode == 0
    refused = server.connections(outcome="proxy_disabled")  # aws-cli tried more than once
    assert refused and {r["action"] for r in refused} == {"reset"}


def test_the_python_client_drives_mrapsim(start_server: Any) -> None:
    from toxiproxy.api import APIConsumer
    from toxiproxy.server import Toxiproxy

    server = start_server()
    host, port = server.admin.rsplit(":", 1)
    toxiproxy = Toxiproxy()
    toxiproxy.update_api_consumer(host, int(port))
    try:
        proxies = toxiproxy.proxies()
        assert {"s3", "mrap"} <= set(proxies)
        proxy = proxies["s3"]
        result, baseline = timed_aws(server)
        assert result.returncode == 0, result.stderr

        proxy.add_toxic(type="latency", attributes={"latency": 1000})
        assert set(proxy.toxics()) == {"latency_downstream"}
        result, slowed = timed_aws(server)
        assert result.returncode == 0 and slowed >= baseline + 1.0, (baseline, slowed)
        assert proxy.destroy_toxic("latency_downstream")
        result, healed = timed_aws(server)
        assert result.returncode == 0 and healed < slowed - 0.5, (baseline, slowed, healed)

        proxy.add_toxic(name="cut", type="reset_peer", stream="upstream", attributes={"timeout": 0})
        fails_at_the_connection(server)
        assert proxy.destroy_toxic("cut") and proxy.toxics() == {}

        with proxy.down():
            assert toxiproxy.get_proxy("s3").enabled is False
            fails_at_the_connection(server)
        assert toxiproxy.get_proxy("s3").enabled is True
        assert timed_aws(server)[0].returncode == 0
        assert toxiproxy.reset()
    finally:
        APIConsumer.host, APIConsumer.port = "127.0.0.1", 8474  # the client's class-level defaults
