"""The Kubernetes manifests in deploy/kubernetes, checked statically against the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream_al.settings import ENV_PREFIX, load_settings, unknown_variables

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes" / "stream-al.yaml"
SCALER = ROOT / "deploy" / "kubernetes" / "keda-scaledobject.yaml"
#: kafka.sasl_mechanism -> the name KEDA's Kafka scaler gives it.
KEDA_SASL = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
    "OAUTHBEARER": "oauthbearer",
}


def documents(path: Path) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(path.read_text()) if doc}


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import os

    for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    toml = tmp_path / "stream_al.toml"
    toml.write_text(documents(MANIFESTS)["ConfigMap"]["data"]["stream_al.toml"])
    return load_settings(toml)


def test_the_statefulset_runs_replicas_with_their_own_id_and_checkpoints(config: Any) -> None:
    docs = documents(MANIFESTS)
    assert set(docs) == {"ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"}
    spec = docs["StatefulSet"]["spec"]
    assert spec["replicas"] >= 2 and spec["podManagementPolicy"] == "Parallel"
    (container,) = spec["template"]["spec"]["containers"]
    assert container["args"] == ["run", "--config", "/etc/stream-al/stream_al.toml"]
    env = {item["name"]: item for item in container["env"]}
    assert env["STREAM_AL_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert unknown_variables(dict.fromkeys(env, "x")) == []
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert Path(mounts["checkpoints"]) == config.checkpoint.directory
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "checkpoints"  # one volume per replica
    assert spec["template"]["spec"]["securityContext"]["runAsUser"] == _dockerfile_uid()


def test_probes_and_ports_are_those_the_service_serves(config: Any) -> None:
    spec = documents(MANIFESTS)["StatefulSet"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == config.metrics.port and config.metrics.host == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    served = (ROOT / "stream_al" / "service" / "metrics.py").read_text()
    assert '"/healthz"' in served and '"/readyz"' in served
    # Shutdown (delivery grace, client closes, the last checkpoint) fits the grace period.
    assert spec["terminationGracePeriodSeconds"] >= 10 + 2 * 3 + config.checkpoint.timeout_seconds


def test_the_lag_scaler_watches_this_group_on_this_topic(config: Any) -> None:
    scaled = documents(SCALER)["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "stream-al",
    }
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == config.group_id
    assert trigger["metadata"]["topic"] == config.topics.samples
    assert trigger["metadata"]["bootstrapServers"] == config.kafka.bootstrap_servers
    # Never more replicas than the scaler may have: one beyond the partitions holds none.
    replicas = documents(MANIFESTS)["StatefulSet"]["spec"]["replicas"]
    assert 1 <= scaled["minReplicaCount"] <= replicas <= scaled["maxReplicaCount"]
    assert trigger["metadata"]["allowIdleConsumers"] == "false"


def test_the_lag_scaler_authenticates_as_the_service_does(config: Any) -> None:
    """The scaler reads the group's offsets with the service's own mechanism and secret."""
    scaler = documents(SCALER)
    (trigger,) = scaler["ScaledObject"]["spec"]["triggers"]
    assert trigger["metadata"]["sasl"] == KEDA_SASL[config.kafka.sasl_mechanism]
    uses_tls = config.kafka.security_protocol in ("SSL", "SASL_SSL")
    assert trigger["metadata"]["tls"] == ("enable" if uses_tls else "disable")
    auth = scaler["TriggerAuthentication"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    refs = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert set(refs) == {"username", "password"}
    (container,) = documents(MANIFESTS)["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    (source,) = container["envFrom"]
    keys = [ref["key"] for ref in refs.values()]
    # The same secret the replicas load, with keys that are the service's settings.
    assert {ref["name"] for ref in refs.values()} == {source["secretRef"]["name"]}
    assert unknown_variables(dict.fromkeys(keys, "x")) == []
    assert keys == [
        f"{ENV_PREFIX}KAFKA__SASL_PLAIN_USERNAME",
        f"{ENV_PREFIX}KAFKA__SASL_PLAIN_PASSWORD",
    ]
    # Each credential has one home: the secret, not the ConfigMap as well.
    assert config.kafka.sasl_plain_username is None
    assert config.kafka.sasl_plain_password is None


def _dockerfile_uid() -> int:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    match = re.search(r"useradd .*--uid (\d+)", dockerfile)
    assert match, "the Dockerfile creates its user with a fixed uid"
    return int(match.group(1))
