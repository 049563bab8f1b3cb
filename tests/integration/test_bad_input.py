"""Malformed samples and labels on a real broker: dead-lettered, counted, and harmless.

Thousands of bad messages (random bytes, invalid UTF-8, wrong types, NaN and infinity,
messages over ``max_message_bytes``, deep nesting, empty and enormous ids and keys, null
records, labels outside the configured classes, labels for ids never queried, second labels
for ids already learned) are interleaved with a good stream. Every bad message must reach
the dead-letter topic with its reason, the counters must match what was sent, the service
must keep going, and the model must end up exactly as a run of the good stream alone.

For that comparison the order of learning must not depend on timing, so the test drives
``Service.step()`` itself and moves in phases on one partition: a chunk of samples, all
scored; then the labels for that chunk's queries, all learned; then the next chunk.
"""

from __future__ import annotations

import json
import pickle
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.schemas import LabelMessage, Query, Sample, encode
from stream_al.service.app import Service
from stream_al.service.dead_letters import (
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_TOPIC_HEADER,
    TRUNCATED_HEADER,
)
from stream_al.service.metrics import ServiceMetrics
from stream_al.settings import Settings
from stream_al.sim.datasets import Example, stream
from tests.integration.harness import header, read_topic, service_settings

pytestmark = [pytest.mark.kafka, pytest.mark.usefixtures("kafka_client")]

DATASET = "image-segments"  # seven classes: room for labels outside the configured set
CHUNKS, CHUNK_SIZE, PROBES = 4, 150, 200
BAD_SAMPLES_PER_GOOD = 3.0
BAD_LABELS_PER_GOOD = 8.0
MAX_MESSAGE_BYTES = 64 * 1024  # "huge" messages fit through Kafka (1 MB) but not the service
NOW = 1_700_000_000.0  # one fixed clock for both runs
STEP_TIMEOUT_S = 60.0

Message = tuple[bytes | None, bytes | None]  # key, value (None: a null record)


@dataclass
class Bad:
    """One malformed message and what the service must make of it."""

    key: bytes | None
    value: bytes | None
    reason: str  # the dead-letter reason
    status: str | None = None  # labels only: the stream_al_labels_total status


@dataclass
class Run:
    """What one run of the stream left behind."""

    settings: Settings
    service: Service
    probe: list[dict[str, float]]
    bad_samples: dict[int, Bad] = field(default_factory=dict)  # by offset on the samples topic
    bad_labels: dict[int, Bad] = field(default_factory=dict)  # by offset on the labels topic
    good_samples: int = 0
    good_labels: int = 0


# -- malformed messages --------------------------------------------------------------------


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))


def _doc(value: Any) -> bytes:
    return json.dumps(value).encode()  # NaN and Infinity as Python writes them


def _huge(rng: random.Random, build: Callable[[str], Any]) -> bytes:
    # Mostly just over the limit; sometimes past what the service's producer accepts
    # (max_message_bytes + 64 KiB), which a dead letter must survive too.
    size = rng.choice([MAX_MESSAGE_BYTES + 1, 100_000, 300_000])
    raw = _doc(build("x" * size))
    assert len(raw) > MAX_MESSAGE_BYTES
    return raw


def _deep(rng: random.Random, wrap: Callable[[str], str]) -> tuple[bytes, str]:
    """Nested lists: too deep for the parser (not_json) or parsed and refused as invalid."""
    if rng.random() < 0.5:
        depth = 30_000  # 60 KB: under the size limit, past the parser's recursion limit
        return wrap("[" * depth + "]" * depth).encode(), "not_json"
    depth = rng.randint(2, 400)
    return wrap("[" * depth + "1" + "]" * depth).encode(), ""


