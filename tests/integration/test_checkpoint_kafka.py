"""KafkaCheckpointStore against a real broker: compacted topic, signatures, fallback.

Also what an outsider with produce rights can do to a replica's own record keys: forged,
unsigned, wrong-key or truncated records, tombstones and replays must not hide its
genuine checkpoints, from the store or from the service starting on it.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from stream_al.core.config import LearnerConfig
from stream_al.core.learner import ActiveLearner
from stream_al.durability import (
    Checkpoint,
    CheckpointConfigError,
    CheckpointTooLarge,
    KafkaCheckpointStore,
    NoValidCheckpoint,
)
from stream_al.durability.envelope import seal
from stream_al.durability.kafka_store import SEQ_HEADER
from stream_al.schemas import Sample
from stream_al.service.checkpointing import Checkpointer, open_store
from tests.forgery import unsigned
from tests.integration.harness import ServiceThread, read_topic, service_settings, wait_until

pytestmark = pytest.mark.kafka

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
SERVICE_KEY = "group-a/replica-0"
FINGERPRINT = "sha256:test"


class BlobLearner:
    """Picklable stand-in learner carrying ``size`` bytes of seeded model state."""

    def __init__(self, labels_learned: int, size: int = 1000, seed: int = 7) -> None:
        self.labels_learned = labels_learned
        self.blob = random.Random(seed).randbytes(size)

    def summary(self) -> dict[str, Any]:
        return {
            "labels_learned": self.labels_learned,
            "samples_seen": 10 * self.labels_learned,
            "strategy": {},
            "model": "blob",
            "config": {},
        }


#: Side effects of unpickling _Exploit; stays empty while signatures are checked first.
EXECUTED: list[str] = []


def _record_execution(tag: str) -> None:
    EXECUTED.append(tag)


class _Exploit:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_record_execution, ("unpickled",))


def checkpoint(labels: int, size: int = 1000) -> Checkpoint:
    return Checkpoint(
        learner=BlobLearner(labels, size),
        label_offsets={"labels": {0: 100 * labels}},
        config_fingerprint=FINGERPRINT,
        created_at=datetime(2024, 5, 1, tzinfo=UTC),
    )


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    # Unique per test and per run: the broker may outlive a session.
    name = re.sub(r"[^a-zA-Z0-9._-]", "-", request.node.name)
    return f"checkpoints-{name}-{os.getpid()}-{time.time_ns()}"


@pytest.fixture
def make_store(kafka_bootstrap: str, topic: str) -> Iterator[Any]:
    stores: list[KafkaCheckpointStore] = []

    def make(key: str = SERVICE_KEY, **options: Any) -> KafkaCheckpointStore:
        options.setdefault("hmac_key", KEY)
        store = KafkaCheckpointStore(
            topic, key, {"bootstrap_servers": kafka_bootstrap}, timeout_s=30.0, **options
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, None)
        entries = admin.describe_configs([resource], config_filter="all")["topic"][topic]
    finally:
        admin.close()
    return {name: entry["value"] for name, entry in entries.items()}


def produce(bootstrap: str, topic: str, key: str, value: bytes | None, seq: int | None) -> None:
    """Write like an outsider would: straight to the topic, bypassing the store."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024)
    try:
        headers = [] if seq is None else [(SEQ_HEADER, str(seq).encode())]
        producer.send(topic, key=key.encode(), value=value, headers=headers).get(timeout=30)
    finally:
        producer.close()


def test_signed_checkpoint_round_trips_through_a_compacted_topic(
    make_store: Any, kafka_bootstrap: str, topic: str
) -> None:
    writer = make_store(max_bytes=8 * 1024 * 1024)
    config = topic_config(kafka_bootstrap, topic)
    assert config["cleanup.policy"] == "compact"
    assert int(config["max.message.bytes"]) >= 8 * 1024 * 1024
    writer.save(checkpoint(1))
    # Several MB: over Kafka's 1 MiB defaults, so the topic and producer limits matter.
    where = writer.save(checkpoint(2, size=3 * 1024 * 1024))
    assert where.startswith(f"{topic}[0]@")

    restored = make_store(max_bytes=8 * 1024 * 1024).load_latest(FINGERPRINT)
    assert restored is not None
    assert restored.learner.labels_learned == 2
    assert restored.learner.blob == BlobLearner(2, 3 * 1024 * 1024).blob
    assert restored.label_offsets == {"labels": {0: 200}}


