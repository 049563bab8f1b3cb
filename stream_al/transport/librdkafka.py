"""The transport on confluent-kafka (librdkafka), the optional faster client.

``pip install 'stream_al[librdkafka]'`` and ``kafka.client = "librdkafka"``. The clients
are configured from the same settings as kafka-python's (security options mapped to
librdkafka's names; ``kafka.librdkafka`` adds librdkafka properties of its own) and keep
the service's semantics: acks from all in-sync replicas, offsets committed only when the
service says so, rebalance callbacks served inside ``poll`` on the service's thread.

librdkafka does the protocol work in its own threads, in C: per message, what is left in
Python is one call to produce and one to read the consumed message's fields.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

try:
    import confluent_kafka as ck
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "kafka.client = 'librdkafka' needs confluent-kafka: pip install 'stream_al[librdkafka]'"
    ) from error

from stream_al.core.imports import load_object
from stream_al.settings import Settings
from stream_al.transport.base import (
    Batch,
    Callback,
    DeliveryTimeout,
    Record,
    TopicPartition,
    TransportError,
)

log = logging.getLogger(__name__)
_LIBRDKAFKA_LOG = logging.getLogger("stream_al.librdkafka")

#: A produce that finds librdkafka's queue full waits this long for room, then tries again.
_QUEUE_FULL_WAIT_SECONDS = 0.05
#: How long a metadata or offsets request may take, retries included.
_REQUEST_SECONDS = 10.0
_RETRY_SECONDS = 0.1


def _error(error: Any) -> TransportError:
    """A ``TransportError`` from a ``KafkaException`` or a ``KafkaError``."""
    kafka_error = error.args[0] if isinstance(error, ck.KafkaException) else error
    if isinstance(kafka_error, ck.KafkaError):
        return TransportError(
            f"{kafka_error.name()}: {kafka_error.str()}",
            kafka_error.retriable() or kafka_error.code() in _TRANSIENT,
        )
    return TransportError(str(error), retriable=False)


#: Errors librdkafka does not flag retriable that pass once the cluster is back.
_TRANSIENT = {
    ck.KafkaError._TRANSPORT,
    ck.KafkaError._ALL_BROKERS_DOWN,
    ck.KafkaError._TIMED_OUT,
    ck.KafkaError._WAIT_COORD,
    ck.KafkaError.REQUEST_TIMED_OUT,
    ck.KafkaError.NOT_COORDINATOR,
    ck.KafkaError.COORDINATOR_NOT_AVAILABLE,
    ck.KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    ck.KafkaError.REBALANCE_IN_PROGRESS,
    ck.KafkaError.UNKNOWN_MEMBER_ID,
    ck.KafkaError.ILLEGAL_GENERATION,
    ck.KafkaError._NO_OFFSET,
    ck.KafkaError.NOT_LEADER_FOR_PARTITION,
    ck.KafkaError.LEADER_NOT_AVAILABLE,
    ck.KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's properties for the cluster settings (shared by every client)."""
    kafka = settings.kafka
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": kafka.client_id,
        "security.protocol": kafka.security_protocol,
        "socket.timeout.ms": kafka.request_timeout_ms,
        "logger": _LIBRDKAFKA_LOG,
        "error_cb": _log_client_error,
    }
    if kafka.sasl_mechanism is not None:
        config["sasl.mechanism"] = kafka.sasl_mechanism
        if kafka.sasl_plain_username is not None:
            config["sasl.username"] = kafka.sasl_plain_username
        if kafka.sasl_plain_password is not None:
            config["sasl.password"] = kafka.sasl_plain_password.get_secret_value()
    if kafka.sasl_oauth_token_provider is not None:
        config["oauth_cb"] = _oauth_callback(kafka.sasl_oauth_token_provider)
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if kafka.ssl_check_hostname else "none"
        )
        for name, prop in (
            ("ssl_cafile", "ssl.ca.location"),
            ("ssl_certfile", "ssl.certificate.location"),
            ("ssl_keyfile", "ssl.key.location"),
        ):
            value = getattr(kafka, name)
            if value is not None:
                config[prop] = str(value)
    return config


