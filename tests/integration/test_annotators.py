"""Several annotators per item on the real broker: each item learned once, from the
aggregate of k answers; the labelers' backlog read from their group's lag."""

from __future__ import annotations

import threading

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.demo.oracle import answer_queries
from stream_al.schemas import LabelMessage, Query, Sample, encode
from stream_al.service.app import Service
from stream_al.service.metrics import ServiceMetrics
from stream_al.sim.datasets import stream
from tests.integration.harness import read_topic, send_raw, service_settings, step_until

pytestmark = pytest.mark.kafka

ITEMS = 8


def test_two_annotators_answers_are_learned_once_from_their_aggregate(
    kafka_bootstrap: str,
) -> None:
    learner = LearnerConfig(strategy=StrategyConfig(name="random", budget=1.0, warmup=0))
    settings = service_settings(
        kafka_bootstrap,
        learner,
        partitions=1,
        labeling={"annotators_per_item": 2, "backlog_poll_seconds": 0.2},
    )
    service = Service(settings, metrics=ServiceMetrics(port=0))
    registry = service.metrics.registry

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    service.connect()
    try:
        samples = [Sample(id=f"s{i}", features={"x": float(i)}) for i in range(ITEMS)]
        send_raw(
            kafka_bootstrap, settings.topics.samples, [(s.id.encode(), encode(s)) for s in samples]
        )
        step_until(service, lambda: service.learner.policy.queries == ITEMS, 60, "every query")
        queries = [
            Query.model_validate_json(r.value)
            for r in read_topic(kafka_bootstrap, settings.topics.oracle)
        ]
        assert sorted(q.id for q in queries) == sorted(s.id for s in samples)

        # No labeler has committed yet: every query waits.
        step_until(
            service,
            lambda: value("stream_al_labelers_backlog_messages") == ITEMS,
            60,
            "the labelers' backlog to be read",
        )
        # The labelers have answered 3 of the 8 queries: a backlog of 5.
        labelers = KafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=settings.labeling.group_id,
            enable_auto_commit=False,
        )
        try:
            oracle = TopicPartition(settings.topics.oracle, 0)
            labelers.assign([oracle])
            labelers.commit({oracle: OffsetAndMetadata(3, "", -1)})
        finally:
            labelers.close()
        step_until(
            service,
            lambda: value("stream_al_labelers_backlog_messages") == ITEMS - 3,
            60,
            "the labelers' commit to show in their backlog",
        )

        truth = {s.id: "big" if s.features["x"] >= ITEMS / 2 else "small" for s in samples}
        first = [LabelMessage(id=i, label=label, annotator="ann") for i, label in truth.items()]
        # ann answers s0 twice: the second answer is not counted.
        first.append(LabelMessage(id="s0", label="big", annotator="ann"))
        send_raw(
            kafka_bootstrap, settings.topics.labels, [(m.id.encode(), encode(m)) for m in first]
        )
        step_until(
            service,
            lambda: value("stream_al_answers_total", answer="label") == ITEMS + 1,
            60,
            "the first annotator's answers",
        )
        assert service.learner.labels_learned == 0
        step_until(
            service,
            lambda: value("stream_al_items_awaiting_answers") == ITEMS,
            30,
            "the items awaiting a second answer to be shown",
        )
        assert value("stream_al_labels_total", status="duplicate") == 1

        # bob agrees, except on s1 (a tie: the answer that came first, ann's, wins).
        second = [
            LabelMessage(id=i, label="big" if i == "s1" else label, annotator="bob")
            for i, label in truth.items()
        ]
        send_raw(
            kafka_bootstrap, settings.topics.labels, [(m.id.encode(), encode(m)) for m in second]
        )
        step_until(
            service,
            lambda: service.learner.labels_learned == ITEMS,
            60,
            "every item to be learned from two answers",
        )
        assert value("stream_al_labels_total", status="learned") == ITEMS
        assert value("stream_al_answers_total", answer="label") == 2 * ITEMS + 1
        assert service.learner.aggregator.open_items == 0
        step_until(
            service,
            lambda: value("stream_al_annotator_votes", annotator="bob") == ITEMS,
            30,
            "the agreement gauges",
        )
        assert value("stream_al_annotator_agreement_ratio", annotator="ann") == 1.0
        assert value("stream_al_annotator_agreement_ratio", annotator="bob") == (ITEMS - 1) / ITEMS
        assert set(service.learner.classes) == {"big", "small"}
    finally:
        service.close()


def test_the_simulated_oracle_plays_k_annotators_with_their_own_noise(
    kafka_bootstrap: str,
) -> None:
    learner = LearnerConfig(strategy=StrategyConfig(budget=0.3, warmup=5))
    settings = service_settings(
        kafka_bootstrap, learner, partitions=1, labeling={"annotators_per_item": 3}
    )
    stop, ready = threading.Event(), threading.Event()
    oracle = threading.Thread(
        target=answer_queries,
        args=(settings, "phishing"),
        kwargs={"stop": stop, "ready": ready, "annotators": (0.0, 0.3, 0.3, 0.3)},
        daemon=True,
    )
    service = Service(settings, metrics=ServiceMetrics(port=0))
    registry = service.metrics.registry
    service.connect()
    oracle.start()
    try:
        assert ready.wait(60), "the oracle was never assigned the oracle topic"
        examples = list(stream("phishing", limit=200))
        send_raw(
            kafka_bootstrap,
            settings.topics.samples,
            [(e.id.encode(), encode(Sample(id=e.id, features=e.features))) for e in examples],
        )
        state = service.learner
        step_until(
            service,
            lambda: (
                state.samples_seen == len(examples) and state.labels_learned == state.policy.queries
            ),
            90,
            "every queried sample to be learned from three answers",
        )
    finally:
        stop.set()
        oracle.join(30)
        service.close()
    queries = state.policy.queries
    answers = registry.get_sample_value("stream_al_answers_total", {"answer": "label"})
    assert queries > 20 and answers == 3 * queries
    assert registry.get_sample_value("stream_al_labels_total", {"status": "learned"}) == queries
    assert registry.get_sample_value("stream_al_labels_total", {"status": "duplicate"}) == 0
    votes = {a: s.votes for a, s in state.aggregator.agreement.items()}
    assert set(votes) <= {f"simulated-{i}" for i in range(1, 5)}
    assert sum(votes.values()) == 3 * queries
    agreement = {a: s.rate for a, s in state.aggregator.agreement.items()}
    assert agreement["simulated-1"] > max(agreement[f"simulated-{i}"] for i in (2, 3, 4))