def test_keys_are_isolated_and_only_the_last_k_slots_are_used(
    make_store: Any, kafka_bootstrap: str
) -> None:
    store = make_store(keep=2)
    for labels in range(1, 6):
        store.save(checkpoint(labels))
    latest = make_store(keep=2).load_latest()
    assert latest is not None and latest.learner.labels_learned == 5
    assert make_store(key="group-a/replica-1", keep=2).load_latest() is None


def test_foreign_messages_are_refused_and_the_previous_valid_one_is_used(
    make_store: Any, kafka_bootstrap: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(keep=3)
    store.save(checkpoint(1))  # seq 1, slot 1
    store.save(checkpoint(2))  # seq 2, slot 2
    exploit = Checkpoint(_Exploit(), {}, FINGERPRINT)
    # No key: may imitate the format and the checksum, cannot sign.
    produce(kafka_bootstrap, topic, f"{SERVICE_KEY}/0", unsigned(exploit), seq=3)
    # Another key: a valid signature, but not ours (and no sequence number at all).
    produce(kafka_bootstrap, topic, SERVICE_KEY, seal(exploit, OTHER_KEY, b""), seq=None)
    EXECUTED.clear()
    restarted = make_store(keep=3)
    with caplog.at_level(logging.WARNING, logger="stream_al.durability"):
        restored = restarted.load_latest(FINGERPRINT)
    assert restored is not None and restored.learner.labels_learned == 2
    assert EXECUTED == []
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"'{SERVICE_KEY}/0'" in m and "not signed" in m for m in refusals)
    assert any(f"'{SERVICE_KEY}'" in m and "another key" in m for m in refusals)

    # The restarted service numbers after its own genuine checkpoints (seq 3, slot 0), not
    # after the outsider's claim, and its next checkpoint is the first one tried: the
    # forged seq 3 under the same key is refused while reading, never a restore candidate.
    restarted.save(checkpoint(3))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="stream_al.durability"):
        latest = make_store(keep=3).load_latest(FINGERPRINT)
    assert latest is not None and latest.learner.labels_learned == 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("restored checkpoint" in m and "'group-a/replica-0/0', seq 3" in m for m in messages)
    assert not any("trying the previous one" in m for m in messages)


def test_oversized_checkpoint_fails_clearly(make_store: Any) -> None:
    store = make_store(max_bytes=1024 * 1024)
    with pytest.raises(CheckpointTooLarge, match=r"checkpoint\.max_bytes"):
        store.save(checkpoint(1, size=2 * 1024 * 1024))


