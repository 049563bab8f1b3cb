"""The Kafka service: a thin adapter that moves messages to and from an ``ActiveLearner``.

One thread does everything, in a loop: learn from the labels that have arrived, then take
a batch of samples, score each, publish predictions and queries, wait until the producer
has delivered them, and only then commit the batch's offsets (at-least-once: a crash
replays a batch, it never drops one). The learner decides; this module only moves bytes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.coordinator.base import MemberState
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from stream_al.core.learner import ActiveLearner, LabelStatus
from stream_al.schemas import (
    DeadLetterReason,
    InvalidMessage,
    Prediction,
    decode_label,
    decode_sample,
    encode,
)
from stream_al.service import kafka_io
from stream_al.service.checkpointing import Checkpointer
from stream_al.service.dead_letters import dead_letter
from stream_al.service.metrics import ServiceMetrics
from stream_al.settings import Settings

log = logging.getLogger(__name__)

_GAUGE_INTERVAL_SECONDS = 1.0
_STUCK_REBALANCE_SECONDS = 60.0
_FIRST_RETRY_SECONDS = 0.1
_MAX_RETRY_SECONDS = 5.0
_LABEL_STATUS_TO_REASON: dict[LabelStatus, DeadLetterReason] = {
    LabelStatus.DUPLICATE: "duplicate",
    LabelStatus.UNKNOWN_ID: "unknown_id",
    LabelStatus.EXPIRED: "expired",
    LabelStatus.INVALID: "invalid_label",
}


@dataclass
class _Batch:
    """Samples taken but not committed yet: the next offset per partition, and deliveries."""

    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    deliveries: list[Any] = field(default_factory=list)

    def took(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        """Note one polled run of ``tp``'s records (once per partition, not per record)."""
        self.first_offsets.setdefault(tp, records[0].offset)
        self.offsets[tp] = records[-1].offset + 1


def _log_commit_failure(offsets: dict[TopicPartition, OffsetAndMetadata], result: Any) -> None:
    if isinstance(result, Exception):
        log.warning(
            "could not commit offsets %s: %s; those samples will come again", offsets, result
        )


