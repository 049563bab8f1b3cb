"""Observability end to end: a real Prometheus scrapes the service running on the real broker.

One service (the module's `stack`) runs for the whole module, wired as ``stream-al run`` wires
it (`ServiceMetrics` HTTP server, local checkpoints as in the compose file), with the
simulated oracle answering its queries and Prometheus scraping it every second with the
deploy alert rules loaded. The feeder streams a dataset with malformed samples in the middle,
and bad labels go straight to the labels topic. Then:

- a broker outage shows on ``/readyz`` (503 naming ``broker_reachable``, then 200), raises the
  not-ready alert, and the service rides it out and scores what arrives afterwards;
- every counter, as Prometheus reports it after the final scrape, equals what is on the topics;
- every dashboard and alert expression parses and returns data from the real service.

The service runs in a thread (`ServiceThread`) rather than as a ``stream-al run`` process: the
objects and the HTTP server are the ones `stream_al.service.runner.run_service` builds (only
signal handling differs, and that is not what is under test here), and a thread lets the test
check that the service is still alive and raised nothing through the outage, and wait on the
learner's own counters instead of sleeping. ``promtool check config`` and ``check rules`` on
the deploy files run in ``tests/unit/test_deploy_artifacts.py``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.demo.feeder import produce
from stream_al.demo.oracle import answer_queries
from stream_al.schemas import LabelMessage, Sample, encode
from stream_al.service.checkpointing import Checkpointer, open_store
from stream_al.service.dead_letters import REASON_HEADER, SOURCE_TOPIC_HEADER
from stream_al.settings import Settings
from stream_al.sim.datasets import Example, stream
from tests.integration.harness import (
    ServiceThread,
    header,
    read_topic,
    send_raw,
    service_settings,
    wait_until,
)
from tests.kafka_broker import BrokerHandle, LocalKafka
from tests.prometheus_server import (
    JOB,
    PrometheusQueryError,
    PrometheusServer,
    require_binary,
    start_prometheus,
    with_bool_comparisons,
)
from tests.unit.test_deploy_artifacts import ALERTS, alert_queries, dashboard_queries, has_a_number

pytestmark = [pytest.mark.kafka, pytest.mark.prometheus]

DATASET = "bananas"
BUDGET = 0.1
SAMPLES = 1500  # streamed by the feeder at the start
RATE = 500.0  # samples per second
AFTER_OUTAGE = 200  # sent once the broker is back
FRESH = 100  # sent before the dashboard is checked, so every rate window has traffic
MAX_MESSAGE_BYTES = 16_384
#: Seconds to wait for the service to take in what was sent (it needs about one).
SETTLE_TIMEOUT = 60.0

MALFORMED_SAMPLES: list[tuple[bytes | None, bytes]] = [
    (b"bad-1", b"\xff\xfe not utf-8"),
    (b"bad-2", b"{this is not json"),
    (b"bad-3", b'{"id": "nan", "features": {"x": NaN}}'),
    (b"bad-4", b'{"id": "no-features"}'),
    (None, b" " * (MAX_MESSAGE_BYTES + 1)),
]
#: The dead-letter reasons the scenario must produce, so no comparison below is vacuous.
EXPECTED_REASONS = {
    "not_json",
    "invalid_sample",
    "too_large",
    "invalid_label",
    "unknown_id",
    "duplicate",
}
#: What ``stream_al_labels_total{status}`` counts for a dead-lettered label of each reason.
LABEL_STATUS_OF_REASON = {
    "duplicate": "duplicate",
    "unknown_id": "unknown_id",
    "expired": "expired",
    "not_json": "invalid",
    "invalid_label": "invalid",
    "too_large": "invalid",
}


@dataclass
class Stack:
    """The service, its oracle and Prometheus, and how much the test has sent them."""

    bootstrap: str
    settings: Settings
    running: ServiceThread
    prometheus: PrometheusServer
    examples: list[Example]
    #: Valid samples sent so far: ``examples[:sent]``.
    sent: int = 0
    #: Label messages sent that the service must dead-letter.
    bad_labels: int = 0

    @property
    def instance(self) -> str:
        """The service's ``instance`` label in Prometheus."""
        return f"127.0.0.1:{self.running.metrics.port}"

    @property
    def service_alive(self) -> bool:
        return self.running.alive

    def send_samples(self, count: int) -> list[str]:
        """Send the next ``count`` samples of the dataset at once; return their ids."""
        batch = self.examples[self.sent : self.sent + count]
        assert len(batch) == count, "the dataset is too short for the scenario"
        send_raw(
            self.bootstrap,
            self.settings.topics.samples,
            [(e.id.encode(), encode(Sample(id=e.id, features=e.features))) for e in batch],
        )
        self.sent += count
        return [e.id for e in batch]

    def settle(self) -> None:
        """Wait until every sample sent is scored, every query learned, every bad label seen."""
        learner = self.running.service.learner
        registry = self.running.metrics.registry

        def rejected_labels() -> float:
            return sum(
                registry.get_sample_value("stream_al_labels_total", {"status": status}) or 0.0
                for status in set(LABEL_STATUS_OF_REASON.values())
            )

        # At least once: a batch replayed after a failed delivery is scored twice.
        wait_until(lambda: learner.samples_seen >= self.sent, SETTLE_TIMEOUT, "samples scored")
        wait_until(
            lambda: learner.labels_learned == learner.policy.queries,
            SETTLE_TIMEOUT,
            "every query to be answered and learned",
        )
        wait_until(
            # At least: the oracle answers a query again when its commit is lost to a
            # rebalance, and the service refuses the second answer as a duplicate.
            lambda: rejected_labels() >= self.bad_labels,
            SETTLE_TIMEOUT,
            "bad labels handled",
        )

    def await_scrape_after_settling(self) -> None:
        """Wait for a scrape that started after `settle` and after the gauges' next refresh.

        Counters do not move once settled; the learner gauges are refreshed every second.
        """
        after = time.time() + 1.5
        self.prometheus.wait_for(
            f'timestamp(up{{instance="{self.instance}"}}) > {after:.3f}', timeout=15
        )

    def readyz(self) -> tuple[int, dict[str, Any]]:
        """Status and JSON body of ``GET /readyz``."""
        try:
            with urllib.request.urlopen(f"{self.running.metrics.url}/readyz", timeout=5) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def await_readyz(self, status: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        code, body = self.readyz()
        while code != status:
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz still {code} {body} after {timeout} s")
            time.sleep(0.2)
            code, body = self.readyz()
        return body

    def scraped(self, metric: str, by: str | None = None) -> dict[str, float]:
        """The service's ``metric`` as Prometheus has it, keyed by label ``by`` (or ``""``)."""
        result = self.prometheus.query(f'{metric}{{instance="{self.instance}"}}')
        assert result, f"Prometheus has no {metric} for {self.instance}"
        values = {
            item["metric"].get(by, "") if by else "": float(item["value"][1]) for item in result
        }
        assert len(values) == len(result), f"{metric} has several series per {by}: {result}"
        return values

    def pending_alerts(self, name: str) -> list[dict[str, Any]]:
        return self.prometheus.query(f'ALERTS{{alertname="{name}", alertstate="pending"}}')


@pytest.fixture(scope="module")
def stack(kafka_broker: BrokerHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The running stack, after the feeder's stream, malformed samples and bad labels."""
    prometheus_binary = require_binary("prometheus")
    # Module fixtures are set up before the per-test hook that restarts a broker an earlier
    # test left stopped, so do it here.
    if kafka_broker.local is not None and not kafka_broker.local.is_running():
        kafka_broker.local.start()
    bootstrap = kafka_broker.bootstrap
    learner = LearnerConfig(
        model=ModelConfig(name="logreg"), strategy=StrategyConfig(budget=BUDGET)
    )
    settings = service_settings(
        bootstrap,
        learner,
        max_message_bytes=MAX_MESSAGE_BYTES,
        # As deployed (docker-compose): local checkpoints, which the dashboard shows the age of.
        checkpoint={"directory": tmp_path_factory.mktemp("checkpoints")},
    )
    store = open_store(settings)
    assert store is not None
    examples = list(stream(DATASET))
    oracle_stop, oracle_ready = threading.Event(), threading.Event()

    with (
        ServiceThread(settings, checkpointer=Checkpointer(settings, store)) as running,
        start_prometheus(
            [f"127.0.0.1:{running.metrics.port}"], ALERTS, binary=prometheus_binary
        ) as prometheus,
    ):
        stack = Stack(bootstrap, settings, running, prometheus, examples)
        pool = ThreadPoolExecutor(2, thread_name_prefix="observability")
        oracle: Future[int] = pool.submit(
            answer_queries, settings, DATASET, stop=oracle_stop, ready=oracle_ready
        )
        try:
            assert oracle_ready.wait(60), "the oracle was never assigned the oracle topic"
            wait_until(
                lambda: running.service.readiness()["partitions_assigned"],
                60,
                "the service's partition assignment",
            )
            # Scraped, under the job the alert rules select on, before any event: Prometheus
            # has seen every counter at zero, so increase() counts the first events too.
            prometheus.wait_for(f'up{{job="{JOB}", instance="{stack.instance}"}} == 1', timeout=30)

            feeder = pool.submit(produce, settings, DATASET, rate=RATE, limit=SAMPLES)
            time.sleep(SAMPLES / RATE / 2)
            send_raw(bootstrap, settings.topics.samples, MALFORMED_SAMPLES)
            assert feeder.result(timeout=60) == SAMPLES
            stack.sent = SAMPLES
            stack.settle()

            # Bad labels, straight onto the labels topic: a redelivered answer (its sample is
            # learned already), an unknown id without features, invalid JSON, no label.
            answered = read_topic(bootstrap, settings.topics.labels)
            assert answered, "the oracle answered nothing"
            unknown = LabelMessage(id="never-sampled", label=examples[0].label)
            bad_labels = [
                (answered[0].key, answered[0].value),
                (b"never-sampled", encode(unknown)),
                (b"broken", b'{"id": "broken", "label": '),
                (b"no-label", b'{"id": "no-label"}'),
            ]
            send_raw(bootstrap, settings.topics.labels, bad_labels)
            stack.bad_labels = len(bad_labels)
            stack.settle()

            yield stack
        finally:
            oracle_stop.set()
            oracle.result(timeout=30)  # re-raises what stopped the oracle, if anything did
            pool.shutdown()


def test_readyz_follows_the_broker_and_the_service_rides_out_the_outage(
    stack: Stack, local_kafka: LocalKafka
) -> None:
    assert stack.readyz()[0] == 200
    try:
        local_kafka.stop()
        body = stack.await_readyz(503, timeout=15)
        assert body["checks"]["broker_reachable"] is False, body
        assert "broker_reachable" in body["failing"], body

        # Operators see it: the readiness gauge drops and the not-ready alert goes pending.
        stack.prometheus.wait_for(
            f'stream_al_ready{{instance="{stack.instance}"}} == 0', timeout=15
        )
        stack.prometheus.wait_for(
            'ALERTS{alertname="StreamAlNotReady", alertstate="pending"}',
            lambda r: {item["metric"]["instance"] for item in r} == {stack.instance},
            timeout=15,
        )
        assert stack.service_alive, f"the service died in the outage: {stack.running.error!r}"
    finally:
        local_kafka.start()

    body = stack.await_readyz(200, timeout=60)
    assert body["failing"] == [], body
    assert stack.service_alive, f"the service died after the outage: {stack.running.error!r}"

    # It resumes: samples sent after the broker returned are scored and published.
    new_ids = stack.send_samples(AFTER_OUTAGE)
    stack.settle()
    predicted = {
        json.loads(record.value)["id"]
        for record in read_topic(stack.bootstrap, stack.settings.topics.predictions)
    }
    assert set(new_ids) <= predicted, f"{len(set(new_ids) - predicted)} new samples unscored"

    stack.prometheus.wait_for('ALERTS{alertname="StreamAlNotReady"}', lambda r: not r, timeout=15)
    assert stack.service_alive


def dead_letter_reasons(records: list[ConsumerRecord], source_topic: str) -> Counter[str]:
    """Dead letters by their reason header, for messages read from ``source_topic``."""
    return Counter(
        str(header(record, REASON_HEADER))
        for record in records
        if header(record, SOURCE_TOPIC_HEADER) == source_topic
    )


def test_metric_values_agree_with_what_is_on_the_topics(stack: Stack) -> None:
    stack.settle()
    stack.await_scrape_after_settling()
    topics = stack.settings.topics
    samples = read_topic(stack.bootstrap, topics.samples)
    predictions = [json.loads(r.value) for r in read_topic(stack.bootstrap, topics.predictions)]
    queries = [json.loads(r.value) for r in read_topic(stack.bootstrap, topics.oracle)]
    labels = read_topic(stack.bootstrap, topics.labels)
    dead = read_topic(stack.bootstrap, topics.dead_letters)
    dead_samples = dead_letter_reasons(dead, topics.samples)
    dead_labels = dead_letter_reasons(dead, topics.labels)
    assert dead_samples.total() + dead_labels.total() == len(dead), "dead letter of unknown source"
    assert set(dead_samples) | set(dead_labels) == EXPECTED_REASONS

    # Samples: every valid one sent is scored and predicted, every malformed one dead-lettered.
    scored = stack.scraped("stream_al_samples_total", by="outcome")
    assert scored["scored"] == len(predictions)
    assert {p["id"] for p in predictions} == {e.id for e in stack.examples[: stack.sent]}
    assert len(samples) == stack.sent + len(MALFORMED_SAMPLES)
    assert scored["dead_lettered"] == dead_samples.total() == len(MALFORMED_SAMPLES)
    assert stack.scraped("stream_al_predictions_total") == {"": len(predictions)}

    # Queries: the total and each reason, as on the oracle topic.
    by_reason = stack.scraped("stream_al_queries_total", by="reason")
    on_topic = Counter(query["reason"] for query in queries)
    assert set(on_topic) <= set(by_reason), on_topic
    assert by_reason == {reason: on_topic.get(reason, 0) for reason in by_reason}
    assert sum(by_reason.values()) == len(queries) == sum(p["queried"] for p in predictions)

    # Labels: every one read is learned or dead-lettered; the oracle answered every query once.
    statuses = stack.scraped("stream_al_labels_total", by="status")
    learned = len(labels) - dead_labels.total()
    assert statuses["learned"] == learned == len(queries)
    assert stack.scraped("stream_al_labels_learned") == {"": learned}
    rejected = Counter[str]()
    for reason, count in dead_labels.items():
        rejected[LABEL_STATUS_OF_REASON[reason]] += count
    assert {s: v for s, v in statuses.items() if s != "learned"} == {
        status: rejected.get(status, 0) for status in statuses if status != "learned"
    }

    # Dead letters: by reason header, samples and labels together.
    all_reasons = dead_samples + dead_labels
    dead_letters = stack.scraped("stream_al_dead_letters_total", by="reason")
    assert set(all_reasons) <= set(dead_letters)
    assert dead_letters == {reason: all_reasons.get(reason, 0) for reason in dead_letters}


def test_every_dashboard_and_alert_expression_returns_data_from_the_service(
    stack: Stack,
) -> None:
    # Fresh traffic, so every rate window of the dashboard holds events, as on a live service.
    stack.send_samples(FRESH)
    stack.settle()
    stack.await_scrape_after_settling()
    prometheus = stack.prometheus

    problems: list[str] = []
    # The labeling apps' panels read the apps' own endpoint, which this stack does not run:
    # tests/unit/test_deploy_artifacts.py checks them against a live labeling app.
    service_queries = [q for q in dashboard_queries() if "stream_al_labeling_" not in q.expr]
    for query in service_queries:
        try:
            result = prometheus.query(query.expr)
        except PrometheusQueryError as error:
            problems.append(f"{query.where}: {error}")
            continue
        if not has_a_number(result):
            problems.append(f"{query.where}: {query.expr} gives {result}")
    conditions: dict[str, list[dict[str, Any]]] = {}
    for query in alert_queries():
        try:
            conditions[query.where] = prometheus.query(query.expr)
            verdicts = prometheus.query(with_bool_comparisons(query.expr))
        except PrometheusQueryError as error:
            problems.append(f"{query.where}: {error}")
            continue
        if not has_a_number(verdicts):
            problems.append(f"{query.where}: {with_bool_comparisons(query.expr)} gives {verdicts}")
    assert not problems, "\n".join(problems)

    # The conditions themselves, on a healthy service that has dead-lettered messages.
    dead = read_topic(stack.bootstrap, stack.settings.topics.dead_letters)
    reasons = {str(header(record, REASON_HEADER)) for record in dead}
    rising = conditions["alert StreamAlDeadLettersRising"]
    assert {item["metric"]["reason"] for item in rising} == reasons
    for healthy in ("StreamAlNoLabelsLearned", "StreamAlConsumerLagGrowing", "StreamAlNotReady"):
        assert conditions[f"alert {healthy}"] == [], healthy

    for group in prometheus.rule_groups():
        for rule in group["rules"]:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    assert {
        item["metric"]["reason"] for item in stack.pending_alerts("StreamAlDeadLettersRising")
    } == reasons
    assert stack.service_alive
