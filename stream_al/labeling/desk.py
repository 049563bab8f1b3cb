"""The labeling desk: the queue (`stream_al.labeling.queue`) fed from Kafka.

One consumer in the labelers' group (``labeling.group_id``) reads the oracle topic into the
queue; answers go to the labels topic; an oracle offset is committed only once the queue says
every item before it is done, which is after Kafka acknowledged all of its answers. A client
that crashes before that leaves the uncommitted queries to whoever gets their partitions.

Clients (the web app, the terminal labeler) call the thread-safe methods; one background
thread owns the consumer. k distinct annotators are found among the people working at one
desk: several desks in the group split the oracle topic's partitions between them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from stream_al.core.types import ClassLabel
from stream_al.labeling.metrics import LabelingMetrics
from stream_al.labeling.queue import AnswerRefused, LabelQueue
from stream_al.schemas import LabelMessage, Query, encode
from stream_al.service import kafka_io
from stream_al.service.preflight import check_cluster
from stream_al.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["AnswerRefused", "DeskStatus", "LabelingDesk"]


@dataclass(frozen=True)
class DeskStatus:
    """A labeler's header: the queue and their own work."""

    annotator: str
    queue_items: int
    backlog: int
    labels: int
    skips: int
    labels_per_hour: float
    agreement: float | None
    annotators_per_item: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class LabelingDesk:
    """The queue of one labeling client on the oracle topic (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        metrics: LabelingMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        labeling = settings.labeling
        self.settings = settings
        self.metrics = metrics or LabelingMetrics(labeling.max_annotators_in_metrics)
        self.queue = LabelQueue(
            annotators_per_item=labeling.annotators_per_item,
            lease_seconds=labeling.lease_seconds,
            stale_after_seconds=labeling.stale_after_seconds,
            undo_seconds=labeling.undo_seconds,
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: Set once the consumer has been given partitions of the oracle topic.
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="labeling-desk", daemon=True)
        self._consumer: KafkaConsumer | None = None
        self._producer: Any = None
        self._committed: dict[int, int] = {}
        #: (annotator, item) -> when it was handed to them; annotator -> their last answer.
        self._shown_at: dict[tuple[str, str], float] = {}
        self._last_answer_at: dict[str, float] = {}
        self._backlog = 0
        self._paused = False  # whether the queue is full and the oracle topic paused
        self.error: BaseException | None = None

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Check the cluster, join the labelers' group and start fetching."""
        settings, topics = self.settings, self.settings.topics
        check_cluster(settings.kafka, () if topics.create else [topics.oracle, topics.labels])
        if topics.create:
            kafka_io.ensure_topics(settings)
        self._consumer = KafkaConsumer(
            **settings.kafka.client_config(),
            group_id=settings.labeling.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
            # A crashed desk's partitions move on after 10 s, not kafka-python's 45.
            session_timeout_ms=10_000,
            metrics_enabled=False,
        )
        kafka_io.subscribe(self._consumer, topics.oracle, listener=_Rebalance(self))
        self._producer = kafka_io.producer(settings, linger_ms=0)
        self._thread.start()

    def stop(self) -> None:
        """Deliver what was answered, commit what is done, leave the group."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        if self._producer is not None:
            self._producer.flush(timeout=30)
            self._commit()
            self._producer.close(timeout=10)
        if self._consumer is not None:
            self._consumer.close(autocommit=False)

    # -- what clients call (any thread) ----------------------------------------------------

    def items(self, annotator: str) -> list[Query]:
        """The items this annotator holds (leased up to two: one shown, one prefetched)."""
        now = self._clock()
        with self._lock:
            self.queue.renew(annotator, now)
            held = self.queue.fill(annotator, now)
        held_ids = {query.id for query in held}
        for key in [key for key in self._shown_at if key[0] == annotator]:
            if key[1] not in held_ids:
                del self._shown_at[key]  # its lease ran out or its partition moved on
        for query in held:
            self._shown_at.setdefault((annotator, query.id), now)
        return held

    def renew(self, annotator: str) -> None:
        """Keep the annotator's leases: they are still looking at their items."""
        with self._lock:
            self.queue.renew(annotator, self._clock())

    def answer(self, annotator: str, item_id: str, label: ClassLabel | None) -> list[Query]:
        """Send the annotator's answer (None: "don't know"); returns what they hold next.

        Raises `AnswerRefused` (the item is gone or went to another annotator).
        """
        now = self._clock()
        try:
            with self._lock:
                message = self.queue.answer(annotator, item_id, label, now)
        except AnswerRefused:
            self.metrics.answered("refused")
            raise
        handed = self._shown_at.pop((annotator, item_id), None)
        # A prefetched item is on screen from the previous answer on, not from its lease.
        shown = max(handed or now, self._last_answer_at.get(annotator, 0.0))
        self._last_answer_at[annotator] = now
        self.metrics.answered("label" if label is not None else "skip", now - shown)
        self._send(message, delivered=lambda: self._delivered(item_id, annotator))
        return self.items(annotator)

    def undo(self, annotator: str) -> tuple[Query, ClassLabel | None] | None:
        """The annotator's last item and answer, if still within the undo window."""
        with self._lock:
            return self.queue.undo(annotator, self._clock())

    def correct(self, annotator: str, item_id: str, label: ClassLabel | None) -> list[Query]:
        """Send the answer that replaces the annotator's last one (after `undo`)."""
        with self._lock:
            message = self.queue.correct(annotator, item_id, label, self._clock())
        self.metrics.answered("correction")
        self._send(message, delivered=lambda: None)
        return self.items(annotator)

    def release(self, annotator: str) -> int:
        """Return the annotator's items to the queue (their page closed)."""
        with self._lock:
            released = self.queue.release(annotator)
        for key in [key for key in self._shown_at if key[0] == annotator]:
            self._shown_at.pop(key, None)
        return released

    def status(self, annotator: str) -> DeskStatus:
        with self._lock:
            stats = self.queue.stats(annotator, self._clock())
            depth = self.queue.depth
        return DeskStatus(
            annotator=annotator,
            queue_items=depth,
            backlog=self._backlog,
            labels=stats.labels,
            skips=stats.skips,
            labels_per_hour=stats.labels_per_hour,
            agreement=stats.agreement,
            annotators_per_item=self.queue.k,
        )

    # -- the loop (the consumer's thread) --------------------------------------------------

    def _loop(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        outages = kafka_io.Outages("the labeling desk")
        try:
            while not self._stop.is_set():
                with outages.step():
                    self._step(consumer)
        except BaseException as error:  # surfaced to the client by `error`
            log.exception("the labeling desk stopped")
            self.error = error

    def _step(self, consumer: KafkaConsumer) -> None:
        """One poll of the oracle topic and what follows it."""
        polled = consumer.poll(timeout_ms=100)
        if consumer.assignment():
            self.ready.set()
        now = self._clock()
        with self._lock:
            for tp, records in polled.items():
                for record in records:
                    self._take(record.value, tp.partition, record.offset, now)
            stale_before = self.queue.counts["stale"]
            self.queue.tidy(now)
            for _ in range(self.queue.counts["stale"] - stale_before):
                self.metrics.answered("stale")
            full = len(self.queue) >= self.settings.labeling.max_items
            self.metrics.queue_items.set(self.queue.depth)
            self.metrics.set_agreement(self.queue.agreement())
        if full != self._paused:
            # Hold no more than max_items: the rest waits on the topic, in order.
            (consumer.pause if full else consumer.resume)(*consumer.assignment())
            self._paused = full
        self._commit()
        self._update_backlog()

    def _take(self, value: bytes | None, partition: int, offset: int, now: float) -> None:
        try:
            query = Query.model_validate_json(value or b"")
        except ValidationError as error:
            # The service wrote it, so it should not happen; never block the queue on it.
            log.warning("skipping an unreadable query at offset %d: %s", offset, error)
            self.queue.skip_record(partition, offset)
            return
        self.queue.add(query, partition=partition, offset=offset, now=now)

    def _send(self, message: LabelMessage, delivered: Callable[[], None]) -> None:
        topic = self.settings.topics.labels
        future = self._producer.send(topic, key=message.id.encode(), value=encode(message))
        future.add_callback(lambda _: delivered())
        # The producer retries through outages for its delivery timeout; after that the
        # answer is lost and the item stays uncommitted, so it is asked again after a restart.
        future.add_errback(lambda error: log.error("answer for %r lost: %s", message.id, error))

    def _delivered(self, item_id: str, annotator: str) -> None:
        with self._lock:
            self.queue.delivered(item_id, annotator)

    def _commit(self, partitions: set[int] | None = None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        topic = self.settings.topics.oracle
        owned = {tp.partition for tp in consumer.assignment()}
        with self._lock:
            offsets = self.queue.committable()
        wanted = {
            TopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
            for p, o in offsets.items()
            if p in owned
            and (partitions is None or p in partitions)
            and o > self._committed.get(p, -1)
        }
        if not wanted:
            return
        try:
            consumer.commit(wanted)
        except KafkaError as error:
            # A rebalance took the partitions: their new owner asks those items again.
            log.warning("could not commit answered queries: %s", error)
            return
        for tp, position in wanted.items():
            self._committed[tp.partition] = position.offset

    def _update_backlog(self) -> None:
        assert self._consumer is not None
        backlog = 0
        for tp in self._consumer.assignment():
            if tp.partition not in self._committed:
                # Where the group stood when this desk got the partition (not from inside
                # the rebalance callback: kafka-python forbids blocking calls there).
                self._committed[tp.partition] = self._consumer.committed(tp) or 0
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                backlog += max(0, highwater - self._committed.get(tp.partition, 0))
        self._backlog = backlog
        self.metrics.lag.set(backlog)

    def _revoked(self, partitions: set[int]) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=30)
        self._commit(partitions)
        with self._lock:
            self.queue.drop_partitions(partitions)
        for partition in partitions:
            self._committed.pop(partition, None)


class _Rebalance(ConsumerRebalanceListener):
    """Before partitions move on: deliver, commit what is done, forget their items."""

    def __init__(self, desk: LabelingDesk) -> None:
        self._desk = desk

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._desk._revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass
