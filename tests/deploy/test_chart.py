"""helm/mrapsim rendered by the real Helm engine: lint, schema, Kubernetes validation, and the
properties a platform engineer checks before installing a test upstream into a cluster.

The manifests are also started for real in test_chart_runs.py.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from tests.deploy.chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    TLS_MODES,
    Rendered,
    address_port,
    render,
    values_file,
    values_for_mode,
)

# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest that
# kubernetes-validate ships schemas for.
OLDEST_KUBE = "1.30.0"
NEWEST_KUBE = f"{kubernetes_validate.utils.latest_version()}.0"
CRD_KINDS = {"Certificate", "Issuer", "ServiceMonitor"}

CASES = {
    "default": {},
    **{f"tls-{mode}": values_for_mode(mode) for mode in TLS_MODES},
    "tls-certManager-external-issuer": {
        "tls": {
            "mode": "certManager",
            "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}},
        }
    },
    "full": values_file("full.yaml"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], Rendered]:
    values = CASES[request.param]
    return request.param, values, render(values)


def mrapsim_bin() -> str:
    return str(Path(sys.executable).with_name("mrapsim"))


# --- Helm's own checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_helm_lint_strict(name: str) -> None:
    report = helm.lint(CHART, CASES[name], strict=True, namespace=NAMESPACE, kube_version=f"v{NEWEST_KUBE}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def test_typo_in_values_file_fails_the_schema() -> None:
    with pytest.raises(helm.HelmValuesError, match="on_missng_sni"):
        render(values_file("typo.yaml"))


@pytest.mark.parametrize(
    "values, names",
    [
        ({"replicaCout": 2}, "replicaCout"),
        ({"tls": {"mdoe": "certManager"}}, "mdoe"),
        ({"tls": {"mode": "selfSigned"}}, "mode"),
        ({"service": {"typ": "NodePort"}}, "typ"),
        (
            {"config": {"buckets": [{"name": "b-1", "synthetc": {"keys": 1, "size": 1}}]}},
            "synthetc",
        ),
        ({"config": {"admin": {"address": "0.0.0.0:1"}}}, "admin"),  # owned by the chart
        ({"config": {"listeners": {"mrap": {"on_missing_sni": "drop"}}}}, "on_missing_sni"),
        ({"config": {"listeners": {"Bad_Name": {"address": "0.0.0.0:1"}}}}, "Bad_Name"),
        ({"credentials": {"keys": [{"accessKey": "A:B", "secretKey": "x"}]}}, "accessKey"),
        ({"resources": {"limit": {"memory": "1Gi"}}}, "limit"),
    ],
)
def test_schema_rejects(values: dict[str, Any], names: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=names):
        render(values)


def test_every_fixed_object_in_the_schema_forbids_unknown_keys() -> None:
    with helm.Chart.load(CHART) as chart:
        schema = chart.schema
    assert schema is not None
    open_maps: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, f"{where} accepts unknown keys"
            elif node.get("type") == "object":
                open_maps.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema, "")
    p = "/properties/"
    # Maps keyed by names the user chooses (their values typed), and Kubernetes objects passed
    # through, which Kubernetes' own schema checks after rendering (see the strict tests below).
    user_keyed = {"global", "serviceAccount/properties/annotations", "podAnnotations", "podLabels",
                  "resources/properties/requests", "resources/properties/limits", "nodeSelector",
                  "service/properties/annotations", "service/properties/ports",
                  "config/properties/listeners",
                  "config/properties/buckets/items/properties/objects",
                  "config/properties/mraps/items/properties/dials",
                  "config/properties/faults/items/properties/attributes",
                  "serviceMonitor/properties/labels"}  # fmt: skip
    kubernetes = {"podSecurityContext", "securityContext", "tolerations/items", "affinity",
                  "topologySpreadConstraints/items", "extraEnv/items",
                  "networkPolicy/properties/listenerFrom/items",
                  "networkPolicy/properties/adminFrom/items"}  # fmt: skip
    assert sorted(where.removeprefix(p) for where in open_maps) == sorted(user_keyed | kubernetes)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"service": {"ports": {"mrapp": 443}}}, "service.ports.mrapp: there is no listener"),
        ({"terminationGracePeriodSeconds": 5}, "terminationGracePeriodSeconds"),
        (
            {"config": {"listeners": {"s3": {"address": "0.0.0.0:8443"}}}},
            "port 8443 is also listener",
        ),
        ({"admin": {"port": 8444}}, "admin.port"),
        ({"credentials": {"keys": []}}, "auth mode sigv4 needs"),
        ({"tls": {"mode": "existingSecret"}}, "tls.existingSecret.name is required"),
    ],
)
def test_template_checks_fail_with_the_value_named(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)


# --- Kubernetes validation -----------------------------------------------------------------------


@pytest.mark.parametrize("kube", [OLDEST_KUBE, NEWEST_KUBE])
def test_manifests_validate_strictly(case: tuple[str, dict[str, Any], Rendered], kube: str) -> None:
    _, _, rendered = case
    for doc in rendered.docs:
        if doc["kind"] in CRD_KINDS:
            continue  # no offline schema; their wiring is checked in test_cert_manager_wiring
        kubernetes_validate.validate(doc, kube, strict=True)


def test_strict_validation_catches_a_typo_in_a_passed_through_kubernetes_object() -> None:
    rendered = render({"securityContext": {"readOnlyRootFileSystem": True}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(rendered.deployment, NEWEST_KUBE, strict=True)


def test_kubernetes_validate_cli_strict_on_rendered_files(tmp_path: Path) -> None:
    """The same check as `kubernetes-validate --strict` on files, as a user would run it."""
    rendered = render({})
    files = []
    for path, text in rendered.files.items():
        if path.endswith(".yaml") and text.strip():
            target = tmp_path / Path(path).name
            target.write_text(text)
            files.append(str(target))
    cli = Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run(
        [str(cli), "--strict", "-k", NEWEST_KUBE, *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- What the Deployment promises ----------------------------------------------------------------


def test_pod_is_locked_down(case: tuple[str, dict[str, Any], Rendered]) -> None:
    _, _, rendered = case
    pod = rendered.deployment["spec"]["template"]["spec"]
    container = rendered.container
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # no MRAPSIM_SERVICE_* / MRAPSIM_PORT_* variables
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert container["resources"]["limits"]["memory"]


def test_probes_and_graceful_termination(case: tuple[str, dict[str, Any], Rendered]) -> None:
    _, _, rendered = case
    container = rendered.container
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert address_port(env["MRAPSIM_ADMIN"]) == ports["admin"]
    assert env["MRAPSIM_ADMIN"].startswith("0.0.0.0:"), "kubelet probes come from outside the pod"
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = rendered.deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    from mrapsim.server import DRAIN_SECONDS

    assert grace >= pre_stop + DRAIN_SECONDS + 1


def test_every_path_mrapsim_writes_is_a_writable_volume(
    case: tuple[str, dict[str, Any], Rendered],
) -> None:
    _, _, rendered = case
    container = rendered.container
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    writable = [path for path, m in mounts.items() if not m.get("readOnly")]
    config = tomllib.loads(rendered.config_toml)
    env = {e["name"]: e.get("value") for e in container["env"]}
    for path in (config["store"]["path"], env["MRAPSIM_MINTED_DIR"], "/tmp"):
        assert any(path == w or path.startswith(w.rstrip("/") + "/") for w in writable), path
    # The certificates directory is the mounted Secret.
    assert env["MRAPSIM_CERTS_DIR"] in mounts
    assert Path(env["MRAPSIM_CONFIG"]).parent.as_posix() in mounts


def test_service_exposes_every_listener_and_the_admin_port(
    case: tuple[str, dict[str, Any], Rendered],
) -> None:
    _, _, rendered = case
    config = tomllib.loads(rendered.config_toml)
    container_ports = {p["name"]: p["containerPort"] for p in rendered.container["ports"]}
    service = rendered.one("Service")
    by_target = {p["targetPort"]: p["port"] for p in service["spec"]["ports"]}
    assert set(by_target) == set(config["listeners"]) | {"admin"}
    for name, listener in config["listeners"].items():
        assert container_ports[name] == address_port(listener["address"])
    assert by_target["mrap"] == 443, "clients keep the real MRAP URL (https, port 443)"
    assert service["spec"]["selector"] == rendered.deployment["spec"]["selector"]["matchLabels"]


def test_rendered_config_is_what_mrapsim_accepts(case: tuple[str, dict[str, Any], Rendered], tmp_path: Path) -> None:
    _, _, rendered = case
    path = tmp_path / "mrapsim.toml"
    path.write_text(rendered.config_toml)
    result = subprocess.run(
        [mrapsim_bin(), "config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    effective = tomllib.loads(result.stdout)
    assert effective["store"]["path"] == "/var/lib/mrapsim/data"


def test_full_values_reach_the_toml_with_their_types() -> None:
    config = tomllib.loads(render(values_file("full.yaml")).config_toml)
    synthetic = next(b for b in config["buckets"] if b["name"] == "synthetic-1m")["synthetic"]
    assert synthetic == {"keys": 1000000, "key_format": "obj/{i:07d}", "size": 1024, "seed": 1}
    seeded = next(b for b in config["buckets"] if b["name"] == "mraps3sample")["objects"]
    assert seeded['quotes "and" unicode ü/€.txt'] == "tab\there\n"
    assert config["listeners"]["mrap-reset"]["on_missing_sni"] == "reset"
    assert config["listeners"]["mrap-reset"]["client_hello_timeout"] == 2.5
    assert config["listeners"]["mrap-reset"]["routes"][1]["target"] == "tcp://rgw.storage.svc:443"
    assert config["faults"][0]["attributes"] == {"latency_ms": 200, "jitter_ms": 0}
    assert config["faults"][0]["toxicity"] == 0.5
    assert "credentials" not in config.get("auth", {}), "secrets stay out of the ConfigMap"


def test_chart_defaults_match_mrapsims_embedded_defaults(tmp_path: Path) -> None:
    """values.yaml spells out mrapsim's defaults; this fails when the two drift apart."""
    path = tmp_path / "mrapsim.toml"
    path.write_text(render({}).config_toml)
    env = {"PATH": "/usr/bin:/bin"}
    run = [mrapsim_bin(), "config", "--show-secrets"]
    from_chart = tomllib.loads(
        subprocess.run([*run, "--config", str(path)], capture_output=True, text=True, env=env, check=True).stdout
    )
    embedded = tomllib.loads(subprocess.run(run, capture_output=True, text=True, env=env, check=True).stdout)
    chart_owned = {
        "log_format": "json",
        "store": {**embedded["store"], "path": "/var/lib/mrapsim/data"},
    }
    embedded.setdefault("faults", [])  # no faults either way; the chart writes `faults = []`
    assert from_chart == {**embedded, **chart_owned}


