"""Smoke tests of the test broker itself: data round-trips, and survives a broker restart.

These guard the fixtures every other integration test stands on: if they fail, look at the
broker (``LocalKafka.log_path``) before looking at the service.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from tests.kafka_broker import LocalKafka, create_topics, make_topic_names

pytestmark = pytest.mark.kafka

_TIMEOUT_S = 60.0


def _producer(bootstrap: str) -> KafkaProducer:
    # acks=all and idempotence are kafka-python 3's defaults; spelled out because the
    # restart test depends on "acknowledged means on the broker's disk log".
    return KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )


def _send(producer: KafkaProducer, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> None:
    """Send and wait for every acknowledgement (raises on any failed send)."""
    futures = [producer.send(topic, key=key, value=value) for key, value in messages]
    producer.flush(timeout=_TIMEOUT_S)
    for future in futures:
        future.get(timeout=_TIMEOUT_S)


def _poll_until(consumer: KafkaConsumer, count: int) -> list[ConsumerRecord]:
    """Poll until ``count`` records arrived, then briefly more to catch any extra ones."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + _TIMEOUT_S
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    # Anything arriving now would be a duplicate or a stray: the caller asserts exact content.
    for batch in consumer.poll(timeout_ms=1000).values():
        records.extend(batch)
    return records


def _read_from_start(bootstrap: str, topic: str, count: int) -> list[ConsumerRecord]:
    """Every record of ``topic`` from offset 0, without a consumer group."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"no partitions known for {topic}"
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        return _poll_until(consumer, count)
    finally:
        consumer.close()


def _read_as_group(bootstrap: str, topic: str, group: str, count: int) -> list[ConsumerRecord]:
    """Records past the group's committed offsets; commits what it read."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        records = _poll_until(consumer, count)
        consumer.commit()
        return records
    finally:
        consumer.close()


def _messages(tag: str, n: int) -> list[tuple[bytes, bytes]]:
    return [(f"k{i % 7}".encode(), f"{tag}-{i}".encode()) for i in range(n)]


