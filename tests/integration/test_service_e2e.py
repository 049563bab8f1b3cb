"""End to end on a real broker: a bundled dataset through the service and a simulated oracle."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.demo.feeder import produce
from stream_al.demo.oracle import answer_queries
from stream_al.service.dead_letters import (
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_TOPIC_HEADER,
)
from stream_al.sim.datasets import stream
from stream_al.sim.simulate import simulate
from tests.integration.harness import (
    ServiceThread,
    header,
    read_topic,
    send_raw,
    service_settings,
    wait_until,
)

pytestmark = pytest.mark.kafka

DATASET = "bananas"
BUDGET = 0.1
RATE = 250.0  # samples per second
MALFORMED: list[tuple[bytes | None, bytes, str]] = [
    (b"bad-1", b"\xff\xfe not utf-8", "not_json"),
    (b"bad-2", b"{this is not json", "not_json"),
    (b"bad-3", b'{"id": "nan", "features": {"x": NaN}}', "invalid_sample"),
    (b"bad-4", b'{"id": "", "features": {"x": 1}}', "invalid_sample"),
    (b"bad-5", b'{"id": "no-features"}', "invalid_sample"),
    (None, b"[" * 50_000, "not_json"),
]


def test_a_dataset_flows_through_the_service(kafka_bootstrap: str) -> None:
    # Naive Bayes: on bananas its accuracy barely moves with a few samples of label delay
    # (0.716-0.732 for delays of 0-40 samples), while a linear model, near chance on these
    # two interleaved shapes, swings by +-0.03; the service's labels arrive a few dozen
    # samples late where the simulation's arrive at once.
    learner = LearnerConfig(
        model=ModelConfig(name="naive-bayes"), strategy=StrategyConfig(budget=BUDGET)
    )
    # One partition: the service sees the samples in the simulation's order.
    settings = service_settings(kafka_bootstrap, learner, partitions=1)
    examples = list(stream(DATASET))
    truth = {example.id: example.label for example in examples}

    oracle_stop, oracle_ready = threading.Event(), threading.Event()
    oracle = threading.Thread(
        target=answer_queries,
        args=(settings, DATASET),
        kwargs={"stop": oracle_stop, "ready": oracle_ready},
        daemon=True,
    )
    with ServiceThread(settings) as running:
        oracle.start()
        # The simulation's labeler answers at once; here both consumer groups must have
        # joined before the stream starts, or the cold model waits seconds for its first labels.
        assert oracle_ready.wait(60), "the oracle was never assigned the oracle topic"
        wait_until(
            lambda: running.service.readiness()["partitions_assigned"],
            60,
            "the service's partition assignment",
        )
        # A live stream (labels come back within a few samples, as in the simulation), with
        # malformed messages arriving in the middle of it.
        feeder = threading.Thread(target=produce, args=(settings, DATASET), kwargs={"rate": RATE})
        feeder.start()
        time.sleep(len(examples) / RATE / 2)
        send_raw(kafka_bootstrap, settings.topics.samples, [(k, v) for k, v, _ in MALFORMED])
        feeder.join()
        learner_state = running.service.learner
        wait_until(
            lambda: learner_state.samples_seen == len(examples),
            timeout=300,
            what="every sample to be scored",
        )
        wait_until(
            lambda: learner_state.labels_learned == learner_state.policy.queries,
            timeout=120,
            what="every query to be answered and learned",
        )
        metrics = running.metrics
    oracle_stop.set()
    oracle.join(30)

    predictions = [
        json.loads(r.value) for r in read_topic(kafka_bootstrap, settings.topics.predictions)
    ]
    per_id = Counter(p["id"] for p in predictions)
    assert set(per_id) == set(truth), "every sample gets a prediction"
    assert max(per_id.values()) == 1, "and exactly one"

    queries = [json.loads(r.value) for r in read_topic(kafka_bootstrap, settings.topics.oracle)]
    query_rate = len(queries) / len(examples)
    assert abs(query_rate - BUDGET) <= 0.15 * BUDGET, f"query rate {query_rate:.4f}"
    assert {q["reason"] for q in queries} <= {"uncertain", "exploration", "warm-up"}
    assert sum(p["queried"] for p in predictions) == len(queries)

    accuracy = sum(p["label"] == truth[p["id"]] for p in predictions) / len(examples)
    offline = simulate(examples, learner, dataset=DATASET)
    assert abs(accuracy - offline.accuracy) <= 0.02, (accuracy, offline.accuracy)

    dead = read_topic(kafka_bootstrap, settings.topics.dead_letters)
    assert sorted(r.value for r in dead) == sorted(v for _, v, _ in MALFORMED)
    by_value = {v: reason for _, v, reason in MALFORMED}
    for record in dead:
        assert header(record, REASON_HEADER) == by_value[record.value]
        assert header(record, SOURCE_TOPIC_HEADER) == settings.topics.samples
        assert header(record, SOURCE_OFFSET_HEADER) is not None
    counted = metrics.registry.get_sample_value(
        "stream_al_samples_total", {"outcome": "dead_lettered"}
    )
    assert counted == len(MALFORMED)
