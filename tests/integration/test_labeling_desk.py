"""The labeling desk and the terminal labeler on the real broker (no service: queries are
written to the oracle topic as the service writes them)."""

from __future__ import annotations

import io
import json
import urllib.request
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_al.core.config import LearnerConfig
from stream_al.labeling.run import running_desk
from stream_al.labeling.terminal import label_in_terminal
from stream_al.schemas import Query, encode
from stream_al.settings import Settings
from tests.integration.harness import read_topic, service_settings, wait_until

pytestmark = pytest.mark.kafka


def settings_for(bootstrap: str) -> Settings:
    settings = service_settings(bootstrap, LearnerConfig(), partitions=1)
    labeling = type(settings.labeling)(
        group_id=f"{settings.group_id}-labelers", port=0, metrics_port=0, lease_seconds=30.0
    )
    return settings.model_copy(update={"labeling": labeling})


def write_queries(settings: Settings, uncertainties: list[float]) -> list[str]:
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    ids = []
    for number, uncertainty in enumerate(uncertainties):
        query = Query(
            id=f"q-{number}",
            features={"x": float(number)},
            predicted_label="cat",
            probabilities={"cat": 0.7, "dog": 0.3},
            uncertainty=uncertainty,
            strategy="adaptive",
            reason="uncertain",
            threshold=0.2,
            created_at=datetime.now(UTC),
            classes=("cat", "dog"),
        )
        producer.send(settings.topics.oracle, key=query.id.encode(), value=encode(query))
        ids.append(query.id)
    producer.flush()
    producer.close()
    return ids


def committed(settings: Settings) -> int | None:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers, group_id=settings.labeling.group_id
    )
    try:
        return consumer.committed(TopicPartition(settings.topics.oracle, 0))
    finally:
        consumer.close()


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("stream_al_labeling_") and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_the_terminal_labeler_answers_with_number_keys_and_commits_what_was_delivered(
    kafka_bootstrap: str,
) -> None:
    settings = settings_for(kafka_bootstrap)
    write_queries(settings, [0.1, 0.9, 0.5, 0.3])
    # Most uncertain first: q-1 cat, q-2 skip, undo q-2 -> dog, q-3 a new class, then quit
    # before q-0 (it stays uncommitted for the next labeler).
    keys = io.StringIO("1\n0\nu\n2\nn\nhamster\nq\n")
    screen = io.StringIO()
    with running_desk(settings) as desk:
        assert desk.ready.wait(60)
        wait_until(lambda: len(desk.queue) == 4, 30, "the queries fetched")
        answered = label_in_terminal(desk, "tess", keys=keys, out=screen)
        port = desk.metrics.port
        assert port is not None
        metrics = scrape(port)
    assert answered == 4
    answers = [json.loads(r.value) for r in read_topic(kafka_bootstrap, settings.topics.labels)]
    assert [(a["id"], a["label"], a["skipped"], a["corrects"]) for a in answers] == [
        ("q-1", "cat", False, False),
        ("q-2", None, True, False),
        ("q-2", "dog", False, True),
        ("q-3", "hamster", False, False),
    ]
    assert {a["annotator"] for a in answers} == {"tess"}
    assert "item q-1 -- uncertain (uncertainty 0.90" in screen.getvalue()
    assert "correcting your answer (it was: don't know)" in screen.getvalue()
    # q-0 (offset 0) was never answered: nothing may be committed past it.
    assert committed(settings) in (None, 0)
    kinds = {k: v for k, v in metrics.items() if k.startswith("stream_al_labeling_answers_total")}
    assert kinds['stream_al_labeling_answers_total{kind="label"}'] == 2
    assert kinds['stream_al_labeling_answers_total{kind="skip"}'] == 1
    assert kinds['stream_al_labeling_answers_total{kind="correction"}'] == 1
    assert metrics["stream_al_labeling_answer_seconds_count"] == 3


def test_a_desk_that_goes_away_leaves_its_unanswered_items_to_the_next(
    kafka_bootstrap: str,
) -> None:
    settings = settings_for(kafka_bootstrap)
    ids = write_queries(settings, [0.9, 0.8, 0.7])
    with running_desk(settings) as first:
        assert first.ready.wait(60)
        wait_until(lambda: len(first.queue) == 3, 30, "the queries fetched")
        held = first.items("ann")
        assert [q.id for q in held] == ids[:2]
        first.answer("ann", ids[0], "cat")
        wait_until(lambda: committed(settings) == 1, 30, "the answered item committed")
        # ann also held ids[1] (prefetched) but never answered it; the desk goes away.
    with running_desk(settings) as second:
        assert second.ready.wait(60)
        wait_until(lambda: len(second.queue) == 2, 30, "the queries fetched again")
        assert [q.id for q in second.items("bob")] == ids[1:]
