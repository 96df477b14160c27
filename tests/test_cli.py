"""The command line: one clear line and exit code 2 for anything bad (issue 2 must-show 7)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest


def mrapsim(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MRAPSIM_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mrapsim.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=full_env,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]


def test_bad_config_value(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[listeners.mrap]\nstall_timeout = "soon"\n')
    result = mrapsim("serve", "--config", str(bad), "--certs-dir", str(tmp_path / "c"))
    assert_one_line_error(result, "listeners.mrap.stall_timeout", "soon")


def test_unparseable_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[listeners\n")
    assert_one_line_error(mrapsim("serve", "--config", str(bad)), "--config", "not valid TOML")
    assert_one_line_error(mrapsim("serve", "--config", str(tmp_path / "missing.toml")), "--config", "cannot read")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("serve", "--workers", "x"), ("workers",)),
        (("serve", "--bogus"), ("--bogus",)),
        (("serve", "--log-format", "xml"), ("--log-format",)),
        (("serve", "--listen", "nosuch=127.0.0.1:1"), ("--listen", "nosuch")),
        (("serve", "--listen", "mrap"), ("--listen",)),
        (("serve", "--admin", "nowhere"), ("admin.address",)),
        (("frobnicate",), ("frobnicate",)),
    ],
)
def test_bad_flags(args: tuple[str, ...], words: tuple[str, ...]) -> None:
    assert_one_line_error(mrapsim(*args), *words)


def test_bad_environment_variable() -> None:
    assert_one_line_error(mrapsim("config", env={"MRAPSIM_ADMIN": "nowhere"}), "admin.address")


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = mrapsim(
            "serve",
            "--certs-dir",
            str(tmp_path / "c"),
            "--admin",
            "127.0.0.1:0",
            "--listen",
            f"mrap=127.0.0.1:{port}",
            "--listen",
            "s3=127.0.0.1:0",
        )
    assert_one_line_error(result, "listeners.mrap.address", str(port))


def test_config_prints_effective_toml_with_secrets_redacted() -> None:
    result = mrapsim("config", "--listen", "mrap=127.0.0.1:9443", env={"MRAPSIM_LOG_FORMAT": "json"})
    assert result.returncode == 0, result.stderr
    document = tomllib.loads(result.stdout)
    assert document["listeners"]["mrap"]["address"] == "127.0.0.1:9443"
    assert document["log_format"] == "json"
    assert document["auth"]["credentials"][0]["secret_key"] == "<redacted>"
    shown = tomllib.loads(mrapsim("config", "--show-secrets").stdout)
    assert shown["auth"]["credentials"][0]["secret_key"].startswith("wJalr")


def test_config_prints_the_faithful_defaults() -> None:
    """The defaults that changed in the faithful-defaults release, as `mrapsim config` prints them."""
    result = mrapsim("config")
    assert result.returncode == 0, result.stderr
    assert 'stall_timeout = "300s"' in result.stdout and "max_stalled = 4096" in result.stdout
    document = tomllib.loads(result.stdout)
    assert document["admin"]["address"] == "127.0.0.1:9911"
    for name in ("mrap", "s3"):
        listener = document["listeners"][name]
        assert listener["alpn"] == ["http/1.1"]
        assert listener["stall_timeout"] == "300s" and listener["max_stalled"] == 4096


def test_bad_max_stalled_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[listeners.mrap]\nmax_stalled = 0\n")
    assert_one_line_error(mrapsim("config", "--config", str(bad)), "listeners.mrap.max_stalled", "between 1 and")


def test_certs_creates_and_reuses(tmp_path: Path) -> None:
    first = mrapsim("certs", "--certs-dir", str(tmp_path / "certs"))
    assert first.returncode == 0, first.stderr
    assert "ca.pem" in first.stdout
    ca = (tmp_path / "certs" / "ca.pem").read_bytes()
    again = mrapsim("certs", "--certs-dir", str(tmp_path / "certs"))
    assert again.returncode == 0 and (tmp_path / "certs" / "ca.pem").read_bytes() == ca


def test_credentials_from_the_environment() -> None:
    shown = mrapsim("config", "--show-secrets", env={"MRAPSIM_CREDENTIALS": "AKIAEXAMPLE2:secret/two+x"})
    assert shown.returncode == 0, shown.stderr
    assert tomllib.loads(shown.stdout)["auth"]["credentials"] == [
        {"access_key": "AKIAEXAMPLE2", "secret_key": "secret/two+x"}
    ]
    assert_one_line_error(mrapsim("config", env={"MRAPSIM_CREDENTIALS": "nocolon"}), "MRAPSIM_CREDENTIALS")


def test_admin_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = mrapsim(
            "serve",
            "--certs-dir",
            str(tmp_path / "c"),
            "--admin",
            f"127.0.0.1:{port}",
            "--listen",
            "mrap=127.0.0.1:0",
            "--listen",
            "s3=127.0.0.1:0",
        )
    assert_one_line_error(result, "admin.address", str(port), "in use")
