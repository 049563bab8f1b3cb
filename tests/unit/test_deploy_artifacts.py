"""The files in deploy/ are valid and agree with each other and with the metrics the code exports.

Static checks (JSON, YAML, file references, metric names) always run. The ``prometheus`` tests
run promtool on the config and rules, and then start a real Prometheus that scrapes real
`ServiceMetrics` HTTP servers fed with synthetic events: every dashboard query and every alert
expression must parse and return data, and exactly the expected alerts must go pending.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream_al.core.estimate import AccuracyEstimate
from stream_al.labeling.metrics import LabelingMetrics
from stream_al.service.metrics import ServiceMetrics
from stream_al.settings import ENV_PREFIX, Settings
from tests.prometheus_server import (
    JOB,
    PrometheusServer,
    free_port,
    require_binary,
    start_prometheus,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "stream_al.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"

#: Grafana's built-in variables, replaced by what Grafana would send for a short time range.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


# -- loading -------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open() as f:
        return yaml.safe_load(f)


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    panels: list[dict[str, Any]] = []
    stack = list(json.loads(DASHBOARD.read_text())["panels"])
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        if panel.get("type") != "row":
            panels.append(panel)
    return panels


@dataclass(frozen=True)
class Query:
    where: str
    expr: str


def dashboard_queries() -> list[Query]:
    queries = []
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, replacement in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, replacement)
            queries.append(Query(f"panel {panel['title']!r} {target['refId']}", expr))
    return queries


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def alert_queries() -> list[Query]:
    return [Query(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def exported_series_names() -> set[str]:
    """Names of every sample the service and the labeling app render (``_bucket``... too)."""
    metrics = ServiceMetrics(port=0, process_metrics=False)
    metrics.set_lag("samples", 0, 0)  # labelled gauges only render once set
    labeling = LabelingMetrics()
    labeling.set_agreement({"ann": 1.0})
    text = generate_latest(metrics.registry).decode() + generate_latest(labeling.registry).decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def referenced_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\bstream_al_[a-z_]+", expr))


# -- dashboard -----------------------------------------------------------------------------


def test_dashboard_panels_have_a_provisioned_datasource_and_queries() -> None:
    datasource_uids = {ds["uid"] for ds in load_yaml(DATASOURCES)["datasources"]}
    panels = dashboard_panels()
    assert panels
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"]["uid"] in datasource_uids, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", panel["datasource"])["uid"] in datasource_uids
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_dashboard_queries_use_only_exported_metrics_and_known_variables() -> None:
    exported = exported_series_names()
    for query in dashboard_queries() + alert_queries():
        assert "$" not in query.expr.replace("$labels", "").replace("$value", ""), query
        unknown = referenced_metrics(query.expr) - exported
        assert not unknown, f"{query.where} uses metrics the service does not export: {unknown}"


def test_dashboard_covers_every_operator_question() -> None:
    exprs = " ".join(query.expr for query in dashboard_queries())
    for needle in (
        "stream_al_query_rate_ratio",
        "stream_al_budget_ratio",
        "stream_al_threshold",
        "sum by (reason) (rate(stream_al_queries_total",
        "sum by (status) (rate(stream_al_labels_total",
        "stream_al_accuracy_ratio",
        'stream_al_accuracy_estimate_ratio{estimate="random",scope="window"} >= 0',
        'stream_al_accuracy_estimate_low_ratio{estimate="random",scope="window"} >= 0',
        'stream_al_accuracy_estimate_high_ratio{estimate="random",scope="window"} >= 0',
        "stream_al_strategy_stopped",
        "sum by (kind) (increase(stream_al_policy_events_total",
        "histogram_quantile(0.99, sum by (job, le) (rate(stream_al_decision_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (job, le) (rate(stream_al_label_latency_seconds_bucket",
        "stream_al_consumer_lag_messages",
        "sum by (reason) (rate(stream_al_dead_letters_total",
        "stream_al_pending_queries",
        "stream_al_labels_remaining",
        "sum by (answer) (rate(stream_al_answers_total",
        "stream_al_annotator_agreement_ratio",
        "stream_al_labelers_backlog_messages",
        "sum by (kind) (rate(stream_al_labeling_answers_total",
        "rate(stream_al_labeling_answer_seconds_bucket",
        "stream_al_labeling_queue_items",
    ):
        assert needle in exprs, f"no dashboard query with {needle!r}"


# -- alert rules ---------------------------------------------------------------------------


def test_alert_rules_have_duration_severity_and_annotations() -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert names == {
        "StreamAlQueryRateOffBudget",
        "StreamAlNoLabelsLearned",
        "StreamAlDeadLettersRising",
        "StreamAlConsumerLagGrowing",
        "StreamAlNotReady",
    }
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"]) > 40, rule["alert"]


# -- compose and image ---------------------------------------------------------------------


def test_compose_parses_and_runs_the_expected_services() -> None:
    services = load_yaml(COMPOSE)["services"]
    assert set(services) == {"kafka", "stream-al", "feeder", "oracle", "prometheus", "grafana"}
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", services["kafka"]["image"])
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["stream-al"]["command"] == ["run"]
    assert services["feeder"]["command"] == ["produce", "--dataset", "bananas", "--rate", "200"]
    assert services["oracle"]["command"] == ["oracle", "--dataset", "bananas", "--delay", "2"]
    for name in ("stream-al", "feeder", "oracle"):
        env = services[name]["environment"]
        assert env["STREAM_AL_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert all(key.startswith("STREAM_AL_") for key in env), name
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["stream-al"]["environment"]["STREAM_AL_METRICS__PORT"] == "8000"

    # Prometheus scrapes the service on the port the service listens on.
    scrape = {job["job_name"]: job for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    (dns,) = scrape[JOB]["dns_sd_configs"]
    assert dns["names"] == ["stream-al"]
    assert dns["port"] == int(services["stream-al"]["environment"]["STREAM_AL_METRICS__PORT"])


@pytest.mark.parametrize("service", ["stream-al", "feeder", "oracle"])
def test_compose_environment_names_real_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each STREAM_AL_ variable is a setting that takes the value given (not a typo)."""
    for key in [key for key in os.environ if key.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    env = load_yaml(COMPOSE)["services"][service]["environment"]
    for key, raw in env.items():
        monkeypatch.setenv(key, str(raw))
    settings = Settings()
    for key, raw in env.items():
        node: Any = settings
        for part in key.removeprefix(ENV_PREFIX).lower().split("__"):
            node = getattr(node, part)
        assert str(node) == str(raw), key


def test_compose_references_files_that_exist() -> None:
    services = load_yaml(COMPOSE)["services"]
    mounts: dict[str, Path] = {}
    for service in services.values():
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert context.is_dir(), build
            assert (context / build["dockerfile"]).is_file(), build
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                path = DEPLOY / source
                assert path.exists(), f"{volume}: {path} does not exist"
                mounts[target] = path
    # Grafana's provisioning points at the mounted locations, and both Prometheus files are
    # mounted side by side so the relative rule_files entry resolves in the container.
    provider_path = load_yaml(DASHBOARD_PROVIDERS)["providers"][0]["options"]["path"]
    assert (mounts[provider_path] / DASHBOARD.name).is_file()
    for rule_file in load_yaml(PROMETHEUS_CONFIG)["rule_files"]:
        assert (PROMETHEUS_CONFIG.parent / rule_file).is_file()
        assert f"/etc/prometheus/{rule_file}" in mounts


def test_dockerfile_builds_the_cli_as_a_non_root_user() -> None:
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    assert 'ENTRYPOINT ["stream-al"]' in lines
    assert lines[-1] == 'CMD ["run"]'
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"{line}: {source} missing from the repo"


# -- promtool ------------------------------------------------------------------------------


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.prometheus
@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", str(PROMETHEUS_CONFIG)),
        ("check", "rules", str(ALERTS)),
        ("test", "rules", str(ALERTS_TEST)),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool_accepts_deploy_files(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


# -- live Prometheus scraping real ServiceMetrics servers ----------------------------------


@dataclass
class LiveStack:
    prometheus: PrometheusServer
    healthy: str  # host:port of a replica behaving well
    unhealthy: str  # host:port of a replica tripping every per-replica alert
    down: str  # host:port nobody listens on
    desk: str  # host:port of a labeling app


class SyntheticTraffic:
    """Feeds two ServiceMetrics replicas and a labeling app events until stopped."""

    TICK = 0.2

    def __init__(
        self,
        healthy: ServiceMetrics,
        unhealthy: ServiceMetrics,
        labeling: LabelingMetrics,
        seed: int,
    ) -> None:
        self.healthy, self.unhealthy, self.labeling = healthy, unhealthy, labeling
        self.rng = random.Random(seed)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        healthy.set_readiness(
            lambda: {"broker_reachable": True, "partitions_assigned": True, "model_loaded": True}
        )
        unhealthy.set_readiness(
            lambda: {"broker_reachable": False, "partitions_assigned": True, "model_loaded": True}
        )

    def run(self) -> None:
        tick = 0
        while not self.stopped.wait(self.TICK):
            tick += 1
            self.step(tick)

    def step(self, tick: int) -> None:
        rng = self.rng
        for replica in (self.healthy, self.unhealthy):
            replica.samples_scored([rng.uniform(50e-6, 2e-3) for _ in range(10)])
            replica.predictions_sent(10)
            replica.checkpoint_saved()

        # Healthy: queries about its budget, every query answered, lag steady.
        good = self.healthy
        good.query_sent("uncertain")
        good.label_outcome("learned")
        good.observe_label_latency(rng.uniform(1.0, 5.0))
        good.set_learner_gauges(0.1, 0.1, 0.42, max(0, 500 - tick), 3, 0.9, 100 + tick)
        good.set_policy_state(False, 0.0, 0.005, {"stopped": tick // 10}, {"errors": tick // 20})
        good.set_accuracy_estimates(lambda kind, scope: AccuracyEstimate(0.93, 0.9, 0.95, 40, 40))
        good.set_lag("samples", 0, rng.randint(0, 20))
        # Its labelers: two answers per item, one annotator noisier than the other.
        good.answer_received("label")
        good.answer_received("label")
        good.set_agreement({"ann": (9 + tick, 10 + tick), "bob": (6, 10)}, 50, open_items=1)
        good.set_backlog(rng.randint(0, 30))
        # The labeling app those labelers use: answers take seconds, a query goes stale.
        desk = self.labeling
        desk.answered("label", rng.uniform(2.0, 40.0))
        desk.answered("skip", rng.uniform(2.0, 40.0))
        if tick % 5 == 0:
            desk.answered("stale")
        desk.queue_items.set(rng.randint(0, 12))

        # Unhealthy: far over budget, labels never learned, garbage input, falling behind.
        bad = self.unhealthy
        for _ in range(6):
            bad.query_sent("uncertain")
        bad.label_outcome("expired")
        bad.sample_dead_lettered("not_json")
        bad.set_learner_gauges(0.6, 0.1, 0.05, None, 50 + tick, 0.5, 0)
        # Nothing learned: no estimate (NaN), which the dashboard must leave out, not average.
        bad.set_lag("samples", 1, 2000 + 50 * tick)
        if tick % 20 == 0:
            bad.rebalanced()

    def __enter__(self) -> SyntheticTraffic:
        self.step(0)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    binary = require_binary("prometheus")
    labeling = LabelingMetrics()
    desk = f"127.0.0.1:{labeling.start('127.0.0.1', 0)}"
    try:
        with (
            ServiceMetrics(port=0) as healthy,
            ServiceMetrics(port=0) as unhealthy,
            SyntheticTraffic(healthy, unhealthy, labeling, seed=7),
        ):
            good, bad = f"127.0.0.1:{healthy.port}", f"127.0.0.1:{unhealthy.port}"
            down = f"127.0.0.1:{free_port()}"
            targets = [good, bad, desk, down]
            with start_prometheus(targets, ALERTS, binary=binary) as prometheus:
                # Every live target scraped a few times, so rates and derivatives have data.
                prometheus.wait_for(
                    f'count_over_time(up{{job="{JOB}"}}[1m]) >= 4', lambda r: len(r) == 4
                )
                yield LiveStack(prometheus, healthy=good, unhealthy=bad, down=down, desk=desk)
    finally:
        labeling.stop()


def has_a_number(result: list[dict[str, Any]]) -> bool:
    """At least one series, and at least one value that is a number (Inf counts, NaN not)."""
    return any(not math.isnan(float(item["value"][1])) for item in result)


@pytest.mark.prometheus
def test_prometheus_scrapes_the_live_servers(live: LiveStack) -> None:
    health = {t["labels"]["instance"]: t["health"] for t in live.prometheus.targets()}
    assert health == {
        live.healthy: "up",
        live.unhealthy: "up",
        live.desk: "up",
        live.down: "down",
    }


@pytest.mark.prometheus
@pytest.mark.parametrize("query", dashboard_queries(), ids=lambda q: q.where)
def test_dashboard_query_returns_data(live: LiveStack, query: Query) -> None:
    result = live.prometheus.wait_for(query.expr, has_a_number, timeout=20)
    assert result


@pytest.mark.prometheus
@pytest.mark.parametrize("query", alert_queries(), ids=lambda q: q.where)
def test_alert_expression_returns_data_for_the_unhealthy_replica(
    live: LiveStack, query: Query
) -> None:
    result = live.prometheus.wait_for(query.expr, timeout=20)
    assert result


@pytest.mark.prometheus
def test_exactly_the_expected_alerts_go_pending(live: LiveStack) -> None:
    def key(item: dict[str, Any]) -> tuple[str, str]:
        """An alert by name and by what it is about: replica, dead-letter reason or topic."""
        labels = item["metric"]
        subject = labels.get("instance") or labels.get("reason") or labels["topic"]
        return labels["alertname"], subject

    expected = {
        ("StreamAlQueryRateOffBudget", live.unhealthy),
        ("StreamAlNoLabelsLearned", live.unhealthy),
        ("StreamAlDeadLettersRising", "not_json"),
        ("StreamAlConsumerLagGrowing", "samples"),
        ("StreamAlNotReady", live.unhealthy),
        ("StreamAlNotReady", live.down),
    }
    result = live.prometheus.wait_for(
        "ALERTS", lambda r: {key(item) for item in r} >= expected, timeout=30
    )
    assert {key(item) for item in result} == expected

    for group in live.prometheus.rule_groups():
        for rule in group["rules"]:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