def bad_sample(rng: random.Random) -> Bad:
    """A sample the service must dead-letter, and the reason it must give."""
    kind = rng.randrange(13)
    sid = f"bad-{rng.randrange(10**9)}"
    if kind == 0:  # random bytes that cannot be UTF-8 (0xff never occurs in UTF-8)
        return Bad(None, b"\xff" + rng.randbytes(rng.randint(0, 300)), "not_json")
    if kind == 1:
        return Bad(sid.encode(), ("{" + _letters(rng, rng.randint(0, 40))).encode(), "not_json")
    if kind == 2:
        return Bad(sid.encode(), rng.choice([b"", None, b"   "]), "not_json")
    if kind == 3:  # wrong types and shapes
        value = rng.choice(
            [
                {"id": rng.randrange(100), "features": {"a": 1}},
                {"id": sid, "features": [1, 2]},
                {"id": sid, "features": {"a": [1]}},
                {"id": sid, "features": {"a": {"b": 1}}},
                {"id": sid, "features": {"": 1}},
                {"id": sid, "features": {"a": "x" * 5000}},
                {"id": sid},
                {"features": {"a": 1}},
                {"id": sid, "features": {"a": 1}, "timestamp": "yesterday"},
                {"id": sid, "features": {"a": 1}, "metadata": {"m": [1]}},
                [1, 2, 3],
                "a string",
                42,
                None,
            ]
        )
        return Bad(sid.encode(), _doc(value), "invalid_sample")
    if kind == 4:  # NaN and infinities, as JSON tokens and as an overflowing literal
        token = rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
        raw = f'{{"id": "{sid}", "features": {{"a": 1.0, "b": {token}}}}}'.encode()
        return Bad(sid.encode(), raw, "invalid_sample")
    if kind == 5:  # integers past the float range, or past what Python parses at all
        digits = rng.choice([400, 5000])
        raw = f'{{"id": "{sid}", "features": {{"a": {"9" * digits}}}}}'.encode()
        return Bad(sid.encode(), raw, "invalid_sample" if digits == 400 else "not_json")
    if kind == 6:
        return Bad(
            sid.encode(), _huge(rng, lambda s: {"id": sid, "features": {"a": s}}), "too_large"
        )
    if kind == 7:
        raw, reason = _deep(rng, lambda nested: f'{{"id": "{sid}", "features": {{"a": {nested}}}}}')
        return Bad(sid.encode(), raw, reason or "invalid_sample")
    if kind == 8:
        return Bad(b"", _doc({"id": "", "features": {"a": 1}}), "invalid_sample")
    if kind == 9:  # enormous ids, up to just under the size limit
        big = "i" * rng.choice([257, 60_000])
        return Bad(None, _doc({"id": big, "features": {"a": 1}}), "invalid_sample")
    if kind == 10:  # an enormous key on a bad value: the dead letter carries the key
        return Bad(b"k" * 200_000, b"\xff", "not_json")
    if kind == 11:
        return Bad(
            sid.encode(), _doc({"id": sid, "features": {"a": True, "b": 10**400}}), "invalid_sample"
        )
    return Bad(
        sid.encode(),
        _doc({"id": sid, "features": {"a": -1e-999, "b": float("nan")}}),
        "invalid_sample",
    )


def bad_label(
    rng: random.Random,
    classes: list[str],
    learned: list[LabelMessage],
    upcoming: list[str],
    scored_only: list[str],
) -> Bad:
    """A label the service must refuse.

    ``learned`` were sent before; ``upcoming`` are queried ids whose label comes later (a
    refused label must not use up their pending query); ``scored_only`` were never queried.
    """
    kind = rng.randrange(12)
    lid = f"bad-{rng.randrange(10**9)}"
    cls = rng.choice(classes)
    if kind == 0:
        return Bad(None, b"\xff" + rng.randbytes(rng.randint(0, 300)), "not_json", "invalid")
    if kind == 1:
        raw = rng.choice([b"", None, ("[" + _letters(rng, 20)).encode()])
        return Bad(lid.encode(), raw, "not_json", "invalid")
    if kind == 2:
        value = rng.choice(
            [
                {"id": lid, "label": None},
                {"id": lid, "label": [cls]},
                {"id": lid, "label": {"class": cls}},
                {"id": lid, "label": ""},
                {"id": rng.randrange(100), "label": cls},
                {"id": lid},
                {"label": cls},
                {"id": lid, "label": cls, "features": [1]},
                {"id": lid, "label": cls, "annotator": ""},
                [lid, cls],
            ]
        )
        return Bad(lid.encode(), _doc(value), "invalid_label", "invalid")
    if kind == 3:
        token = rng.choice(["NaN", "Infinity", "-1e999"])
        raw = rng.choice(
            [
                f'{{"id": "{lid}", "label": {token}}}',
                f'{{"id": "{lid}", "label": "{cls}", "features": {{"a": {token}}}}}',
            ]
        ).encode()
        return Bad(lid.encode(), raw, "invalid_label", "invalid")
    if kind == 4:
        raw = _huge(rng, lambda s: {"id": lid, "label": cls, "annotator": s})
        return Bad(lid.encode(), raw, "too_large", "invalid")
    if kind == 5:
        raw, reason = _deep(rng, lambda nested: f'{{"id": "{lid}", "label": {nested}}}')
        return Bad(lid.encode(), raw, reason or "invalid_label", "invalid")
    if kind == 6:
        big = rng.choice(["", "i" * 257, "i" * 60_000])
        return Bad(None, _doc({"id": big, "label": cls}), "invalid_label", "invalid")
    if kind == 7:  # outside the configured classes, for an id that may well be pending
        target = rng.choice([*(label.id for label in learned[-5:]), *upcoming[:5], lid])
        outside = rng.choice(["tree", "SKY", " sky", "3", "true"])
        return Bad(
            target.encode(), _doc({"id": target, "label": outside}), "invalid_label", "invalid"
        )
    if kind == 8:  # never queried (and no features to learn from instead)
        target = rng.choice([lid, *scored_only]) if scored_only else lid
        return Bad(target.encode(), _doc({"id": target, "label": cls}), "unknown_id", "unknown_id")
    if kind == 9 and learned:  # a second label for an id already learned, same or other class
        first = rng.choice(learned)
        again = rng.choice([first.label, cls])
        return Bad(
            first.id.encode(), _doc({"id": first.id, "label": again}), "duplicate", "duplicate"
        )
    if kind == 10:
        return Bad(b"k" * 200_000, b"\xff", "not_json", "invalid")
    return Bad(lid.encode(), _doc({"id": lid, "label": 10**400}), "invalid_label", "invalid")


