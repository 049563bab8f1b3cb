"""Your own data on a real broker: a file, a team's flat events, a text model, a warm restart."""

from __future__ import annotations

import csv
import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner, Scored
from stream_al.demo.feeder import produce
from stream_al.demo.oracle import answer_queries
from stream_al.service.app import Service
from stream_al.service.metrics import ServiceMetrics
from stream_al.settings import Settings, load_settings
from stream_al.sim.datasets import Example, stream
from stream_al.sim.files import read_examples
from stream_al.sim.simulate import simulate
from tests import text_models
from tests.integration.harness import (
    read_topic,
    send_raw,
    service_settings,
    step_until,
    until_learned,
)

pytestmark = pytest.mark.kafka


@contextmanager
def oracle_answering(
    settings: Settings, examples: list[Example], **options: object
) -> Iterator[None]:
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=answer_queries,
        args=(settings, examples),
        kwargs={"stop": stop, "ready": ready, **options},
        daemon=True,
    )
    thread.start()
    try:
        assert ready.wait(60), "the oracle was never assigned the oracle topic"
        yield
    finally:
        stop.set()
        thread.join(30)


def _write_own_csv(path: Path, rows: int, seed: int) -> None:
    """Strings, booleans, numbers, missing values, and a class that appears late."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order", "amount", "country", "returning", "score", "y"])
        for i in range(rows):
            amount = rng.gauss(0, 1)
            returning = rng.random() < 0.5
            score = "" if rng.random() < 0.05 else f"{amount + rng.gauss(0, 0.5):.3f}"
            if i > rows * 2 // 3 and amount > 1.0:
                label = "vip"  # the late class
            else:
                label = "keep" if amount + (0.6 if returning else 0.0) > 0.2 else "churn"
            country = rng.choice(["NL", "DE", "FR", ""])
            writer.writerow([f"o-{i}", f"{amount:.4f}", country, returning, score, label])


@pytest.mark.usefixtures("kafka_client")  # decisions and replay alike on both
def test_a_csv_gives_the_same_decisions_in_the_simulator_and_the_service(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    data_file = tmp_path / "orders.csv"
    _write_own_csv(data_file, 1200, seed=5)
    config_file = tmp_path / "stream_al.toml"
    config_file.write_text("[learner.strategy]\nbudget = 0.06\nwarmup = 10\nhead_start = 200\n")
    learner = load_settings(config_file).learner
    examples = read_examples(data_file, "y", "order").examples
    assert any(e.label == "vip" for e in examples[800:]) and all(
        e.label != "vip" for e in examples[:800]
    )
    settings = service_settings(kafka_bootstrap, learner, partitions=1)

    # As in the bundled-dataset test: the stream goes out in runs ending at each sample
    # the simulation asked about, so the service learns each label at the same point.
    offline: dict[str, tuple[str | None, bool]] = {}
    asked_at: list[int] = []

    def note(example: Example, scored: Scored) -> None:
        offline[example.id] = (scored.label, scored.queried)
        if scored.queries:
            asked_at.append(len(offline))

    simulate(examples, learner, on_scored=note)
    runs = list(zip([0, *asked_at], [*asked_at, len(examples)], strict=True))

    service = Service(settings, metrics=ServiceMetrics(port=0))
    service.connect()
    try:
        with oracle_answering(settings, examples):
            step_until(
                service,
                lambda: service.readiness()["partitions_assigned"],
                60,
                "the partition assignment",
            )
            for start, end in runs:
                produce(settings, examples[start:end])
                until_learned(service, end)
    finally:
        service.close()

    predictions = [
        json.loads(r.value) for r in read_topic(kafka_bootstrap, settings.topics.predictions)
    ]
    online = {p["id"]: (p["label"], p["queried"]) for p in predictions}
    assert len(online) == len(examples)
    differing = [i for i in offline if online[i] != offline[i]]
    assert not differing, f"{len(differing)} decisions differ, from {differing[:1]}"
    assert "vip" in {label for label, _ in online.values()}, "the late class is learned"


def test_flat_text_events_are_scored_through_a_mapping_and_a_model_factory(
    kafka_bootstrap: str,
) -> None:
    reviews = text_models.reviews(600, seed=11)
    learner = LearnerConfig(
        model=ModelConfig(factory="tests.text_models:bag_of_words"),
        strategy=StrategyConfig(budget=0.1, warmup=10),
    )
    mapping = {
        "format": "mapped",
        "id_field": "review_id",
        "feature_fields": ["text"],
        "metadata_fields": ["shop"],
    }
    settings = service_settings(kafka_bootstrap, learner, mapping=mapping)
    events = [
        (
            r.id.encode(),
            json.dumps({"review_id": r.id, "text": r.features["text"], "shop": "s1"}).encode(),
        )
        for r in reviews
    ]
    service = Service(settings, metrics=ServiceMetrics(port=0))
    service.connect()
    try:
        with oracle_answering(settings, reviews):
            # In steps, so that labels come back while the stream goes on.
            for start in range(0, len(events), 30):
                send_raw(kafka_bootstrap, settings.topics.samples, events[start : start + 30])
                until_learned(service, min(start + 30, len(reviews)))
    finally:
        service.close()

    predictions = [
        json.loads(r.value) for r in read_topic(kafka_bootstrap, settings.topics.predictions)
    ]
    assert {p["id"] for p in predictions} == {r.id for r in reviews}
    assert all(p["metadata"] == {"shop": "s1"} for p in predictions)
    truth = {r.id: r.label for r in reviews}
    late = [p for p in predictions if int(p["id"].split("-")[1]) >= 300]
    accuracy = sum(p["label"] == truth[p["id"]] for p in late) / len(late)
    assert accuracy > 0.85, accuracy
    assert not read_topic(kafka_bootstrap, settings.topics.dead_letters, idle_seconds=1)


def _accuracy(learner: ActiveLearner, examples: list[Example]) -> float:
    right = 0
    for example in examples:
        proba = learner.model.predict_proba_one(example.features)
        right += bool(proba) and max(proba, key=proba.__getitem__) == example.label
    return right / len(examples)


@pytest.mark.usefixtures("kafka_client")  # decisions and replay alike on both
def test_a_restart_without_checkpoint_is_warm_from_the_labels_topic(kafka_bootstrap: str) -> None:
    learner = LearnerConfig(strategy=StrategyConfig(budget=0.05))
    # One partition: the order the service learned its labels in is then the topic's
    # order, so the replayed model must be the very same model. (Across partitions the
    # replay follows write time, which is close to, not always, the order learned.)
    settings = service_settings(kafka_bootstrap, learner, partitions=1)
    examples = list(stream("sea", seed=3, limit=4000))
    before = Service(settings, metrics=ServiceMetrics(port=0))
    before.connect()
    try:
        with oracle_answering(settings, examples, echo_features=True):
            step_until(
                before,
                lambda: before.readiness()["partitions_assigned"],
                60,
                "the partition assignment",
            )
            # In steps, so that labels come back while the stream goes on (as in
            # production): all at once, a fast client scores the whole stream with a
            # model that has not learned yet, and asks worse questions.
            for start in range(0, len(examples), 250):
                produce(settings, examples[start : start + 250])
                until_learned(before, start + 250, timeout=120)
    finally:
        before.close()
    assert before.learner.labels_learned > 150

    # A new deployment, no checkpoint: it reads the labels topic first.
    warm_settings = Settings(**{**settings.model_dump(), "warm_start": {"replay_labels": True}})
    after = Service(warm_settings, metrics=ServiceMetrics(port=0))
    after.connect()
    try:
        assert after.learner.labels_learned == before.learner.labels_learned
        assert after.learner.policy.queries == 0  # history costs no budget
        assert not after.learner.policy.in_warmup  # and the model needs no warm-up
    finally:
        after.close()
    following = list(stream("sea", seed=4, limit=1000))
    warm = [after.learner.model.predict_proba_one(e.features) for e in following]
    ran = [before.learner.model.predict_proba_one(e.features) for e in following]
    assert warm == ran
    assert _accuracy(before.learner, following) > 0.85
    cold = ActiveLearner(learner)
    assert _accuracy(cold, following) == 0.0  # what a restart gave before
    # The labels read at start are not read again (they would be dead-lettered as duplicates).
    labels_on_topic = len(read_topic(kafka_bootstrap, settings.topics.labels))
    assert sum(after.label_offsets.values()) == labels_on_topic
