"""Run the rendered Deployment's container as a local process.

What a kubelet would do, on this machine: the image's ENTRYPOINT/CMD/ENV/WORKDIR (from the
Dockerfile) combined with the container's command/args/env by Kubernetes' rules; every
volumeMount becomes a temporary directory filled from the rendered ConfigMap and Secrets (items
mapped to the same file names); in-container paths in env and the working directory are
rewritten to those directories. Only addresses change: each port the manifest names is given a
free loopback port chosen by the OS, in the env and in the ConfigMap's TOML alike.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from tests.deploy import dockerfile
from tests.deploy.chart import Rendered, address_port

Secrets = Mapping[str, Mapping[str, bytes]]


def _can_bind_mount_read_only() -> bool:
    """Whether this machine lets us (root) make private read-only bind mounts."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="mrapsim-ro-"))
    try:
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f'mount --bind "{probe}" "{probe}" && mount -o remount,bind,ro "{probe}" '
             f'&& ! touch "{probe}/x" 2>/dev/null'],
            capture_output=True, timeout=10,
        )  # fmt: skip
        return result.returncode == 0 and not (probe / "x").exists()
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


READ_ONLY_BIND_MOUNTS = _can_bind_mount_read_only()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalPod:
    rendered: Rendered
    root: Path
    mounts: dict[str, Path]  # in-container mount path → local directory
    ports: dict[int, int]  # container port → local port
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    process: subprocess.Popen[bytes] | None = None
    name: str = ""
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "pod.log"

    # --- paths and ports the manifest names ---

    def env_in_container(self, name: str) -> str:
        """An environment variable's value as the manifest sets it (before path rewriting)."""
        for item in self.rendered.container.get("env", []):
            if item["name"] == name and "value" in item:
                return str(item["value"])
        raise KeyError(name)

    def on_volume(self, path: str) -> bool:
        return any(path == m or path.startswith(m.rstrip("/") + "/") for m in self.mounts)

    def local_path(self, path: str) -> Path:
        best = max(
            (m for m in self.mounts if path == m or path.startswith(m.rstrip("/") + "/")),
            key=len,
            default=None,
        )
        assert best is not None, f"{path} is on the (read-only) root filesystem, not on a volume"
        return self.mounts[best] / os.path.relpath(path, best)

    def container_port(self, name_or_number: str | int) -> int:
        if isinstance(name_or_number, int):
            return name_or_number
        ports = {p["name"]: p["containerPort"] for p in self.rendered.container["ports"]}
        return int(ports[name_or_number])

    def local_port(self, name_or_number: str | int) -> int:
        return self.ports[self.container_port(name_or_number)]

    def probe(self, kind: str, timeout: float = 2.0) -> tuple[int, bytes]:
        get = self.rendered.container[kind]["httpGet"]
        url = f"http://127.0.0.1:{self.local_port(get['port'])}{get['path']}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    # --- the process ---

    @property
    def read_only_mounts(self) -> list[Path]:
        return [self.mounts[m["mountPath"]] for m in self.rendered.container["volumeMounts"] if m.get("readOnly")]

    def start(self) -> None:
        argv = self.argv
        if READ_ONLY_BIND_MOUNTS:
            # readOnly volumeMounts as the kernel enforces them (EROFS), in a private mount
            # namespace of the process only.
            script = "".join(
                f'mount --bind "{d}" "{d}" && mount -o remount,bind,ro "{d}" && ' for d in self.read_only_mounts
            )
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    script + 'exec "$@"', "sh", *argv]  # fmt: skip
        self.process = subprocess.Popen(
            argv, env=self.env, cwd=self.cwd, stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )

    def wait_ready(self, seconds: float = 20.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"mrapsim exited with {self.process.returncode}:\n{self.output()}")
            try:
                if self.probe("readinessProbe", timeout=0.5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"readiness probe never answered 200:\n{self.output()}")

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def secret_value(secrets: Secrets, ref: Mapping[str, str]) -> str:
    return secrets[ref["name"]][ref["key"]].decode()


