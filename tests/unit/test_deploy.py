"""The deployment files, checked statically (no Docker engine or cluster here).

What can drift silently is cross-checked: environment names against the
Settings fields, ports and probe paths against what the worker serves, mounts
against files in the repository, dashboard queries against the metrics the
worker registers, alert runbook links against docs/operations.md. Prometheus'
own promtool validates the config and the rules and runs the alert unit tests
(tests/integration/test_promtool.py: it may install Debian's package).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from agents.metrics import Metrics
from rewards.rulebook import load_rules
from tests.prom import DEPLOY, REPO, RULES, RULES_TEST
from topologies import health
from topologies.security import KafkaSecurity
from topologies.settings import Settings

COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "upi-rewards.json"
K8S = DEPLOY / "k8s"
OPERATIONS = REPO / "docs" / "operations.md"
#: Read from the environment outside Settings (topologies/health.build_labels).
EXTRA_ENV = {"REWARDS_GIT_SHA"}
WEB_PORT = 6066

PROMQL_WORDS = {
    "sum", "count", "max", "min", "avg", "topk", "bottomk", "by", "without", "and", "or",
    "unless", "on", "ignoring", "group_left", "group_right", "offset", "bool", "rate",
    "irate", "increase", "delta", "deriv", "histogram_quantile", "avg_over_time",
    "max_over_time", "absent", "clamp_min", "time", "label_values",
}  # fmt: skip


def k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in k8s_docs() if d["kind"] == kind]


def settings_env_names() -> set[str]:
    security = {f"REWARDS_KAFKA_{name.upper()}" for name in KafkaSecurity.model_fields}
    return {f"REWARDS_{name.upper()}" for name in Settings.model_fields} | EXTRA_ENV | security


def exported_metric_names() -> set[str]:
    """Every series name a worker exports, from a registry built in-process."""
    registry = CollectorRegistry()
    # The worker serves prometheus_client's default REGISTRY, which also holds these.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    metrics = Metrics(registry)
    metrics.set_info("v", health.build_labels())
    registry.register(health.WorkerCollector(None))
    names = {"up"}  # Prometheus' own per-target series
    for family in registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def recorded_names() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load(RULES.read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def promql_names(expr: str) -> set[str]:
    """Series names in a PromQL expression (labels, ranges, grouping and functions removed)."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS}


def dashboard_metric_names(path: Path) -> set[str]:
    dash = json.loads(path.read_text())
    names: set[str] = set()
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            names |= promql_names(target["expr"])
    return names


def test_every_deploy_file_exists():
    for path in (
        COMPOSE,
        DOCKERFILE,
        REPO / ".dockerignore",
        PROM_CONFIG,
        RULES,
        RULES_TEST,
        DASHBOARD,
        DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml",
        DEPLOY / "grafana" / "provisioning" / "dashboards" / "upi-rewards.yml",
        K8S / "statefulset.yaml",
        K8S / "pdb.yaml",
        K8S / "service.yaml",
        K8S / "servicemonitor.yaml",
        K8S / "configmap-rules.yaml",
        K8S / "kustomization.yaml",
        OPERATIONS,
    ):
        assert path.is_file(), path


# --- Kubernetes ---------------------------------------------------------------