def _log_client_error(error: Any) -> None:
    # The cluster going away is reported here and retried by librdkafka itself, which
    # logs it too; the service notices through its calls and its broker probe.
    log.debug("librdkafka: %s", error)


def _oauth_callback(name: str) -> Any:
    """librdkafka's ``oauth_cb`` around the kafka-python token provider that is configured."""
    loaded = load_object(name, "kafka.sasl_oauth_token_provider")
    provider = loaded() if callable(loaded) else loaded

    def token(_config: str) -> tuple[str, float]:
        # The provider says no lifetime: ask again in five minutes.
        return provider.token(), time.time() + 300

    return token


class _Delivery:
    """The outcome of one produce, set by librdkafka's callback (served by flush) when it
    failed; none comes for a message delivered (``delivery.report.only.error``)."""

    __slots__ = ("exception",)

    def __init__(self) -> None:
        self.exception: BaseException | None = None

    def failed(self) -> bool:
        return self.exception is not None

    def __call__(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.exception = _error(error)


def _client(kind: type[Any], config: dict[str, Any]) -> Any:
    """A librdkafka client; a property it refuses ends the start with its message."""
    try:
        return kind(config)
    except (ck.KafkaException, ValueError, TypeError) as error:
        raise TransportError(f"librdkafka refused the configuration: {error}", False) from error


class _Producer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = _client(ck.Producer, config)

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> _Delivery:
        delivery = _Delivery()
        while True:
            try:
                if headers:
                    self._producer.produce(topic, value, key, on_delivery=delivery, headers=headers)
                else:
                    self._producer.produce(topic, value, key, on_delivery=delivery)
                return delivery
            except BufferError:
                # librdkafka's queue is full: serve deliveries until there is room.
                self._producer.poll(_QUEUE_FULL_WAIT_SECONDS)
            except ck.KafkaException as error:
                raise _error(error) from error

    def flush(self, timeout: float) -> None:
        left = self._producer.flush(timeout)
        if left:
            raise DeliveryTimeout(f"{left} messages not delivered within {timeout:.1f} s")

    def close(self, timeout: float) -> None:
        if self._producer.flush(timeout):
            log.warning("closing the producer with messages not delivered; they are dropped")
            self._producer.purge()
            self._producer.flush(0)


class _Record:
    """A consumed message with the attributes of a :class:`~.base.Record`."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, message: Any) -> None:
        self.topic: str = message.topic()
        self.partition: int = message.partition()
        self.offset: int = message.offset()
        self.timestamp: int = message.timestamp()[1]
        self.key: bytes | None = message.key()
        self.value: bytes | None = message.value()
        self.headers: list[tuple[str, bytes]] = message.headers() or []


class _Reader:
    def __init__(self, consumer: Any, max_records: int) -> None:
        self._consumer = consumer
        self._max_records = max_records

    def poll(self, timeout_ms: int) -> Batch:
        try:
            messages = self._consumer.consume(self._max_records, timeout_ms / 1000)
        except ck.KafkaException as error:
            raise _error(error) from error
        batch: Batch = {}
        for message in messages:
            failure = message.error()
            if failure is not None:
                if failure.code() == ck.KafkaError._PARTITION_EOF:
                    continue
                raise _error(failure)
            record: Record = _Record(message)
            tp = TopicPartition(record.topic, record.partition)
            if (records := batch.get(tp)) is None:
                batch[tp] = [record]
            else:
                records.append(record)
        self._consumed(batch)
        return batch

    def _consumed(self, batch: Batch) -> None:
        """Told of every batch polled."""

    def seek(self, partition: TopicPartition, offset: int) -> None:
        try:
            self._consumer.seek(ck.TopicPartition(partition.topic, partition.partition, offset))
        except ck.KafkaException as error:
            raise _error(error) from error

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def _watermarks(self, partition: TopicPartition) -> tuple[int, int]:
        # kafka-python retries an offsets request whose partition has no leader yet (a
        # topic just created); librdkafka reports it: retried here the same way.
        deadline = time.monotonic() + _REQUEST_SECONDS
        tp = ck.TopicPartition(partition.topic, partition.partition)
        while True:
            try:
                low, high = self._consumer.get_watermark_offsets(tp, _REQUEST_SECONDS)
                return low, high
            except ck.KafkaException as exception:
                error = _error(exception)
                if not error.retriable or time.monotonic() > deadline:
                    raise error from exception
            time.sleep(_RETRY_SECONDS)

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._watermarks(tp)[1] for tp in partitions}

    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._watermarks(tp)[0] for tp in partitions}

    def position(self, partition: TopicPartition) -> int:
        (found,) = self._consumer.position(
            [ck.TopicPartition(partition.topic, partition.partition)]
        )
        return int(found.offset)

    def partitions_for_topic(self, topic: str) -> set[int]:
        try:
            metadata = self._consumer.list_topics(topic, _REQUEST_SECONDS)
        except ck.KafkaException as error:
            raise _error(error) from error
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return set()
        return set(found.partitions)

    def close(self, timeout_ms: int) -> None:
        # librdkafka's close leaves the group and can wait for a broker that is away as
        # long as a request may take: bounded here, the rest is left to the process's end.
        closing = threading.Thread(target=self._consumer.close, daemon=True)
        closing.start()
        closing.join(timeout_ms / 1000)


class _GroupConsumer(_Reader):
    def __init__(self, consumer: Any, max_records: int) -> None:
        super().__init__(consumer, max_records)
        self._closing = False

    def subscribe(self, topic: str, on_assigned: Callback, on_revoked: Callback) -> None:
        def assigned(_consumer: Any, partitions: list[Any]) -> None:
            self._call(on_assigned, partitions)

        def revoked(_consumer: Any, partitions: list[Any]) -> None:
            self._call(on_revoked, partitions)

        self._consumer.subscribe([topic], on_assign=assigned, on_revoke=revoked)

    def _call(self, callback: Callback, partitions: list[Any]) -> None:
        # As kafka-python does: a callback that fails is logged, the rebalance goes on
        # (librdkafka's own assign or unassign follows the callback).
        if self._closing:
            return
        try:
            callback({TopicPartition(tp.topic, tp.partition) for tp in partitions})
        except Exception:
            log.exception("a rebalance callback failed")

    def _offsets(self, offsets: dict[TopicPartition, int]) -> list[Any]:
        return [ck.TopicPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()]

    def commit(self, offsets: dict[TopicPartition, int], timeout: float) -> None:
        # librdkafka's synchronous commit has no timeout of its own (only socket.timeout.ms
        # bounds its request): bounded here, as kafka-python's is. A commit that outlives
        # its wait may still land later, which is safe: these offsets were delivered.
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self._consumer.commit(offsets=self._offsets(offsets), asynchronous=False)
            except BaseException as error:  # handed to the caller's thread
                failure.append(error)

        committing = threading.Thread(target=run, name="librdkafka-commit", daemon=True)
        committing.start()
        committing.join(timeout)
        if committing.is_alive():
            raise TransportError(f"the offset commit took longer than {timeout:g} s", True)
        if failure and isinstance(failure[0], ck.KafkaException):
            raise _error(failure[0]) from failure[0]
        if failure:
            raise failure[0]

    def commit_async(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            self._consumer.commit(offsets=self._offsets(offsets), asynchronous=True)
        except ck.KafkaException as error:
            raise _error(error) from error

    def lag(self, partition: TopicPartition) -> int | None:
        tp = ck.TopicPartition(partition.topic, partition.partition)
        _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
        (position,) = self._consumer.position([tp])
        if high < 0 or position.offset < 0:
            return None
        return max(0, high - position.offset)

    def rebalancing(self) -> bool:
        return False  # librdkafka rejoins by itself

    def leave(self) -> None:
        self._closing = True
        self._consumer.close()

    def close(self, timeout_ms: int) -> None:
        self._closing = True
        super().close(timeout_ms)


class _LogConsumer(_Reader):
    """Assigned by hand. librdkafka refuses a seek on a partition it has not begun to fetch,
    so a seek assigns the partitions again, each at its next offset."""

    def __init__(self, consumer: Any, max_records: int) -> None:
        super().__init__(consumer, max_records)
        self._next: dict[TopicPartition, int] = {}

    def assign(self, offsets: dict[TopicPartition, int]) -> None:
        self._next = dict(offsets)
        self._assign()

    def _assign(self) -> None:
        try:
            self._consumer.assign(
                [ck.TopicPartition(tp.topic, tp.partition, o) for tp, o in self._next.items()]
            )
        except ck.KafkaException as error:
            raise _error(error) from error

    def _consumed(self, batch: Batch) -> None:
        for tp, records in batch.items():
            self._next[tp] = records[-1].offset + 1

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if self._next.get(partition) != offset:
            self._next[partition] = offset
            self._assign()

    def position(self, partition: TopicPartition) -> int:
        return self._next[partition]


class LibrdkafkaTransport:
    """The service's clients on confluent-kafka."""

    name = "librdkafka"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._config = client_config(settings)

    def producer(self) -> _Producer:
        settings = self._settings
        return _Producer(
            {
                **self._config,
                "acks": "all",
                "linger.ms": 20,
                # The Java clients' (and kafka-python's) rule for a keyed message; librdkafka's
                # own default, CRC32, would put a key on another partition than they do.
                "partitioner": "murmur2_random",
                "message.max.bytes": settings.max_message_bytes + 64 * 1024,
                # A broker restart must not drop a message: retry for up to ten minutes.
                "message.timeout.ms": 600_000,
                # A delivery is done unless its callback said otherwise: the binding calls it
                # only for a failure, not once per message delivered (0.4 us per message).
                "delivery.report.only.error": True,
                **settings.kafka.librdkafka,
            }
        )

    def _consumer_config(self) -> dict[str, Any]:
        """What both consumers share; each adds its own, then ``kafka.librdkafka``."""
        return {
            **self._config,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "max.partition.fetch.bytes": max(
                1_048_576, self._settings.max_message_bytes + 64 * 1024
            ),
            "on_commit": _log_commit_result,
        }

    def group_consumer(self) -> _GroupConsumer:
        settings = self._settings
        config = {
            **self._consumer_config(),
            "group.id": settings.group_id,
            "auto.offset.reset": settings.kafka.auto_offset_reset,
            "fetch.wait.max.ms": 50,
            # As with kafka-python: a crashed replica's partitions move on after 10 s.
            "session.timeout.ms": 10_000,
            **settings.kafka.librdkafka,
        }
        return _GroupConsumer(_client(ck.Consumer, config), settings.max_poll_records)

    def log_consumer(self) -> _LogConsumer:
        config = {
            **self._consumer_config(),
            # librdkafka wants a group id even where none is joined; nothing is committed.
            "group.id": f"{self._settings.group_id}.log",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
            **self._settings.kafka.librdkafka,
        }
        return _LogConsumer(_client(ck.Consumer, config), self._settings.max_poll_records)


def _log_commit_result(error: Any, partitions: list[Any]) -> None:
    if error is not None:
        log.warning(
            "could not commit offsets %s: %s; those samples will come again",
            [(tp.topic, tp.partition, tp.offset) for tp in partitions],
            error,
        )