def prepare(rendered: Rendered, root: Path, secrets: Secrets) -> LocalPod:
    """`secrets`: name → data, the rendered Secrets plus any the chart expects to exist."""
    _, stages, _ = dockerfile.parse()
    image = stages[-1]
    container = rendered.container
    pod_spec = rendered.deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    config_maps = {c["metadata"]["name"]: c["data"] for c in rendered.all("ConfigMap")}

    # Ports: every containerPort gets a free loopback port.
    ports = {int(p["containerPort"]): free_port() for p in container["ports"]}

    # Volumes.
    mounts: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        local = root / "volumes" / mount["name"]
        local.mkdir(parents=True)
        volume = volumes[mount["name"]]
        files: dict[str, bytes] = {}
        if "configMap" in volume:
            data = config_maps[volume["configMap"]["name"]]
            items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            files = {item["path"]: data[item["key"]].encode() for item in items}
        elif "projected" in volume:
            for source in volume["projected"]["sources"]:
                data_b = secrets[source["secret"]["name"]]
                files.update({item["path"]: data_b[item["key"]] for item in source["secret"]["items"]})
        elif "secret" in volume:
            data_b = secrets[volume["secret"]["secretName"]]
            items = volume["secret"].get("items") or [{"key": k, "path": k} for k in data_b]
            files = {item["path"]: data_b[item["key"]] for item in items}
        else:
            assert "emptyDir" in volume, f"volume {mount['name']}: unsupported source {volume}"
        for name, content in files.items():
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            (local / name).write_bytes(content)
        mounts[mount["mountPath"]] = local

    pod = LocalPod(rendered, root, mounts, ports, [], {}, root)

    # Environment: the image's ENV, then the container's (Kubernetes' precedence). PATH is this
    # machine's: the image's /opt/mrapsim/bin is where `mrapsim` lives there, the test's venv here.
    env: dict[str, str] = {k: v for k, v in image.env().items() if k != "PATH"}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = secret_value(secrets, item["valueFrom"]["secretKeyRef"])
    for name, value in list(env.items()):
        if value.startswith("/") and pod.on_volume(value):
            env[name] = str(pod.local_path(value))
        elif name == "MRAPSIM_ADMIN":
            env[name] = f"127.0.0.1:{ports[address_port(value)]}"
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    if "/tmp" in mounts:  # the pod's /tmp is a volume; here tempfile needs to be told
        env["TMPDIR"] = str(mounts["/tmp"])

    # The ConfigMap's TOML with only its listener addresses moved to the loopback ports.
    config_path = Path(env["MRAPSIM_CONFIG"])
    document = tomllib.loads(config_path.read_text())
    for listener in document.get("listeners", {}).values():
        listener["address"] = f"127.0.0.1:{ports[address_port(listener['address'])]}"
    config_path.write_text(tomli_w.dumps(document))

    # Command and arguments by Kubernetes' rules against the image's ENTRYPOINT and CMD.
    entrypoint = image.exec_form("ENTRYPOINT") or []
    cmd = image.exec_form("CMD") or []
    if "command" in container:
        argv = list(container["command"]) + list(container.get("args", []))
    else:
        argv = entrypoint + list(container.get("args", cmd))
    executable = Path(sys.executable).with_name(argv[0])
    pod.argv = [str(executable) if executable.exists() else argv[0], *argv[1:]]
    pod.env = env
    workdir = image.last("WORKDIR") or "/"
    pod.cwd = pod.local_path(workdir)
    return pod


def b64(data: Mapping[str, str]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in data.items()}


def config_listeners(rendered: Rendered) -> dict[str, Any]:
    listeners: dict[str, Any] = tomllib.loads(rendered.config_toml)["listeners"]
    return listeners
