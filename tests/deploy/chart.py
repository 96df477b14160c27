"""Render helm/mrapsim with the real Helm engine and read the manifests back.

`helm-python-sdk` binds Helm's Go SDK (libhelm_c, shipped in the wheel), so rendering, schema
validation and lint are Helm's own, offline. `lookup` answers nothing offline, exactly as under
`helm template`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "mrapsim"
VALUES_DIR = Path(__file__).resolve().parent / "values"
RELEASE = "demo"
NAMESPACE = "mrapsim-test"
TLS_MODES = ("helmGenerated", "certManager", "existingSecret")


def values_file(name: str) -> dict[str, Any]:
    """A values file parsed by Helm's own YAML reader (what `helm install -f` does)."""
    return helm.values_from_yaml((VALUES_DIR / name).read_text())


def values_for_mode(mode: str) -> dict[str, Any]:
    if mode == "existingSecret":
        return {
            "tls": {
                "mode": mode,
                "existingSecret": {"name": "my-mrapsim-tls", "caKeyKey": "ca.key"},
            }
        }
    return {"tls": {"mode": mode}}


@dataclass
class Rendered:
    files: dict[str, str]
    docs: list[dict[str, Any]]

    @property
    def notes(self) -> str:
        return next(text for path, text in self.files.items() if path.endswith("NOTES.txt"))

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [doc for doc in self.all(kind) if name is None or doc["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
        return found[0]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((d for d in self.all(kind) if d["metadata"]["name"] == name), None)

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def container(self) -> dict[str, Any]:
        containers = self.deployment["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1
        return containers[0]

    @property
    def config_toml(self) -> str:
        return self.one("ConfigMap")["data"]["mrapsim.toml"]

    def secret_data(self, name: str) -> dict[str, bytes] | None:
        secret = self.find("Secret", name)
        if secret is None:
            return None
        return {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}


def render(values: Mapping[str, Any] | None = None, *, release: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
    with helm.Chart.load(CHART) as chart:
        files = chart.render(dict(values or {}), name=release, namespace=namespace)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if path.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return Rendered(files, docs)


def address_port(address: str) -> int:
    match = re.fullmatch(r".*:(\d+)", address)
    assert match, address
    return int(match.group(1))