def test_k8s_manifests_parse_with_the_expected_kinds():
    kinds = {(d["apiVersion"], d["kind"]) for d in k8s_docs() if "metadata" in d}
    assert {
        ("apps/v1", "StatefulSet"),
        ("policy/v1", "PodDisruptionBudget"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
    } <= kinds
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_statefulset_state_volume_probes_resources_and_scrape_annotations():
    (sts,) = by_kind("StatefulSet")
    pod = sts["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    secret_refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
    }
    assert set(env) | set(secret_refs) <= settings_env_names(), set(env) - settings_env_names()
    # TLS + SASL, the credentials from a Secret, never a literal in the manifest
    assert env["REWARDS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert {"REWARDS_KAFKA_SASL_USERNAME", "REWARDS_KAFKA_SASL_PASSWORD"} <= set(secret_refs)
    kafka = {k.removeprefix("REWARDS_KAFKA_").lower(): v for k, v in env.items() if "_KAFKA_" in k}
    kafka["ssl_cafile"] = __file__  # any file: the CA is mounted in the pod
    KafkaSecurity(**kafka, sasl_username="u", sasl_password="p")  # a complete, valid set
    # rocksdict state lives on the claim template's volume
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["REWARDS_DATA_DIR"].startswith(mounts[claim["metadata"]["name"]])
    # probes hit the paths the worker serves, on its web port
    port = int(env["REWARDS_WEB_PORT"])
    (named,) = [p for p in container["ports"] if p["name"] == "web"]
    assert named["containerPort"] == port == WEB_PORT
    assert container["readinessProbe"]["httpGet"]["path"] == health.READYZ
    assert container["livenessProbe"]["httpGet"]["path"] == health.HEALTHZ
    assert container["startupProbe"]["httpGet"]["path"] == health.HEALTHZ
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ("web", port)
    assert env["REWARDS_WEB_HOST"] == "0.0.0.0"
    requests = container["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    assert container["resources"]["limits"]["memory"]
    notes = pod["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert int(notes["prometheus.io/port"]) == port
    assert notes["prometheus.io/path"] == "/metrics"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # the rules file comes from the ConfigMap
    (cm,) = by_kind("ConfigMap")
    rules_mount = mounts["rules"]
    assert env["REWARDS_RULES_FILE"] == f"{rules_mount}/rules.yaml"
    ca = Path(env["REWARDS_KAFKA_SSL_CAFILE"])
    (secret_vol,) = [v for v in pod["spec"]["volumes"] if v.get("secret")]
    assert secret_vol["secret"]["secretName"] == secret_refs["REWARDS_KAFKA_SASL_PASSWORD"]["name"]
    assert str(ca.parent) == mounts[secret_vol["name"]]
    (vol,) = [v for v in pod["spec"]["volumes"] if v["name"] == "rules"]
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    assert sts["spec"]["replicas"] <= int(env["REWARDS_PARTITIONS"])


def test_pdb_servicemonitor_and_services_select_the_workers():
    (sts,) = by_kind("StatefulSet")
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    (pdb,) = by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    services = {s["metadata"]["name"]: s for s in by_kind("Service")}
    assert sts["spec"]["serviceName"] in services
    assert services[sts["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
    (monitor,) = by_kind("ServiceMonitor")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    scraped = [s for s in services.values() if wanted.items() <= s["metadata"]["labels"].items()]
    assert len(scraped) == 1
    (svc,) = scraped
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in svc["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
    # the job label the alert rules select on
    assert svc["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "upi-rewards"


def test_rules_configmap_holds_a_valid_rules_file(tmp_path: Path):
    (cm,) = by_kind("ConfigMap")
    path = tmp_path / "rules.yaml"
    path.write_text(cm["data"]["rules.yaml"])
    assert load_rules(path).version


# --- Docker -------------------------------------------------------------------


def test_dockerfile_is_slim_non_root_with_a_healthcheck():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and not users[-1].startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK .*", text, re.M)
    assert health.HEALTHZ in text
    assert f"EXPOSE {WEB_PORT}" in text
    env_names = set(re.findall(r"\b(REWARDS_[A-Z_]+)=", text))
    assert env_names and env_names <= settings_env_names(), env_names - settings_env_names()
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for src in copied.split():
            assert (REPO / src).exists(), src


def test_compose_stack_is_consistent():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"kafka", "worker-1", "worker-2", "feed", "prometheus", "grafana"} <= set(services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    workers = [services["worker-1"], services["worker-2"]]
    names = settings_env_names()
    app_ids = set()
    for worker in workers:
        env = worker["environment"]
        assert set(env) <= names, set(env) - names
        Settings(**{k.removeprefix("REWARDS_").lower(): v for k, v in env.items()})
        assert env["REWARDS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        app_ids.add(env["REWARDS_APP_ID"])
        container_ports = {int(p.split(":")[1]) for p in worker["ports"]}
        assert container_ports == {int(env["REWARDS_WEB_PORT"])}
        assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()
        (volume,) = worker["volumes"]
        assert env["REWARDS_DATA_DIR"].startswith(volume.split(":")[1])
    assert len(app_ids) == 1  # one consumer group
    assert workers[0]["volumes"] != workers[1]["volumes"]  # own state each
    feed = services["feed"]
    assert feed["command"][0] == "feed"
    assert set(feed["environment"]) <= names
    # Prometheus scrapes each worker by service name and web port
    prom = yaml.safe_load(PROM_CONFIG.read_text())
    (job,) = prom["scrape_configs"]
    assert job["job_name"] == "upi-rewards"
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"worker-{i}:{WEB_PORT}" for i in (1, 2)}
    # every bind mount points at a file or directory in the repository
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)
    grafana_mounts = [v.split(":")[1] for v in services["grafana"]["volumes"]]
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "upi-rewards.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] in grafana_mounts


# --- Dashboard, alerts, runbook -------------------------------------------------


def test_every_dashboard_query_names_a_metric_the_worker_exports():
    known = exported_metric_names() | recorded_names()
    used = dashboard_metric_names(DASHBOARD)
    assert used, "no queries found"
    assert used <= known, f"unknown series in the dashboard: {used - known}"


def test_dashboard_has_the_panels_an_on_call_engineer_needs():
    dash = json.loads(DASHBOARD.read_text())
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uids = {d["uid"] for d in provisioned["datasources"]}
    for panel in dash["panels"]:
        if "datasource" in panel:
            assert panel["datasource"]["uid"] in uids, panel["title"]
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    text = " ".join(
        p["title"].lower() + " " + " ".join(t["expr"] for t in p.get("targets", []))
        for p in dash["panels"]
    )
    for needed in (
        "throughput",
        "latency",
        "lag",
        "coins per minute",
        "dead letters",
        "fraud alerts",
        "rewards_event_latency_seconds_bucket",
        "rewards_consumer_lag_messages",
        "rewards_event_time_lag_seconds",
    ):
        assert needed in text, needed


def test_alert_rules_only_use_exported_or_recorded_series():
    known = exported_metric_names() | recorded_names()
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert promql_names(rule["expr"]) <= known, (rule, promql_names(rule["expr"]) - known)


def test_required_alerts_exist_with_severity_and_runbook():
    names = {a["alert"] for a in alerts()}
    assert {
        "RewardsWorkerDown",
        "RewardsNoEvents",
        "RewardsConsumerLagGrowing",
        "RewardsDeadLetterRateHigh",
        "RewardsFraudAlertSpike",
        "RewardsLatencyBudgetBurn",
        "RewardsLatencyBudgetBurnSlow",
    } <= names
    doc = OPERATIONS.read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", doc, re.M)
    }
    for alert in alerts():
        assert alert["labels"]["severity"] in {"page", "ticket"}
        anchor = alert["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, (alert["alert"], anchor)


def _secret_of(volume: dict[str, Any], filename: str) -> str | None:
    """The Secret that ``volume`` mounts ``filename`` from (a secret or projected volume)."""
    if "secret" in volume:
        sources = [{"secret": {**volume["secret"], "name": volume["secret"]["secretName"]}}]
    else:
        sources = volume.get("projected", {}).get("sources", [])
    for source in sources:
        secret = source.get("secret")
        if secret is None:
            continue
        items = secret.get("items")
        if items is None or any(item["path"] == filename for item in items):
            return str(secret["name"])
    return None


def test_api_tokens_file_is_a_mounted_secret_and_no_token_is_in_the_repository():
    (sts,) = by_kind("StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    tokens_file = Path(env["REWARDS_API_TOKENS_FILE"]["value"])  # a path, not a valueFrom
    assert "REWARDS_API_TOKENS_FILE" in settings_env_names()
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == tokens_file.parent]
    assert mount.get("readOnly") is True and "subPath" not in mount  # subPath: no updates
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    secret = _secret_of(volume, tokens_file.name)
    assert secret is not None, volume
    mode = volume.get("projected", volume.get("secret", {})).get("defaultMode")
    assert mode is not None and mode & 0o007 == 0  # not world-readable
    # The Secret itself is created out of band: no manifest, generator or file holds a token.
    assert not [d for d in k8s_docs() if d["kind"] == "Secret"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "secretGenerator" not in kustomization
    tracked = subprocess_lines(["git", "ls-files"])
    assert not [
        p for p in tracked if Path(p).name.lower() in {"tokens", "api-tokens", "tokens.txt"}
    ]
    kafka = {e["valueFrom"]["secretKeyRef"]["name"] for e in env.values() if "valueFrom" in e}
    assert secret not in kafka  # its own Secret, not the Kafka credentials'


def subprocess_lines(cmd: list[str]) -> list[str]:
    import subprocess

    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