class _CommitBeforeRevoke(ConsumerRebalanceListener):
    def __init__(self, service: Service) -> None:
        self._service = service

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._service._finish_batch(wait_for_commit=True)
        self._service._assigned.difference_update(revoked)
        for tp in revoked:
            self._service.metrics.remove_lag(tp.topic, tp.partition)
        self._service.metrics.rebalanced()
        log.info("partitions revoked: %s", sorted((tp.topic, tp.partition) for tp in revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._service._assigned.update(assigned)
        log.info("partitions assigned: %s", sorted((tp.topic, tp.partition) for tp in assigned))


class Service:
    """``stream-al run``: samples in, predictions and queries out, labels learned online.

    The learner is a fresh one built from ``settings.learner``, or the one the
    ``checkpointer`` restores together with the labels offsets it reflects; without a
    checkpoint the labels consumer starts at the end of the labels topic.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: ServiceMetrics | None = None,
        checkpointer: Checkpointer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.learner = ActiveLearner(settings.learner)
        self.metrics = (
            metrics
            if metrics is not None
            else ServiceMetrics(settings.metrics.host, settings.metrics.port)
        )
        self.metrics.set_readiness(self.readiness)
        #: labels partition -> next offset to read; what a checkpoint records.
        self.label_offsets: dict[int, int] = {}
        self.checkpointer = checkpointer
        self._clock = clock
        self._stopping = threading.Event()
        self._batch = _Batch()
        self._producer: KafkaProducer | None = None
        self._samples: KafkaConsumer | None = None
        self._labels: KafkaConsumer | None = None
        # Read by the metrics HTTP thread: plain values the service keeps up to date, never
        # the Kafka clients themselves, which are not thread-safe.
        self._assigned: set[TopicPartition] = set()
        self._broker_probe = kafka_io.BrokerProbe(settings.kafka.bootstrap_servers)
        self._last_gauges = 0.0
        self._unstable_since: float | None = None

    # -- life cycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop after the batch in hand (safe from a signal handler)."""
        self._stopping.set()

    def run(self) -> None:
        """Connect, then loop until ``stop()``; flushes and commits before returning.

        A retriable Kafka error (the broker is away, a coordinator moved) interrupts one
        step, not the service: the consumers go back to what the learner has taken in, and
        the loop tries again after a pause that grows to ``_MAX_RETRY_SECONDS``.
        """
        self.connect()
        pause = _FIRST_RETRY_SECONDS
        try:
            while not self._stopping.is_set():
                try:
                    self.step()
                except KafkaError as error:
                    if not error.retriable:
                        raise
                    log.warning("Kafka is unavailable (%s); retrying in %.1f s", error, pause)
                    self._rewind()
                    self._stopping.wait(pause)
                    pause = min(2 * pause, _MAX_RETRY_SECONDS)
                else:
                    pause = _FIRST_RETRY_SECONDS
        finally:
            self.close()

    def connect(self) -> None:
        """Restore the checkpoint; create missing topics, the producer and both consumers."""
        if self.checkpointer is not None:
            learner, offsets = self.checkpointer.restore()
            if learner is not None:
                self.learner, self.label_offsets = learner, offsets
        if self.settings.topics.create:
            kafka_io.ensure_topics(self.settings)
        self._producer = kafka_io.producer(self.settings)
        self._labels = kafka_io.labels_consumer(self.settings)
        self._assign_labels()
        if self.checkpointer is not None:
            # From here on no label may be lost, so there must be offsets to return to.
            self._save_checkpoint()
        self._join_samples_group()
        self._broker_probe.start()
        log.info(
            "stream_al service started: group %s, replica %s, model %s, strategy %s (budget %s)",
            self.settings.group_id,
            self.settings.replica_id,
            self.learner.model.describe(),
            self.settings.learner.strategy.name,
            self.settings.learner.strategy.budget,
        )

    def _join_samples_group(self) -> None:
        self._samples = kafka_io.samples_consumer(self.settings)
        kafka_io.subscribe(self._samples, self.settings.topics.samples, _CommitBeforeRevoke(self))

    def _watch_group_membership(self) -> None:
        """Join the group afresh if the samples consumer is stuck in a rebalance.

        kafka-python 3.0 very rarely stalls in a join (leader elected, then silence) while the
        broker is fine; the member then holds no partitions for good. A standby replica with
        no partitions is stable, so only a rebalance that lasts this long starts over.
        """
        assert self._samples is not None
        state = getattr(self._samples._coordinator, "state", MemberState.STABLE)
        now = time.monotonic()
        if state is MemberState.STABLE or not self._broker_probe.reachable:
            self._unstable_since = None
            return
        if self._unstable_since is None:
            self._unstable_since = now
        elif now - self._unstable_since > _STUCK_REBALANCE_SECONDS:
            log.warning(
                "the samples consumer has been rebalancing for %.0f s; joining the group afresh",
                now - self._unstable_since,
            )
            self._samples.close(autocommit=False)
            self._assigned.clear()
            self.metrics.rebalanced()
            self._join_samples_group()

    def step(self, timeout_ms: int = 100) -> int:
        """One round: learn the labels that arrived, then score one batch. Returns samples seen."""
        assert self._samples is not None
        self._learn_available_labels()
        seen = 0
        for tp, records in self._samples.poll(timeout_ms=timeout_ms).items():
            self._batch.took(tp, records)
            for record in records:
                self._handle_sample(record)
            seen += len(records)
        self._finish_batch()
        if self.checkpointer is not None and self.checkpointer.save_if_due(
            self.learner, self.label_offsets
        ):
            self.metrics.checkpoint_saved()
        now = time.monotonic()
        if now - self._last_gauges >= _GAUGE_INTERVAL_SECONDS:
            self._last_gauges = now
            self._update_gauges()
            self._watch_group_membership()
        return seen

    def _rewind(self) -> None:
        """Seek both consumers back to the first record the learner has not taken in.

        A step cut short may have polled records it never handled; without this, the next
        commit would skip them. Samples of the unfinished batch come again (at-least-once).
        """
        assert self._samples is not None and self._labels is not None
        batch, self._batch = self._batch, _Batch()
        self._replay(batch)
        topic = self.settings.topics.labels
        for partition, offset in self.label_offsets.items():
            self._labels.seek(TopicPartition(topic, partition), offset)

    def close(self) -> None:
        """Deliver and commit what was processed, then close the clients."""
        try:
            self._finish_batch(wait_for_commit=True)
        except Exception:
            log.exception("could not commit the last batch; it will be replayed")
        if self.checkpointer is not None:
            try:
                self._save_checkpoint()
            finally:
                self.checkpointer.close()
        self._broker_probe.stop()
        for client in (self._samples, self._labels):
            if client is not None:
                client.close(autocommit=False)
        if self._producer is not None:
            self._producer.close()
        log.info("stream_al service stopped: %s", self._summary_line())

    def _save_checkpoint(self) -> None:
        assert self.checkpointer is not None
        self.checkpointer.save(self.learner, self.label_offsets)
        self.metrics.checkpoint_saved()

    # -- samples -----------------------------------------------------------------------------

    def _handle_sample(self, record: ConsumerRecord) -> None:
        started = time.perf_counter()
        try:
            # A null record (a tombstone) is an empty message: not JSON, not a crash.
            sample = decode_sample(record.value or b"", self.settings.max_message_bytes)
        except InvalidMessage as error:
            self._dead_letter(record, error.reason, error.detail)
            self.metrics.sample_dead_lettered(error.reason)
            return
        try:
            scored = self.learner.score(sample, now=self._clock())
        except Exception as error:  # a model that cannot take these values must not stop us
            self._dead_letter(record, "model_error", f"{type(error).__name__}: {error}")
            self.metrics.sample_dead_lettered("model_error")
            return
        self.metrics.observe_decision_latency(time.perf_counter() - started)
        self.metrics.sample_scored()
        topics = self.settings.topics
        for query in scored.queries:
            self._send(topics.oracle, query.id, encode(query))
            self.metrics.query_sent(query.reason)
        if topics.predictions:
            prediction = Prediction(
                id=sample.id,
                label=scored.label,
                probabilities=scored.probabilities,
                queried=scored.queried,
            )
            self._send(topics.predictions, sample.id, encode(prediction))
            self.metrics.prediction_sent()

    def _send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        assert self._producer is not None
        encoded_key = key.encode() if isinstance(key, str) else key
        future = self._producer.send(topic, key=encoded_key, value=value, headers=headers)
        self._batch.deliveries.append(future)

    def _finish_batch(self, wait_for_commit: bool = False) -> None:
        """Wait for the batch's messages to be delivered, then commit its offsets.

        The commit itself is asynchronous in the loop (a round trip per batch would cost a
        third of the throughput); before partitions are revoked and at shutdown it is waited
        for. A commit that fails only means the batch comes again: at-least-once either way.
        """
        batch = self._batch
        if not batch.offsets and not batch.deliveries:
            return
        assert self._producer is not None and self._samples is not None
        self._producer.flush()
        # Only now is the batch off our hands: a flush that raised leaves it for _rewind.
        self._batch = _Batch()
        failed = [future for future in batch.deliveries if future.failed()]
        if failed:
            # Not delivered: do not commit; rewind so the batch is processed again.
            log.error(
                "%d messages not delivered (%s); replaying the batch",
                len(failed),
                failed[0].exception,
            )
            self._replay(batch)
            return
        if batch.offsets:
            offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in batch.offsets.items()}
            try:
                if wait_for_commit:
                    self._samples.commit(offsets)
                else:
                    self._samples.commit_async(offsets, callback=_log_commit_failure)
            except KafkaError as error:
                # The group is rebalancing or the broker is away: the batch was delivered
                # but not committed, so its samples come again (at-least-once), here or at
                # the partitions' next owner.
                log.warning("could not commit offsets %s: %s", batch.offsets, error)

    def _replay(self, batch: _Batch) -> None:
        """Seek the samples consumer back to ``batch``'s first records, where still assigned."""
        assert self._samples is not None
        assigned = self._samples.assignment()
        for tp, offset in batch.first_offsets.items():
            if tp in assigned:
                self._samples.seek(tp, offset)

    def _dead_letter(self, record: ConsumerRecord, reason: DeadLetterReason, detail: str) -> None:
        log.warning(
            "dead letter from %s[%d]@%d: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            detail,
        )
        key, value, headers = dead_letter(record, reason, detail, self.settings.max_message_bytes)
        self._send(self.settings.topics.dead_letters, key, value, headers)

    # -- labels ------------------------------------------------------------------------------

    def _assign_labels(self) -> None:
        """Read every partition of the labels topic, from ``label_offsets`` or from the end."""
        assert self._labels is not None
        topic = self.settings.topics.labels
        partitions = kafka_io.partitions_of(self._labels, topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._labels.assign(assigned)
        ends = self._labels.end_offsets(assigned)
        for tp in assigned:
            offset = self.label_offsets.get(tp.partition, ends[tp])
            self._labels.seek(tp, offset)
            self.label_offsets[tp.partition] = offset

    def _learn_available_labels(self) -> None:
        assert self._labels is not None
        records = self._labels.poll(timeout_ms=0)
        for batch in records.values():
            for record in batch:
                self._handle_label(record)

    def _handle_label(self, record: ConsumerRecord) -> None:
        next_offset = record.offset + 1
        if next_offset <= self.label_offsets.get(record.partition, 0):
            return  # already reflected in the learner (replayed after a seek)
        self.label_offsets[record.partition] = next_offset
        try:
            label = decode_label(record.value or b"", self.settings.max_message_bytes)
        except InvalidMessage as error:
            self._reject_label(record, error.reason, error.detail)
            return
        try:
            learned = self.learner.learn(label, now=self._clock())
        except Exception as error:
            self._reject_label(record, "model_error", f"{type(error).__name__}: {error}")
            return
        self.metrics.label_outcome(learned.status.value)
        if learned.status is LabelStatus.LEARNED:
            if learned.asked_at is not None:
                self.metrics.observe_label_latency(max(0.0, self._clock() - learned.asked_at))
            return
        reason = _LABEL_STATUS_TO_REASON[learned.status]
        self._dead_letter(record, reason, f"label for sample {label.id!r}: {learned.detail}")
        self.metrics.label_dead_lettered(reason)

    def _reject_label(self, record: ConsumerRecord, reason: DeadLetterReason, detail: str) -> None:
        self._dead_letter(record, reason, detail)
        self.metrics.label_outcome("invalid")
        self.metrics.label_dead_lettered(reason)

    # -- observability -----------------------------------------------------------------------

    def readiness(self) -> dict[str, bool]:
        """The readiness checks; safe to call from any thread."""
        return {
            "broker_reachable": self._broker_probe.reachable,
            "partitions_assigned": bool(self._assigned),
            "model_loaded": self.learner is not None,
        }

    def _update_gauges(self) -> None:
        learner = self.learner
        policy = learner.policy
        accuracy = learner.recent_accuracy.value
        self.metrics.set_learner_gauges(
            query_rate=learner.recent_query_rate.value if learner.samples_seen else 0.0,
            budget=self.settings.learner.strategy.budget,
            threshold=policy.threshold,
            labels_remaining=policy.labels_remaining,
            pending=len(learner.pending),
            accuracy=None if math.isnan(accuracy) else accuracy,
            labels_learned=learner.labels_learned,
        )
        self.metrics.set_accuracy_estimates(learner.accuracy_estimate)
        self.metrics.set_policy_state(
            stopped=policy.stopped,
            labels_saved=policy.ledger.saved,
            exploration_rate=policy.exploration_rate,
            events=policy.event_counts,
            drifts=policy.drifts_by_signal,
        )
        self._update_lag()

    def _update_lag(self) -> None:
        assert self._samples is not None
        for tp in self._samples.assignment():
            highwater = self._samples.highwater(tp)
            if highwater is None:
                continue
            position = self._samples.position(tp, timeout_ms=0)
            if position is not None:
                self.metrics.set_lag(tp.topic, tp.partition, max(0, highwater - position))

    def _summary_line(self) -> str:
        learner = self.learner
        return (
            f"{learner.samples_seen} samples scored, {learner.policy.queries} queries, "
            f"{learner.labels_learned} labels learned"
        )
