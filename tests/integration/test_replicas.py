"""Several replicas in one consumer group: samples shared, every label learned by each."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.demo.feeder import produce
from stream_al.demo.oracle import answer_queries
from tests.integration.harness import ServiceThread, read_topic, service_settings, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.usefixtures("kafka_client")]

SAMPLES = 2000


def test_replicas_share_the_samples_and_each_learns_every_label(kafka_bootstrap: str) -> None:
    first = service_settings(
        kafka_bootstrap, LearnerConfig(strategy=StrategyConfig(budget=0.1)), partitions=4
    )
    second = first.model_copy(update={"replica_id": first.replica_id + "-b"})
    oracle_stop, oracle_ready = threading.Event(), threading.Event()
    oracle = threading.Thread(
        target=answer_queries,
        args=(first, "bananas"),
        kwargs={"stop": oracle_stop, "ready": oracle_ready},
        daemon=True,
    )
    with ServiceThread(first) as a, ServiceThread(second) as b:
        replicas = (a.service, b.service)
        wait_until(
            lambda: all(r.readiness()["partitions_assigned"] for r in replicas),
            60,
            "both replicas to get partitions",
        )
        oracle.start()
        assert oracle_ready.wait(60)
        produce(first, "bananas", limit=SAMPLES, rate=1000)
        wait_until(
            lambda: sum(r.learner.samples_seen for r in replicas) == SAMPLES,
            120,
            "every sample to be scored by one replica",
        )
        queries = lambda: sum(r.learner.policy.queries for r in replicas)  # noqa: E731
        wait_until(
            lambda: all(r.learner.labels_learned == queries() for r in replicas),
            120,
            "each replica to learn every label",
        )
    oracle_stop.set()
    oracle.join(30)

    predictions = [
        json.loads(r.value) for r in read_topic(kafka_bootstrap, first.topics.predictions)
    ]
    per_id = Counter(p["id"] for p in predictions)
    assert len(per_id) == SAMPLES and max(per_id.values()) == 1
    assert all(r.learner.samples_seen > SAMPLES / 10 for r in replicas), "both took a share"
    labels = read_topic(kafka_bootstrap, first.topics.labels)
    assert all(r.learner.labels_learned == len(labels) for r in replicas)
    # The labels carry no features, as a person's answers do: each replica learned the
    # other's labels from the queries it read back from the oracle topic.
    assert all(json.loads(label.value)["features"] is None for label in labels)
    assert all(r.learner.labels_by_status["unknown_id"] == 0 for r in replicas)