def test_existing_topic_without_compaction_is_refused(kafka_bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics(
            {topic: {"num_partitions": 1, "replication_factor": 1, "configs": {}}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()
    with pytest.raises(CheckpointConfigError, match=r"cleanup\.policy=delete"):
        KafkaCheckpointStore(topic, SERVICE_KEY, {"bootstrap_servers": kafka_bootstrap}, KEY)


def test_existing_topic_with_a_small_message_limit_bounds_checkpoints(
    kafka_bootstrap: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        configs = {"cleanup.policy": "compact", "max.message.bytes": str(512 * 1024)}
        admin.create_topics(
            {topic: {"num_partitions": 1, "replication_factor": 1, "configs": configs}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()
    with caplog.at_level(logging.WARNING, logger="stream_al.durability"):
        store = KafkaCheckpointStore(
            topic, SERVICE_KEY, {"bootstrap_servers": kafka_bootstrap}, KEY, max_bytes=4 << 20
        )
    try:
        assert any("max.message.bytes=524288" in r.getMessage() for r in caplog.records)
        store.save(checkpoint(1, size=100 * 1024))
        with pytest.raises(CheckpointTooLarge, match=r"max\.message\.bytes=524288"):
            store.save(checkpoint(2, size=600 * 1024))
    finally:
        store.close()


def forge_every_slot(bootstrap: str, topic: str, service_key: str) -> None:
    """After genuine seqs 1-3 (slots 1, 2, 0): a bad record over each slot, claiming newer."""
    exploit = Checkpoint(_Exploit(), {}, FINGERPRINT)
    produce(bootstrap, topic, f"{service_key}/0", unsigned(exploit), seq=4)
    produce(bootstrap, topic, f"{service_key}/1", seal(exploit, OTHER_KEY, b""), seq=5)
    # Signed with the right key (for the right slot or not), but cut short.
    produce(bootstrap, topic, f"{service_key}/2", seal(checkpoint(9), KEY)[:-100], seq=6)
    produce(bootstrap, topic, f"{service_key}/0", None, seq=None)  # a tombstone


def test_forged_records_under_the_replicas_own_keys_do_not_hide_its_checkpoints(
    make_store: Any, kafka_bootstrap: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(keep=3)
    for labels in (1, 2, 3):
        store.save(checkpoint(labels))  # seq 1, 2, 3 -> slots 1, 2, 0
    forge_every_slot(kafka_bootstrap, topic, SERVICE_KEY)
    EXECUTED.clear()
    with caplog.at_level(logging.WARNING, logger="stream_al.durability"):
        restored = make_store(keep=3).load_latest(FINGERPRINT)
    assert restored is not None and restored.learner.labels_learned == 3
    assert EXECUTED == []
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for slot, reason in [(0, "not signed"), (1, "another key"), (2, "truncated"), (0, "tombstone")]:
        assert any(f"'{SERVICE_KEY}/{slot}'" in m and reason in m for m in refusals), reason
    assert any("ignored 4 record(s)" in m for m in refusals)


def test_a_replayed_older_genuine_record_does_not_roll_a_slot_back(
    make_store: Any, kafka_bootstrap: str, topic: str
) -> None:
    store = make_store(keep=3)
    for labels in (1, 2, 3, 4):
        store.save(checkpoint(labels))  # seq 4 overwrites seq 1 in slot 1
    first = next(
        r for r in read_topic(kafka_bootstrap, topic) if dict(r.headers)[SEQ_HEADER] == b"1"
    )
    produce(kafka_bootstrap, topic, first.key.decode(), first.value, seq=1)  # a genuine value
    restored = make_store(keep=3).load_latest(FINGERPRINT)
    assert restored is not None and restored.learner.labels_learned == 4


def test_only_records_that_do_not_verify_is_no_valid_checkpoint_not_a_fresh_start(
    make_store: Any, kafka_bootstrap: str, topic: str
) -> None:
    make_store(keep=3).save(checkpoint(1))
    # A replica configured with the wrong key must not restart its learner from scratch.
    with pytest.raises(NoValidCheckpoint, match="another key"):
        make_store(keep=3, hmac_key=OTHER_KEY).load_latest(FINGERPRINT)


@pytest.mark.parametrize("key_source", ["hmac_key", "key_file"])
def test_the_service_starts_from_the_newest_genuine_checkpoint_despite_forgeries(
    kafka_bootstrap: str, tmp_path: Path, key_source: str
) -> None:
    key_file = tmp_path / "shared.key"  # an explicit key file, as replicas would share
    key_file.write_bytes(KEY + b"\n")
    key_file.chmod(0o600)
    key = {"hmac_key": KEY.decode()} if key_source == "hmac_key" else {"key_file": key_file}
    settings = service_settings(
        kafka_bootstrap,
        LearnerConfig(),
        checkpoint={"topic": f"test-{uuid.uuid4().hex[:10]}.checkpoints", **key},
    )
    assert not settings.checkpoint.start_fresh
    store = open_store(settings)
    assert store is not None
    saver = Checkpointer(settings, store)
    learner = ActiveLearner(settings.learner)
    for n in range(15):
        learner.score(Sample(id=f"s{n}", features={"x": float(n)}))
        if n % 5 == 4:
            saver.save(learner, {})  # after 5, 10, 15 samples: seq 1, 2, 3
    saver.close()
    assert settings.checkpoint.topic is not None
    forge_every_slot(
        kafka_bootstrap, settings.checkpoint.topic, f"{settings.group_id}/{settings.replica_id}"
    )

    EXECUTED.clear()
    restarted = open_store(settings)
    assert restarted is not None
    with ServiceThread(settings, checkpointer=Checkpointer(settings, restarted)) as running:
        wait_until(
            lambda: running.service.learner.samples_seen == 15 or not running.alive,
            60,
            "the service to restore its checkpoint",
        )
        assert running.alive
        assert running.service.learner.samples_seen == 15
    assert EXECUTED == []
