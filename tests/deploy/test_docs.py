"""docs/kubernetes.md: its manifests are valid, and its snippets are the ones the chart prints."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.deploy.chart import REPO, render

DOC = REPO / "docs" / "kubernetes.md"


def yaml_blocks() -> list[dict[str, Any]]:
    text = DOC.read_text()
    docs = []
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S):
        docs.extend(d for d in yaml.safe_load_all(block) if d)
    return docs


def test_docs_coredns_snippet_is_the_one_the_chart_prints() -> None:
    notes = render({}, release="mrapsim", namespace="mrapsim").notes
    rewrite = next(line.strip() for line in notes.splitlines() if line.strip().startswith("rewrite "))
    assert rewrite in DOC.read_text()


def test_docs_manifests_parse_and_builtin_kinds_validate() -> None:
    docs = yaml_blocks()
    kinds = {d.get("kind") for d in docs}
    assert {"CiliumNetworkPolicy", "Job"} <= kinds
    for doc in docs:
        if doc.get("kind") == "Job":
            kubernetes_validate.validate(doc, f"{kubernetes_validate.utils.latest_version()}.0", strict=True)
    policy = next(d for d in docs if d.get("kind") == "CiliumNetworkPolicy")
    port_rules = policy["spec"]["egress"][1]["toPorts"][0]
    assert {"terminatingTLS", "originatingTLS", "rules"} <= set(port_rules)
    assert policy["spec"]["egress"][1]["toFQDNs"][0]["matchPattern"] == "*.mrap.accesspoint.s3-global.amazonaws.com"


def test_docs_values_example_is_accepted_by_the_chart_and_mrapsim(tmp_path: Path) -> None:
    docs = yaml_blocks()
    values = next(d for d in docs if "config" in d and "kind" not in d)
    rendered = render(values)
    path = tmp_path / "mrapsim.toml"
    path.write_text(rendered.config_toml)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("mrapsim")), "config", "--config", str(path)],
        capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    effective = tomllib.loads(result.stdout)
    assert effective["listeners"]["mrap-reset"]["on_missing_sni"] == "reset"
    assert {"mraps3sample", "synthetic-1m"} <= {b["name"] for b in effective["buckets"]}
