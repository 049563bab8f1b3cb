"""The transport on kafka-python, the default client (pure Python, no native library)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.coordinator.base import MemberState
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from stream_al.kafka_compat import close_producer
from stream_al.service import kafka_io
from stream_al.settings import Settings
from stream_al.transport.base import (
    Batch,
    Callback,
    Delivery,
    DeliveryTimeout,
    TopicPartition,
    TransportError,
)

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def translated(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Raise kafka-python's errors as ``TransportError``s (the service knows only those)."""

    @functools.wraps(method)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except KafkaError as error:
            raise TransportError(f"{type(error).__name__}: {error}", error.retriable) from error

    return call


def _commit_offsets(offsets: dict[TopicPartition, int]) -> dict[Any, OffsetAndMetadata]:
    return {KafkaTopicPartition(*tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}


def _log_commit_failure(offsets: dict[Any, OffsetAndMetadata], result: Any) -> None:
    if isinstance(result, Exception):
        log.warning(
            "could not commit offsets %s: %s; those samples will come again", offsets, result
        )


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_assigned: Callback, on_revoked: Callback) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    def on_partitions_revoked(self, revoked: set[Any]) -> None:
        self._on_revoked({TopicPartition(*tp) for tp in revoked})

    def on_partitions_assigned(self, assigned: set[Any]) -> None:
        self._on_assigned({TopicPartition(*tp) for tp in assigned})


class _Producer:
    """kafka-python's producer, replaced by a fresh one after a delivery failed.

    Once the broker refused a batch (a message over the topic's ``max.message.bytes``, say),
    kafka-python 3's idempotent sender aborts every batch after it as well: each later send
    would fail, and the service replay its batch forever. A fresh producer fails that message
    alone, as librdkafka does (tests/integration/test_broker.py).
    """

    def __init__(self, make: Callable[[], KafkaProducer]) -> None:
        self._make = make
        self._producer = make()
        self._unflushed: list[Delivery] = []

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Delivery:
        try:
            # kafka-python's future has failed() and exception: it is the Delivery.
            future: Delivery = self._producer.send(topic, key=key, value=value, headers=headers)
        except KafkaError as error:
            raise TransportError(f"{type(error).__name__}: {error}", error.retriable) from error
        self._unflushed.append(future)
        return future

    def flush(self, timeout: float) -> None:
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError as error:
            raise DeliveryTimeout(str(error)) from error
        flushed, self._unflushed = self._unflushed, []
        if any(delivery.failed() for delivery in flushed):
            log.warning("a delivery failed: replacing the producer, which fails all after it")
            close_producer(self._producer, 0)
            self._producer = self._make()

    def close(self, timeout: float) -> None:
        close_producer(self._producer, timeout)


class _Reader:
    """What the group member and the log reader share: kafka-python's own calls."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer

    @translated
    def poll(self, timeout_ms: int) -> Batch:
        # kafka-python's TopicPartition is a named tuple equal to ours, and its records
        # have the attributes of a Record: both are passed on as they are.
        batch: Batch = self._consumer.poll(timeout_ms=timeout_ms)
        return batch

    @translated
    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._consumer.seek(KafkaTopicPartition(*partition), offset)

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(*tp) for tp in self._consumer.assignment()}

    @translated
    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        found = self._consumer.end_offsets([KafkaTopicPartition(*tp) for tp in partitions])
        return {TopicPartition(*tp): offset for tp, offset in found.items()}

    @translated
    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        found = self._consumer.beginning_offsets([KafkaTopicPartition(*tp) for tp in partitions])
        return {TopicPartition(*tp): offset for tp, offset in found.items()}

    @translated
    def position(self, partition: TopicPartition) -> int:
        position: int = self._consumer.position(KafkaTopicPartition(*partition))
        return position

    @translated
    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(self._consumer.partitions_for_topic(topic) or ())

    def close(self, timeout_ms: int) -> None:
        self._consumer.close(autocommit=False, timeout_ms=timeout_ms)


class _GroupConsumer(_Reader):
    @translated
    def subscribe(self, topic: str, on_assigned: Callback, on_revoked: Callback) -> None:
        self._consumer.subscribe([topic], listener=_Listener(on_assigned, on_revoked))

    @translated
    def commit(self, offsets: dict[TopicPartition, int], timeout: float) -> None:
        self._consumer.commit(_commit_offsets(offsets), timeout_ms=int(timeout * 1000))

    @translated
    def commit_async(self, offsets: dict[TopicPartition, int]) -> None:
        self._consumer.commit_async(_commit_offsets(offsets), callback=_log_commit_failure)

    def lag(self, partition: TopicPartition) -> int | None:
        tp = KafkaTopicPartition(*partition)
        highwater = self._consumer.highwater(tp)
        position = self._consumer.position(tp, timeout_ms=0) if highwater is not None else None
        return None if position is None else max(0, highwater - position)

    def rebalancing(self) -> bool:
        state = getattr(self._consumer._coordinator, "state", MemberState.STABLE)
        return state is not MemberState.STABLE

    def leave(self) -> None:
        self._consumer.close(autocommit=False)


class _LogConsumer(_Reader):
    @translated
    def assign(self, offsets: dict[TopicPartition, int]) -> None:
        self._consumer.assign([KafkaTopicPartition(*tp) for tp in offsets])
        for tp, offset in offsets.items():
            self._consumer.seek(KafkaTopicPartition(*tp), offset)


class KafkaPythonTransport:
    """The service's clients on kafka-python, configured by :mod:`stream_al.service.kafka_io`."""

    name = "kafka-python"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def producer(self) -> _Producer:
        return _Producer(functools.partial(kafka_io.producer, self._settings))

    def group_consumer(self) -> _GroupConsumer:
        return _GroupConsumer(kafka_io.samples_consumer(self._settings))

    def log_consumer(self) -> _LogConsumer:
        return _LogConsumer(kafka_io.log_consumer(self._settings))