# -- driving the service -------------------------------------------------------------------


def _drive(service: Service, done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {STEP_TIMEOUT_S:.0f} s waiting for {what}")
        service.step(timeout_ms=50)


def _value(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _samples_handled_are(service: Service, count: int) -> bool:
    """Whether the service has scored or dead-lettered ``count`` samples."""
    handled = sum(
        _value(service.metrics, "stream_al_samples_total", outcome=outcome)
        for outcome in ("scored", "dead_lettered")
    )
    return handled == count


def _labels_read_are(service: Service, count: int) -> bool:
    """Whether the service has read ``count`` labels (the labels topic has one partition)."""
    return service.label_offsets.get(0, 0) == count


class _TopicTail:
    """Reads one single-partition topic incrementally."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self._tp = TopicPartition(topic, 0)
        self._consumer.assign([self._tp])
        self._consumer.seek_to_beginning(self._tp)

    def new_records(self) -> Iterator[Any]:
        end = self._consumer.end_offsets([self._tp])[self._tp]
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while self._consumer.position(self._tp) < end:
            assert time.monotonic() < deadline, "could not read the topic to its end"
            for batch in self._consumer.poll(timeout_ms=500).values():
                yield from batch

    def close(self) -> None:
        self._consumer.close()


def run_stream(bootstrap: str, examples: list[Example], probes: list[Example], bad: bool) -> Run:
    """Feed the good stream (with malformed messages in between when ``bad``) and learn it."""
    classes = sorted({example.label for example in examples + probes})
    learner = LearnerConfig(classes=tuple(classes), strategy=StrategyConfig(budget=0.2))
    settings = service_settings(
        bootstrap, learner, partitions=1, max_message_bytes=MAX_MESSAGE_BYTES
    )
    truth = {example.id: example.label for example in examples}
    rng = random.Random(20240611)  # draws the bad messages only: the good stream is fixed
    service = Service(settings, metrics=ServiceMetrics("127.0.0.1", 0), clock=lambda: NOW)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=2_000_000
    )
    run = Run(settings, service, probe=[])
    samples_sent = labels_sent = 0
    service.connect()
    oracle = _TopicTail(bootstrap, settings.topics.oracle)
    try:
        learned: list[LabelMessage] = []
        for chunk in range(CHUNKS):
            # Samples: the chunk in order, malformed ones in between.
            part = examples[chunk * CHUNK_SIZE : (chunk + 1) * CHUNK_SIZE]
            for example in part:
                while bad and rng.random() < BAD_SAMPLES_PER_GOOD / (1 + BAD_SAMPLES_PER_GOOD):
                    message = bad_sample(rng)
                    producer.send(
                        settings.topics.samples, key=message.key, value=message.value, partition=0
                    )
                    run.bad_samples[samples_sent] = message
                    samples_sent += 1
                sample = Sample(id=example.id, features=example.features)
                producer.send(
                    settings.topics.samples, key=example.id.encode(), value=encode(sample)
                )
                samples_sent += 1
                run.good_samples += 1
            producer.flush()
            _drive(
                service,
                partial(_samples_handled_are, service, samples_sent),
                f"chunk {chunk}'s samples",
            )
            # Labels: the true class of every query of the chunk, malformed ones in between.
            queried = [Query.model_validate_json(r.value).id for r in oracle.new_records()]
            scored_only = sorted({example.id for example in part} - set(queried))
            for position, sample_id in enumerate(queried):
                while bad and rng.random() < BAD_LABELS_PER_GOOD / (1 + BAD_LABELS_PER_GOOD):
                    message = bad_label(rng, classes, learned, queried[position:], scored_only)
                    producer.send(
                        settings.topics.labels, key=message.key, value=message.value, partition=0
                    )
                    run.bad_labels[labels_sent] = message
                    labels_sent += 1
                label = LabelMessage(id=sample_id, label=truth[sample_id])
                producer.send(settings.topics.labels, key=sample_id.encode(), value=encode(label))
                learned.append(label)
                labels_sent += 1
                run.good_labels += 1
            producer.flush()
            _drive(
                service,
                partial(_labels_read_are, service, labels_sent),
                f"chunk {chunk}'s labels",
            )
        run.probe = [service.learner.model.predict_proba_one(p.features) for p in probes]
    finally:
        oracle.close()
        producer.close()
        service.close()
    return run


# -- the test ------------------------------------------------------------------------------


def test_malformed_messages_are_dead_lettered_and_change_nothing(kafka_bootstrap: str) -> None:
    everything = list(stream(DATASET, limit=CHUNKS * CHUNK_SIZE + PROBES))
    examples, probes = everything[: CHUNKS * CHUNK_SIZE], everything[CHUNKS * CHUNK_SIZE :]

    clean = run_stream(kafka_bootstrap, examples, probes, bad=False)
    dirty = run_stream(kafka_bootstrap, examples, probes, bad=True)

    bad_total = len(dirty.bad_samples) + len(dirty.bad_labels)
    assert bad_total >= 2000, f"only {bad_total} malformed messages were sent"
    assert {m.reason for m in dirty.bad_samples.values()} == {
        "not_json", "invalid_sample", "too_large"
    }  # fmt: skip
    assert {m.reason for m in dirty.bad_labels.values()} == {
        "not_json", "invalid_label", "too_large", "unknown_id", "duplicate"
    }  # fmt: skip

    # The model is the one the good stream alone makes: same labels learned, same weights,
    # same predictions on samples it has never seen.
    assert dirty.service.learner.labels_learned == clean.service.learner.labels_learned
    assert dirty.service.learner.labels_learned == dirty.good_labels > 0
    assert dirty.service.learner.samples_seen == clean.service.learner.samples_seen
    assert dirty.probe == clean.probe
    assert pickle.dumps(dirty.service.learner.model) == pickle.dumps(clean.service.learner.model)

    # Every good sample was predicted, identically in both runs.
    def predictions(run: Run) -> dict[str, dict[str, Any]]:
        records = read_topic(kafka_bootstrap, run.settings.topics.predictions)
        by_id = {}
        for record in records:
            prediction = json.loads(record.value)
            by_id[prediction["id"]] = prediction
        assert len(records) == len(by_id) == len(examples)
        return by_id

    assert predictions(dirty) == predictions(clean)

    # Every malformed message is on the dead-letter topic, with its reason and origin.
    topics = dirty.settings.topics
    expected = {(topics.samples, offset): m for offset, m in dirty.bad_samples.items()}
    expected |= {(topics.labels, offset): m for offset, m in dirty.bad_labels.items()}
    dead = read_topic(kafka_bootstrap, topics.dead_letters)
    found: dict[tuple[str, int], Any] = {}
    for record in dead:
        source = (
            header(record, SOURCE_TOPIC_HEADER) or "",
            int(header(record, SOURCE_OFFSET_HEADER) or -1),
        )
        assert source not in found, f"{source} dead-lettered twice"
        found[source] = record
    assert found.keys() == expected.keys()
    for source, record in found.items():
        message = expected[source]
        assert header(record, REASON_HEADER) == message.reason, (source, message.value)
        original = message.value or b""
        truncated = header(record, TRUNCATED_HEADER)
        if len(original) > MAX_MESSAGE_BYTES:
            # The producer cannot send more: the value is cut, and the header says so.
            assert record.value == original[:MAX_MESSAGE_BYTES]
            assert truncated is not None and str(len(original)) in truncated
        else:
            assert record.value == original
        if message.key is not None and len(message.key) <= 1024:
            assert record.key == message.key
        elif message.key is not None:
            assert record.key == message.key[: len(record.key)]
            assert truncated is not None and str(len(message.key)) in truncated

    # The counters say the same.
    metrics = dirty.service.metrics
    reasons = Counter(m.reason for m in expected.values())
    for reason, count in reasons.items():
        assert _value(metrics, "stream_al_dead_letters_total", reason=reason) == count, reason
    assert sum(
        _value(metrics, "stream_al_dead_letters_total", reason=r)
        for r in ("not_json", "invalid_sample", "invalid_label", "too_large", "unknown_id",
                  "expired", "duplicate")
    ) == len(expected)  # fmt: skip
    assert _value(metrics, "stream_al_samples_total", outcome="dead_lettered") == len(
        dirty.bad_samples
    )
    assert _value(metrics, "stream_al_samples_total", outcome="scored") == dirty.good_samples
    statuses = Counter(m.status for m in dirty.bad_labels.values())
    statuses["learned"] += dirty.good_labels
    for status in ("learned", "duplicate", "unknown_id", "expired", "invalid"):
        assert _value(metrics, "stream_al_labels_total", status=status) == statuses[status], status