def test_credentials_reach_the_container_from_a_secret_only() -> None:
    rendered = render(values_file("full.yaml"))
    env = {e["name"]: e for e in rendered.container["env"]}
    ref = env["MRAPSIM_CREDENTIALS"]["valueFrom"]["secretKeyRef"]
    data = rendered.secret_data(ref["name"])
    assert data is not None
    assert data[ref["key"]].decode() == (
        "AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY,"
        "AKIAI44QH8DHBEXAMPLE:je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
    )
    assert "EXAMPLEKEY" not in rendered.config_toml
    existing = render({"credentials": {"existingSecret": "team-keys", "existingSecretKey": "pairs"}})
    assert existing.find("Secret", f"{RELEASE}-mrapsim-credentials") is None
    ref = {e["name"]: e for e in existing.container["env"]}["MRAPSIM_CREDENTIALS"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "team-keys", "key": "pairs"}


# --- Certificates -------------------------------------------------------------------------


def tls_sources(rendered: Rendered) -> dict[str, tuple[str, str]]:
    """File name in the certificates directory → (Secret name, key)."""
    volumes = {v["name"]: v for v in rendered.deployment["spec"]["template"]["spec"]["volumes"]}
    files = {}
    for source in volumes["tls"]["projected"]["sources"]:
        for item in source["secret"]["items"]:
            files[item["path"]] = (source["secret"]["name"], item["key"])
    return files