def test_messages_round_trip(kafka_bootstrap: str) -> None:
    topic = make_topic_names("broker-smoke", "roundtrip")["roundtrip"]
    create_topics(kafka_bootstrap, [topic], partitions=3)
    sent = _messages("m", 100)

    producer = _producer(kafka_bootstrap)
    try:
        _send(producer, topic, sent)
    finally:
        producer.close()
    records = _read_from_start(kafka_bootstrap, topic, len(sent))

    assert sorted((r.key, r.value) for r in records) == sorted(sent)
    # Same key, same partition, in send order: the guarantee the service's ordering relies on.
    by_key: dict[bytes, list[bytes]] = {}
    partition_of: dict[bytes, set[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(record.value)
        partition_of.setdefault(record.key, set()).add(record.partition)
    assert all(len(parts) == 1 for parts in partition_of.values()), partition_of
    for key, values in by_key.items():
        assert values == [v for k, v in sent if k == key]


def test_create_topics_makes_the_requested_partitions(kafka_bootstrap: str) -> None:
    names = make_topic_names("broker-smoke", "a", "b")
    create_topics(kafka_bootstrap, names.values(), partitions=4)

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        for name in names.values():
            assert consumer.partitions_for_topic(name) == {0, 1, 2, 3}
    finally:
        consumer.close()


def test_data_and_offsets_survive_a_broker_restart(local_kafka: LocalKafka) -> None:
    bootstrap = local_kafka.bootstrap
    topic = make_topic_names("broker-smoke", "restart")["restart"]
    group = make_topic_names("broker-smoke-group")[""]
    create_topics(bootstrap, [topic], partitions=2)
    before, after = _messages("before", 100), _messages("after", 100)

    producer = _producer(bootstrap)
    try:
        _send(producer, topic, before)
        consumed = _read_as_group(bootstrap, topic, group, len(before))
        assert sorted(r.value for r in consumed) == sorted(v for _, v in before)

        local_kafka.restart()
        assert local_kafka.is_running()

        # The producer created before the restart must reconnect on its own.
        _send(producer, topic, after)
    finally:
        producer.close()

    everything = _read_from_start(bootstrap, topic, len(before) + len(after))
    assert sorted(r.value for r in everything) == sorted(v for _, v in before + after)
    # The group's committed offsets survived: it resumes exactly after the "before" batch.
    resumed = _read_as_group(bootstrap, topic, group, len(after))
    assert sorted(r.value for r in resumed) == sorted(v for _, v in after)


def test_acknowledged_data_survives_a_broker_crash(local_kafka: LocalKafka) -> None:
    bootstrap = local_kafka.bootstrap
    topic = make_topic_names("broker-smoke", "crash")["crash"]
    create_topics(bootstrap, [topic], partitions=2)
    sent = _messages("acked", 100)
    producer = _producer(bootstrap)
    try:
        _send(producer, topic, sent)
    finally:
        producer.close()

    local_kafka.kill()
    assert not local_kafka.is_running()
    local_kafka.start()

    records = _read_from_start(bootstrap, topic, len(sent))
    assert sorted(r.value for r in records) == sorted(v for _, v in sent)


def test_a_stopped_broker_is_started_again_for_the_next_test(local_kafka: LocalKafka) -> None:
    """Leaves the broker down on purpose; the next ``kafka`` test must still find it up."""
    local_kafka.stop()
    assert not local_kafka.is_running()
    local_kafka.stop()  # idempotent
    assert not local_kafka.is_running()


def test_broker_is_back_after_a_test_stopped_it(kafka_bootstrap: str) -> None:
    topic = make_topic_names("broker-smoke", "after-stop")["after-stop"]
    create_topics(kafka_bootstrap, [topic])
    producer = _producer(kafka_bootstrap)
    try:
        _send(producer, topic, _messages("x", 3))
    finally:
        producer.close()
    assert len(_read_from_start(kafka_bootstrap, topic, 3)) == 3


def test_a_throwaway_broker_takes_free_ports_and_is_stopped_even_on_an_error() -> None:
    """What ``make demo`` and ``bench/throughput.py`` start never lingers, never on 9092."""
    from stream_al.demo.local_broker import free_port, local_broker
    from tests.kafka_broker import LAUNCHER

    assert free_port() != free_port(), "two draws in one process must differ"
    addresses = []
    with pytest.raises(RuntimeError, match="boom"), local_broker(LAUNCHER, "test") as address:
        addresses.append(address)
        host, port = address.rsplit(":", 1)
        assert port != "9092"
        with socket.create_connection((host, int(port)), timeout=5):
            pass
        raise RuntimeError("boom")
    host, port = addresses[0].rsplit(":", 1)
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=5):
        pass


@pytest.mark.parametrize("client", ["kafka-python", "librdkafka"])
def test_both_transports_put_a_key_on_the_partition_the_java_client_would(
    kafka_bootstrap: str, client: str
) -> None:
    """Switching ``kafka.client`` must not move a key: the Java clients' murmur2 rule.

    librdkafka's own default (``consistent_random``, CRC32) puts most keys elsewhere, so a
    sample's prediction would land on another partition than on kafka-python, and a
    consumer of the predictions keyed by partition would see it move.
    """
    from kafka.partitioner.default import murmur2

    from stream_al.settings import Settings
    from stream_al.transport import open_transport

    partitions = 7
    topic = make_topic_names("broker-smoke", f"keys-{client}")[f"keys-{client}"]
    create_topics(kafka_bootstrap, [topic], partitions=partitions)
    keys = [f"s-{i}".encode() for i in range(300)]
    settings = Settings(kafka={"bootstrap_servers": kafka_bootstrap, "client": client})
    producer = open_transport(settings).producer()
    try:
        deliveries = [producer.send(topic, key, b"{}", None) for key in keys]
        producer.flush(_TIMEOUT_S)
    finally:
        producer.close(_TIMEOUT_S)
    assert not any(delivery.failed() for delivery in deliveries)
    records = _read_from_start(kafka_bootstrap, topic, len(keys))

    placed = {record.key: record.partition for record in records}
    java = {key: (murmur2(key) & 0x7FFFFFFF) % partitions for key in keys}
    assert placed == java


@pytest.mark.parametrize("client", ["kafka-python", "librdkafka"])
def test_both_transports_report_exactly_the_delivery_the_broker_refused(
    kafka_bootstrap: str, client: str
) -> None:
    """A message the broker refuses (larger than the topic's ``max.message.bytes``) is the
    one delivery ``failed()`` names once ``flush`` returned, with its exception; the rest are
    delivered. The service replays a batch on exactly this signal, and withdraws the queries
    that failed."""
    from stream_al.settings import Settings
    from stream_al.transport import open_transport

    topic = make_topic_names("broker-smoke", f"refused-{client}")[f"refused-{client}"]
    create_topics(kafka_bootstrap, [topic], configs={"max.message.bytes": "2048"})
    settings = Settings(kafka={"bootstrap_servers": kafka_bootstrap, "client": client})
    producer = open_transport(settings).producer()
    sent = []
    try:
        # Each in a flush of its own: a refused record batch fails every message in it.
        for key, value in [(b"a", b"{}"), (b"big", b"x" * 8192), (b"b", b"{}")]:
            sent.append((key, producer.send(topic, key, value, None)))
            producer.flush(_TIMEOUT_S)
    finally:
        producer.close(_TIMEOUT_S)
    failed = {key: delivery.failed() for key, delivery in sent}
    assert failed == {b"a": False, b"big": True, b"b": False}
    refused = dict(sent)[b"big"].exception
    assert refused is not None and "large" in str(refused).lower()
    assert [record.key for record in _read_from_start(kafka_bootstrap, topic, 2)] == [b"a", b"b"]
