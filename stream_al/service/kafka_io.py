"""Kafka clients configured for the service, and topic creation."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kafka import (
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
)
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream_al.service.preflight import host_port
from stream_al.settings import Settings
from stream_al.transport.base import TopicPartition as Partition
from stream_al.transport.partitioning import KeyedPartitioner

if TYPE_CHECKING:
    from stream_al.transport import GroupConsumer, LogConsumer

log = logging.getLogger(__name__)


class Outages:
    """Carries a long-running client loop (a labeler, the oracle) over broker outages.

    kafka-python 3 may raise a retriable error from ``poll`` or ``committed`` while the
    broker is away (the connection refused while it looks for the coordinator); a loop
    that let it through died at the first broker restart, and its queries went unanswered.
    Each step of such a loop runs in :meth:`step`: a retriable error ends the step, is
    logged once per outage, and the loop carries on after ``pause_s``; the client
    reconnects by itself. Any other error passes.

    >>> import logging
    >>> from kafka.errors import KafkaConnectionError
    >>> outages = Outages("the example", pause_s=0)
    >>> with outages.step():
    ...     raise KafkaConnectionError("111 ECONNREFUSED")
    >>> outages.away
    True
    >>> with outages.step():
    ...     pass
    >>> outages.away
    False
    """

    def __init__(self, what: str, pause_s: float = 0.5) -> None:
        self.what = what
        self.pause_s = pause_s
        self._since: float | None = None

    @property
    def away(self) -> bool:
        """Whether the last step ended on a retriable error."""
        return self._since is not None

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        try:
            yield
        except KafkaError as error:
            if not error.retriable:
                raise
            if self._since is None:
                self._since = time.monotonic()
                log.warning("%s: the broker is not reachable (%s); retrying", self.what, error)
            time.sleep(self.pause_s)
            return
        if self._since is not None:
            log.info(
                "%s: the broker is back after %.1f s", self.what, time.monotonic() - self._since
            )
            self._since = None


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer that waits for all in-sync replicas and keeps retrying through outages."""
    config: dict[str, Any] = {
        **settings.kafka.client_config(),
        "acks": "all",
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "max_request_size": settings.max_message_bytes + 64 * 1024,
        # A broker restart must not drop a message: retry for up to ten minutes.
        "delivery_timeout_ms": 600_000,
        "max_block_ms": 600_000,
        "metrics_enabled": False,
        "partitioner": KeyedPartitioner(),
    }
    config.update(overrides)
    return KafkaProducer(**config)


def samples_consumer(settings: Settings) -> KafkaConsumer:
    """The consumer-group member that reads samples; offsets are committed by hand."""
    return KafkaConsumer(
        **settings.kafka.client_config(),
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset=settings.kafka.auto_offset_reset,
        max_poll_records=settings.max_poll_records,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=max(1_048_576, settings.max_message_bytes + 64 * 1024),
        # A replica that crashed keeps its partitions until its session expires, and the
        # rebalance that hands them on waits for that: kafka-python's 45 s default stalled
        # the whole group for 45 s after every crash. Heartbeats come from a background
        # thread, so a slow batch does not end a 10 s session (max_poll_interval_ms does).
        session_timeout_ms=10_000,
        metrics_enabled=False,
    )