@pytest.mark.parametrize("mode", TLS_MODES)
def test_every_tls_mode_gives_mrapsim_its_file_names(mode: str) -> None:
    files = tls_sources(render(values_for_mode(mode)))
    assert {"ca.pem", "server.pem", "server.key"} <= set(files)
    assert (
        files["ca.pem"][1] == "ca.crt" and files["server.pem"][1] == "tls.crt" and files["server.key"][1] == "tls.key"
    )
    assert "ca.key" in files  # every default of each mode keeps minting possible


def test_helm_generated_certificates_cover_the_routes_and_the_service() -> None:
    rendered = render({})
    files = tls_sources(rendered)
    secret_name = files["server.pem"][0]
    data = rendered.secret_data(secret_name)
    assert data is not None
    assert rendered.one("Secret", secret_name)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    service = f"{RELEASE}-mrapsim"
    for name in (
        "*.mrap.accesspoint.s3-global.amazonaws.com",
        "s3.amazonaws.com",
        "*.s3.amazonaws.com",
        "localhost",
        f"{service}.{NAMESPACE}.svc",
        f"{service}.{NAMESPACE}.svc.cluster.local",
    ):
        assert name in sans
    # Patterns no SAN can express are left to mrapsim's minting (it gets ca.key).
    assert "s3.*.amazonaws.com" not in sans and "*.localhost" not in sans


