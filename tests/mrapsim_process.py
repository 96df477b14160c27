"""Run `mrapsim serve` as a real process for tests: loopback only, ports chosen by the OS.

The server announces its bound addresses in a JSON log line (`"event": "listening"`); the
fixture reads the log in a thread so that tests can also assert on what was logged.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrapsim.names import split_host_port

STARTUP_SECONDS = 20.0
# The key pair of the embedded configuration (the one AWS documentation uses).
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

LOOPBACK_OVERRIDES = """
[admin]
address = "127.0.0.1:0"
[listeners.mrap]
address = "127.0.0.1:0"
[listeners.s3]
address = "127.0.0.1:0"
"""


@dataclass
class MrapsimProcess:
    process: subprocess.Popen[str]
    listeners: dict[str, tuple[str, int]]
    admin: str
    certs_dir: Path
    log_lines: list[str] = field(default_factory=list)

    @property
    def ca(self) -> Path:
        return self.certs_dir / "ca.pem"

    def port(self, listener: str) -> int:
        return self.listeners[listener][1]

    def s3_client(self, *, secret_key: str = SECRET_KEY, endpoint: bool = True, **options: Any) -> Any:
        """boto3 for this server: the `s3` listener as endpoint (none with `endpoint=False`, for
        MRAP ARNs), the default key pair, one attempt; `options` are more botocore Config options."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=f"https://localhost:{self.port('s3')}" if endpoint else None,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret_key,
            verify=str(self.ca),
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, **options),
        )

    def admin_get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=5) as response:
            body = response.read()
            if response.headers.get_content_type() == "application/json":
                return json.loads(body)
            return body.decode()

    def admin_call(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Any admin request: its status and JSON answer (None for an empty body), errors included."""
        request = urllib.request.Request(f"http://{self.admin}{path}", method=method, data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                data = response.read()
                return response.status, json.loads(data) if data else None
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def admin_json(self, method: str, path: str, document: object) -> tuple[int, Any]:
        """A change sent as JSON, as the admin guard wants it."""
        return self.admin_call(method, path, json.dumps(document).encode(), {"content-type": "application/json"})

    def logs(self) -> list[dict[str, Any]]:
        found = []
        for line in list(self.log_lines):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def wait_for_logs(self, predicate: Any, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The JSON log events matching `predicate`, once at least `count` of them have been read
        (the server's log is read by another thread, so a line can trail the event it records)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [event for event in self.logs() if predicate(event)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def connections(self, **query: Any) -> list[dict[str, Any]]:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        result: list[dict[str, Any]] = self.admin_get(f"/connections?{params}")
        return result

    def wait_for_connection(self, timeout: float = 10.0, **query: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.connections(**query)
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no connection record matching {query} within {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_mrapsim(
    tmp_path: Path, config: str = "", extra_args: tuple[str, ...] = (), *, fd_limit: tuple[int, int] | None = None
) -> MrapsimProcess:
    """Start `mrapsim serve` with `config` (TOML) layered over loopback-only addresses; with
    `fd_limit` (soft, hard) as its RLIMIT_NOFILE from the start."""
    config_file = tmp_path / "mrapsim.toml"
    config_file.write_text(_merge_toml(LOOPBACK_OVERRIDES, textwrap.dedent(config)))
    certs_dir = tmp_path / "certs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MRAPSIM_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mrapsim.cli",
            "serve",
            "--config",
            str(config_file),
            "--certs-dir",
            str(certs_dir),
            "--log-format",
            "json",
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=None if fd_limit is None else (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, fd_limit)),
    )
    lines: list[str] = []
    announced = threading.Event()
    result: dict[str, Any] = {}

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if not announced.is_set() and '"listening"' in line:
                try:
                    result.update(json.loads(line))
                except ValueError:
                    continue
                announced.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not announced.wait(0.05):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("mrapsim did not start:\n" + "\n".join(lines[-30:]))
    listeners = {name: split_host_port(address, 0) for name, address in result["listeners"].items()}
    return MrapsimProcess(process, listeners, result["admin"], certs_dir, lines)


def _merge_toml(base: str, overlay: str) -> str:
    """Layer two small TOML documents (the overlay's tables win) and render the result."""
    import tomllib

    import tomli_w

    from mrapsim.config import merge

    return tomli_w.dumps(merge(tomllib.loads(base), tomllib.loads(overlay)))