def log_consumer(settings: Settings) -> KafkaConsumer:
    """A group-less consumer positioned by the service: every replica reads every record.

    For the labels topic and for the oracle topic read back as the log of queries.
    """
    return KafkaConsumer(
        **settings.kafka.client_config(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # The loop polls labels without waiting; a short fetch wait lets a label reach the
        # model within milliseconds instead of the default half second.
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=max(1_048_576, settings.max_message_bytes + 64 * 1024),
        metrics_enabled=False,
    )


def written_topics(settings: Settings) -> list[str]:
    """The topics the service itself writes to."""
    topics = settings.topics
    names = [topics.oracle, topics.dead_letters]
    return [*names, topics.predictions] if topics.predictions else names


def topic_names(settings: Settings) -> list[str]:
    """The topics the service reads and writes (predictions only when turned on)."""
    return [settings.topics.samples, settings.topics.labels, *written_topics(settings)]


#: What a record the service writes needs beyond its value (at most ``max_message_bytes``):
#: its key, its headers (a dead letter's are bounded at 17 KiB) and the batch's framing.
RECORD_OVERHEAD_BYTES = 32 * 1024
#: What a topic takes when neither it nor the broker says otherwise (``message.max.bytes``).
_KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


class TopicTooSmall(ValueError):
    """A topic the service writes to refuses messages as large as the service may send."""


def topic_configs(admin: KafkaAdminClient, topic: str, names: tuple[str, ...]) -> dict[str, str]:
    """The values of the configs ``names`` of ``topic`` in force (defaults included)."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {name: None for name in names})
    described = admin.describe_configs([resource], config_filter="all")
    entries = described.get("topic", {}).get(topic, {})
    return {name: entry.get("value") for name, entry in entries.items() if name in names}


def ensure_topics(settings: Settings, extra: dict[str, dict[str, str]] | None = None) -> None:
    """Create the service's topics that do not exist yet (``extra``: name -> topic configs).

    Those the service writes to are created taking its largest message, and an existing one
    that takes less ends the start with ``TopicTooSmall``: otherwise the broker would refuse
    such a message, and the service replay its batch for ever.
    """
    topics = settings.topics
    wanted: dict[str, dict[str, str]] = {name: {} for name in topic_names(settings)}
    needed = settings.max_message_bytes + RECORD_OVERHEAD_BYTES
    if needed > _KAFKA_DEFAULT_MAX_MESSAGE_BYTES:
        for name in written_topics(settings):
            wanted[name] = {"max.message.bytes": str(needed)}
    wanted.update(extra or {})
    admin = KafkaAdminClient(**settings.kafka.client_config())
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=topics.partitions,
                replication_factor=topics.replication_factor,
                topic_configs=configs,
            )
            for name, configs in wanted.items()
            if name not in existing
        ]
        if missing:
            # Another replica may have created one first.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
            log.info("created topics %s", ", ".join(topic.name for topic in missing))
        for name in written_topics(settings):
            _check_message_limit(admin, name, needed, settings.max_message_bytes)
    finally:
        admin.close()


def _check_message_limit(admin: KafkaAdminClient, topic: str, needed: int, largest: int) -> None:
    try:
        found = topic_configs(admin, topic, ("max.message.bytes",)).get("max.message.bytes")
    except KafkaError as error:  # not allowed to describe configs, say: the broker will tell
        log.warning("could not read max.message.bytes of topic %r (%s)", topic, error)
        return
    if found is not None and int(found) < needed:
        raise TopicTooSmall(
            f"topic {topic!r} takes messages of at most {int(found)} bytes (max.message.bytes), "
            f"less than the service may write to it: max_message_bytes {largest} + "
            f"{RECORD_OVERHEAD_BYTES} for key and headers = {needed}. Raise the topic's "
            "max.message.bytes or lower max_message_bytes"
        )


def subscribe(
    consumer: KafkaConsumer, topic: str, listener: ConsumerRebalanceListener | None = None
) -> None:
    """Join ``consumer``'s group on ``topic``, then wait until the topic's partitions are known.

    In that order: the metadata update is what the group's leader compares its assignment
    with. Waiting first makes the first assignment against an empty snapshot, and the
    arriving metadata then forces a second rebalance, whose result kafka-python 3.0 can drop
    when a poll times out mid-way, leaving the member with no partitions for good.
    """
    if listener is None:
        consumer.subscribe([topic])
    else:
        consumer.subscribe([topic], listener=listener)
    partitions_of(consumer, topic)


def partitions_of(
    consumer: KafkaConsumer | GroupConsumer | LogConsumer, topic: str, timeout: float = 60.0
) -> set[int]:
    """The partitions of ``topic``, waiting for its metadata (a new topic takes a moment)."""
    deadline = time.monotonic() + timeout
    while not (partitions := consumer.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic!r} does not exist (set topics.create to create it)")
        time.sleep(0.2)
    return set(partitions)


class BrokerProbe:
    """Checks in the background, every ``interval`` seconds, that a bootstrap server answers.

    A TCP connection is what the readiness check needs to know (kafka-python reconnects by
    itself and does not say when it cannot), and it never blocks the service loop.
    """

    def __init__(self, bootstrap_servers: str, interval: float = 1.0) -> None:
        self._addresses = [host_port(server) for server in bootstrap_servers.split(",")]
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="broker-probe", daemon=True)
        self.reachable = False

    def start(self) -> None:
        self.reachable = self.check()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        for host, port in self._addresses:
            try:
                with socket.create_connection((host, port), timeout=self._interval):
                    return True
            except OSError:
                continue
        return False

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.reachable = self.check()


def admin(settings: Settings) -> KafkaAdminClient:
    """An admin client of the cluster (the caller closes it)."""
    return KafkaAdminClient(**settings.kafka.client_config())


def group_lag(
    admin_client: KafkaAdminClient, consumer: LogConsumer, group_id: str, topic: str
) -> int:
    """Messages of ``topic`` that ``group_id`` has not committed yet.

    A partition the group never committed on counts from its beginning: labelers start
    at the earliest offset, so before the first answer every query waits (and with no
    labelers at all, nothing is answered). ``consumer`` reads the topic's offsets.
    """
    partitions = [Partition(topic, p) for p in sorted(partitions_of(consumer, topic))]
    found = admin_client.list_group_offsets({group_id: partitions}).get(group_id, {})
    # A partition without a commit comes back with offset -1.
    committed = {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}
    ends = consumer.end_offsets(partitions)
    missing = [tp for tp in partitions if tp not in committed]
    starts = consumer.beginning_offsets(missing) if missing else {}
    return sum(max(0, ends[tp] - committed.get(tp, starts.get(tp, 0))) for tp in partitions)