def test_cert_manager_wiring() -> None:
    rendered = render(values_for_mode("certManager"))
    files = tls_sources(rendered)
    leaf = rendered.one("Certificate", f"{RELEASE}-mrapsim")
    ca = rendered.one("Certificate", f"{RELEASE}-mrapsim-ca")
    issuers = {i["metadata"]["name"]: i["spec"] for i in rendered.all("Issuer")}
    assert leaf["apiVersion"] == ca["apiVersion"] == "cert-manager.io/v1"
    assert leaf["spec"]["secretName"] == files["server.pem"][0]
    assert ca["spec"]["isCA"] is True and ca["spec"]["secretName"] == files["ca.key"][0]
    assert issuers[ca["spec"]["issuerRef"]["name"]] == {"selfSigned": {}}
    assert issuers[leaf["spec"]["issuerRef"]["name"]] == {"ca": {"secretName": ca["spec"]["secretName"]}}
    assert "*.mrap.accesspoint.s3-global.amazonaws.com" in leaf["spec"]["dnsNames"]
    external = render(
        {
            "tls": {
                "mode": "certManager",
                "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}},
            }
        }
    )
    assert external.all("Issuer") == []
    assert external.one("Certificate")["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
    }
    assert "ca.key" not in tls_sources(external)  # no CA key: mrapsim serves only what the leaf covers


def test_notes_print_the_ca_command_and_the_coredns_snippet() -> None:
    notes = render({}).notes
    assert f"get secret {RELEASE}-mrapsim-tls -o jsonpath='{{.data.ca\\.crt}}' | base64 -d" in notes
    assert (
        "rewrite name regex (.*)\\.mrap\\.accesspoint\\.s3-global\\.amazonaws\\.com "
        f"{RELEASE}-mrapsim.{NAMESPACE}.svc.cluster.local answer auto" in notes
    )
    assert "template IN A s3-global.amazonaws.com" in notes
    assert '"{{ .Name }} 60 IN A' in notes
    assert "hostAliases" in notes and "toFQDNs" in notes


