"""The narrow interface through which the service speaks to Kafka.

The service needs little of a Kafka client: poll a batch, send, learn which deliveries
failed, commit explicit offsets, seek, its assignment and the rebalance callbacks, and
the ends of a topic's partitions. Two clients implement it: kafka-python (the default, in
:mod:`.kafka_python`) and confluent-kafka on librdkafka (:mod:`.librdkafka`). Both give
the same semantics: a delivery is known failed or done after ``flush``, offsets are
committed only when told, rebalance callbacks run inside ``poll`` on the caller's
thread, and every error is a :class:`TransportError` that says whether it is retriable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol


class TopicPartition(NamedTuple):
    """A topic's partition. Equal to (and hashed like) kafka-python's own."""

    topic: str
    partition: int


class Record(Protocol):
    """A consumed message. ``timestamp`` is in milliseconds since the epoch."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> list[tuple[str, bytes]]: ...


class TransportError(Exception):
    """A client error; ``retriable`` ones (the broker away, a coordinator moving) pass."""

    def __init__(self, message: str, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class DeliveryTimeout(TransportError):
    """``flush`` ran out of time with messages not yet acknowledged; they are still held."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=True)


class Delivery(Protocol):
    """The outcome of one ``send``, known once ``flush`` returned."""

    def failed(self) -> bool: ...
    @property
    def exception(self) -> BaseException | None: ...


class Producer(Protocol):
    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Delivery: ...

    def flush(self, timeout: float) -> None:
        """Wait until every message sent is acknowledged or failed; ``DeliveryTimeout``."""

    def close(self, timeout: float) -> None:
        """Deliver what is held for up to ``timeout`` s, then drop the rest and stop."""


Batch = dict[TopicPartition, list[Record]]
Callback = Callable[[set[TopicPartition]], None]


class _Reader(Protocol):
    def poll(self, timeout_ms: int) -> Batch: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def assignment(self) -> set[TopicPartition]: ...
    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...
    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...
    def position(self, partition: TopicPartition) -> int: ...
    def partitions_for_topic(self, topic: str) -> set[int]:
        """The topic's partitions, empty while its metadata is not known (yet)."""

    def close(self, timeout_ms: int) -> None: ...


class GroupConsumer(_Reader, Protocol):
    """A consumer-group member that commits only what it is told to."""

    def subscribe(self, topic: str, on_assigned: Callback, on_revoked: Callback) -> None: ...
    def commit(self, offsets: dict[TopicPartition, int], timeout: float) -> None: ...
    def commit_async(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit in the background; a failure is logged (the batch comes again)."""

    def lag(self, partition: TopicPartition) -> int | None:
        """Messages after the position, as of the last fetch; None while unknown."""

    def rebalancing(self) -> bool:
        """The member is between generations (the service rejoins when that lasts)."""

    def leave(self) -> None:
        """Close without committing, to join again afresh."""


class LogConsumer(_Reader, Protocol):
    """A group-less consumer, positioned by the caller, that reads whole topics."""

    def assign(self, offsets: dict[TopicPartition, int]) -> None:
        """Read exactly these partitions, each from its offset."""


class Transport(Protocol):
    """Makes the service's clients, all configured from the same settings."""

    name: str

    def producer(self) -> Producer: ...
    def group_consumer(self) -> GroupConsumer: ...
    def log_consumer(self) -> LogConsumer: ...
