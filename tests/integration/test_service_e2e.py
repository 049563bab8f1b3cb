"""End to end on a real broker: a bundled dataset through the service and a simulated oracle."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
from kafka import KafkaProducer

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.core.learner import Scored
from stream_al.demo.oracle import answer_queries
from stream_al.schemas import Sample, encode
from stream_al.service.app import Service
from stream_al.service.dead_letters import (
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_TOPIC_HEADER,
)
from stream_al.service.metrics import ServiceMetrics
from stream_al.sim.datasets import Example, stream
from stream_al.sim.simulate import simulate
from tests.integration.harness import (
    header,
    read_topic,
    service_settings,
    step_until,
    until_learned,
)

pytestmark = [pytest.mark.kafka, pytest.mark.usefixtures("kafka_client")]

DATASET = "bananas"
BUDGET = 0.1
MALFORMED: list[tuple[bytes | None, bytes, str]] = [
    (b"bad-1", b"\xff\xfe not utf-8", "not_json"),
    (b"bad-2", b"{this is not json", "not_json"),
    (b"bad-3", b'{"id": "nan", "features": {"x": NaN}}', "invalid_sample"),
    (b"bad-4", b'{"id": "", "features": {"x": 1}}', "invalid_sample"),
    (b"bad-5", b'{"id": "no-features"}', "invalid_sample"),
    (None, b"[" * 50_000, "not_json"),
]


def test_a_dataset_flows_through_the_service(kafka_bootstrap: str) -> None:
    learner = LearnerConfig(
        model=ModelConfig(name="naive-bayes"), strategy=StrategyConfig(budget=BUDGET)
    )
    # One partition: the service sees the samples in the simulation's order.
    settings = service_settings(kafka_bootstrap, learner, partitions=1)
    examples = list(stream(DATASET))
    truth = {example.id: example.label for example in examples}

    # The simulation learns each label before the next sample; so does the service here:
    # the stream goes out in runs that end at each sample the simulation asked about, and the
    # next run waits until the service has learned that run's labels. The service then has
    # the same samples and labels at the same points, and must make the same decisions.
    offline_decisions: dict[str, tuple[str | None, bool]] = {}
    asked_at: list[int] = []

    def note(example: Example, scored: Scored) -> None:
        offline_decisions[example.id] = (scored.label, scored.queried)
        if scored.queries:
            asked_at.append(len(offline_decisions))

    offline = simulate(examples, learner, dataset=DATASET, on_scored=note)
    runs = list(zip([0, *asked_at], [*asked_at, len(examples)], strict=True))
    malformed_after = len(runs) // 2

    oracle_stop, oracle_ready = threading.Event(), threading.Event()
    oracle = threading.Thread(
        target=answer_queries,
        args=(settings, DATASET),
        kwargs={"stop": oracle_stop, "ready": oracle_ready},
        daemon=True,
    )
    service = Service(settings, metrics=ServiceMetrics(port=0))
    service.connect()
    oracle.start()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=0)
    try:
        assert oracle_ready.wait(60), "the oracle was never assigned the oracle topic"
        step_until(
            service,
            lambda: service.readiness()["partitions_assigned"],
            60,
            "the service's partition assignment",
        )
        for number, (start, end) in enumerate(runs):
            for example in examples[start:end]:
                sample = Sample(id=example.id, features=example.features)
                producer.send(
                    settings.topics.samples, key=example.id.encode(), value=encode(sample)
                )
            if number == malformed_after:  # bad input in the middle of the stream
                for key, value, _ in MALFORMED:
                    producer.send(settings.topics.samples, key=key, value=value)
            producer.flush()
            until_learned(service, end)
        service._update_gauges()
        lag = service.metrics.registry.get_sample_value(
            "stream_al_consumer_lag_messages",
            {"topic": settings.topics.samples, "partition": "0"},
        )
        assert lag == 0, f"consumer lag {lag} once every sample is scored"
    finally:
        producer.close()
        oracle_stop.set()
        oracle.join(30)
        service.close()

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

    decisions = {p["id"]: (p["label"], p["queried"]) for p in predictions}
    differing = [i for i in offline_decisions if decisions[i] != offline_decisions[i]]
    assert not differing, (
        f"{len(differing)} decisions differ from the simulation's, from {differing[:1]}"
    )
    accuracy = sum(p["label"] == truth[p["id"]] for p in predictions) / len(examples)
    assert accuracy == offline.accuracy

    dead = read_topic(kafka_bootstrap, settings.topics.dead_letters)
    assert sorted(r.value for r in dead) == sorted(v for _, v, _ in MALFORMED)
    by_value = {v: reason for _, v, reason in MALFORMED}
    for record in dead:
        assert header(record, REASON_HEADER) == by_value[record.value]
        assert header(record, SOURCE_TOPIC_HEADER) == settings.topics.samples
        assert header(record, SOURCE_OFFSET_HEADER) is not None
    counted = service.metrics.registry.get_sample_value(
        "stream_al_samples_total", {"outcome": "dead_lettered"}
    )
    assert counted == len(MALFORMED)