def test_optional_resources_render_only_when_enabled() -> None:
    plain = {doc["kind"] for doc in render({}).docs}
    assert not plain & {"PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"}
    full = render(values_file("full.yaml"))
    assert full.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in full.one("PodDisruptionBudget")["spec"]
    monitor = full.one("ServiceMonitor")
    assert monitor["spec"]["endpoints"][0] == {
        "port": "admin",
        "path": "/metrics",
        "interval": "30s",
        "scrapeTimeout": "10s",
        "authorization": {"type": "Bearer", "credentials": {"name": "demo-mrapsim-admin", "key": "token"}},
    }
    policy = full.one("NetworkPolicy")["spec"]
    listener_ports = {p["port"] for p in policy["ingress"][0]["ports"]}
    assert listener_ports == {"mrap", "mrap-reset", "s3"}
    assert policy["ingress"][1]["from"][0]["namespaceSelector"]


def test_config_changes_roll_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        annotations = render(values).deployment["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    base = checksum({})
    assert checksum({"config": {"listeners": {"mrap": {"on_missing_sni": "reset"}}}}) != base
    assert checksum({}) == base


def test_chart_readme_documents_every_value() -> None:
    with helm.Chart.load(CHART) as chart:
        schema = chart.schema
    readme = (CHART / "README.md").read_text()
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for key, sub in node.get("properties", {}).items():
            here = f"{path}.{key}" if path else key
            # Each leaf has its row; `resources` is Kubernetes' ResourceRequirements, one row.
            is_leaf = "properties" not in sub and not here.startswith("resources.")
            if is_leaf and f"`{here}`" not in readme:
                missing.append(here)
            walk(sub, here)
        extra = node.get("additionalProperties")
        if path == "config.listeners" and isinstance(extra, dict):
            walk(extra, f"{path}.<name>")

    assert schema is not None
    walk(schema, "")
    assert not missing, missing


def test_helm_generated_ca_is_kept_across_upgrades(tmp_path: Path) -> None:
    """`lookup` answers nothing offline, so the chart is copied with its lookup replaced by a
    value that holds the Secret as the cluster would return it after the first install."""
    chart = tmp_path / "mrapsim"
    shutil.copytree(CHART, chart)
    (chart / "values.schema.json").unlink()
    template = chart / "templates" / "secret-tls.yaml"
    source = template.read_text()
    call = 'lookup "v1" "Secret" .Release.Namespace $name'
    assert call in source
    template.write_text(source.replace(call, "(.Values.clusterHas | default dict)"))

    def secret(values: dict[str, Any]) -> dict[str, Any]:
        with helm.Chart.load(chart) as loaded:
            files = loaded.render(values, name=RELEASE, namespace=NAMESPACE)
        found: dict[str, Any] = yaml.safe_load(files["mrapsim/templates/secret-tls.yaml"])
        return found

    installed = secret({})
    upgraded = secret({"clusterHas": installed})
    assert upgraded["data"] == installed["data"], "same CA and leaf when nothing changed"
    renamed = secret({"clusterHas": installed, "tls": {"extraDnsNames": ["new.example"]}})
    assert renamed["data"]["ca.crt"] == installed["data"]["ca.crt"]
    assert renamed["data"]["ca.key"] == installed["data"]["ca.key"]
    assert renamed["data"]["tls.crt"] != installed["data"]["tls.crt"], "leaf re-issued for new names"
    leaf = x509.load_pem_x509_certificate(base64.b64decode(renamed["data"]["tls.crt"]))
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(base64.b64decode(installed["data"]["ca.crt"])))
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "new.example" in sans.get_values_for_type(x509.DNSName)
