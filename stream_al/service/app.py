"""The Kafka service: a thin adapter that moves messages to and from an ``ActiveLearner``.

One thread does everything, in a loop: read back the queries logged on the oracle topic,
learn from the labels that have arrived, then take a batch of samples, score each, publish
predictions and queries, wait until the producer has delivered them, and only then commit
the batch's offsets (at-least-once: a crash replays a batch, it never drops one). A batch
not delivered yet holds the loop: nothing new is taken in until it is, so an outage never
piles up replays. The learner decides; this module only moves bytes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka.errors import KafkaError
from pydantic import ValidationError

from stream_al.core.learner import ActiveLearner, LabelStatus, Learned
from stream_al.durability import CheckpointError
from stream_al.schemas import (
    DeadLetterReason,
    InvalidMessage,
    LabelMessage,
    Query,
    decode_label,
    decode_sample,
    encode,
)
from stream_al.service import kafka_io, warm_start
from stream_al.service.checkpointing import Checkpointer
from stream_al.service.dead_letters import dead_letter
from stream_al.service.metrics import LABEL_STATUSES, ServiceMetrics
from stream_al.service.oracle_log import query_headers, query_origin
from stream_al.settings import Settings
from stream_al.transport import (
    Delivery,
    DeliveryTimeout,
    GroupConsumer,
    LogConsumer,
    Producer,
    Record,
    TopicPartition,
    TransportError,
    open_transport,
)

log = logging.getLogger(__name__)

_GAUGE_INTERVAL_SECONDS = 1.0
_STUCK_REBALANCE_SECONDS = 60.0
_FIRST_RETRY_SECONDS = 0.1
_MAX_RETRY_SECONDS = 5.0
#: How long one step waits for its batch's deliveries before it lets the loop look around.
_DELIVERY_WAIT_SECONDS = 1.0
#: Bound on delivering, committing and checkpointing at shutdown, so SIGTERM during an
#: outage ends the process in bounded time (what is not delivered is replayed, not lost).
SHUTDOWN_GRACE_SECONDS = 10.0
#: Bound on closing each consumer (leaving the group is a courtesy that saves a rebalance
#: wait; during an outage it cannot be had anyway).
_CLOSE_TIMEOUT_MS = 2000
#: Readiness fails when no step has completed for this long.
_STALL_SECONDS = 15.0
#: Bound on reading the oracle topic to its end (at start, and for an unknown label).
_CATCH_UP_SECONDS = 30.0
_LABEL_STATUS_TO_REASON: dict[LabelStatus, DeadLetterReason] = {
    LabelStatus.DUPLICATE: "duplicate",
    LabelStatus.UNKNOWN_ID: "unknown_id",
    LabelStatus.EXPIRED: "expired",
    LabelStatus.INVALID: "invalid_label",
}


@dataclass
class _Batch:
    """Samples taken but not committed yet.

    ``first_offsets`` is where to go back to, ``offsets`` the next offset after the runs
    whose every record was handled (only those may be committed), ``deliveries`` the
    producer's futures with the id of the query each one carries, if any.
    """

    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    deliveries: list[tuple[Delivery, str | None]] = field(default_factory=list)
    #: Every polled record was handled; what is left is delivering and committing.
    sealed: bool = False

    @property
    def empty(self) -> bool:
        return not self.first_offsets and not self.deliveries


class Service:
    """``stream-al run``: samples in, predictions and queries out, labels learned online.

    The learner is a fresh one built from ``settings.learner``, or the one the
    ``checkpointer`` restores together with the offsets of the labels and oracle topics it
    reflects; both logs are then replayed from there (see :mod:`.oracle_log`). Without a
    checkpoint both consumers start at the end of their topics.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: ServiceMetrics | None = None,
        checkpointer: Checkpointer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._sample_mapping = settings.mapping.for_samples()
        self._label_mapping = settings.mapping.for_labels()
        self.learner = ActiveLearner(settings.learner, settings.labeling.aggregation_config())
        self.metrics = (
            metrics
            if metrics is not None
            else ServiceMetrics(settings.metrics.host, settings.metrics.port)
        )
        #: partition -> next offset to read, of the labels and of the oracle topic: what
        #: the learner reflects, and what a checkpoint records.
        self.label_offsets: dict[int, int] = {}
        self.oracle_offsets: dict[int, int] = {}
        self.checkpointer = checkpointer
        self.replica = f"{settings.group_id}/{settings.replica_id}"
        self._clock = clock
        self._stopping = threading.Event()
        self._batch = _Batch()
        self._transport = open_transport(settings)
        self._producer: Producer | None = None
        self._samples: GroupConsumer | None = None
        self._labels: LogConsumer | None = None
        self._oracle: LogConsumer | None = None
        self._oracle_behind = False
        #: While the log is read back at start: the checkpoint's count of own queries.
        self._charge_own_beyond: int | None = None
        # Read by the metrics HTTP thread: plain values the service keeps up to date, never
        # the Kafka clients themselves, which are not thread-safe.
        self._assigned: set[TopicPartition] = set()
        self._broker_probe = kafka_io.BrokerProbe(settings.kafka.bootstrap_servers)
        self._running = False
        self._last_progress = 0.0
        self._checkpoints_ok = True
        self._last_gauges = 0.0
        self._unstable_since: float | None = None
        self._admin: Any = None
        self._last_backlog_read = -math.inf
        #: The step's decision latencies and predictions sent, folded into the metrics at
        #: its end.
        self._latencies: list[float] = []
        self._predictions = 0
        # Last: the metrics thread may ask for readiness from now on.
        self.metrics.set_readiness(self.readiness)

    # -- life cycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop after the step in hand (safe from a signal handler)."""
        self._stopping.set()

    def run(self) -> None:
        """Connect, then loop until ``stop()``; delivers and commits before returning.

        A retriable transport error (the broker is away, a coordinator moved) interrupts one
        step, not the service: the consumers go back to what the learner has taken in, and
        the loop tries again after a pause that grows to ``_MAX_RETRY_SECONDS``.
        """
        try:
            self.connect()
            self._running = True
            pause = _FIRST_RETRY_SECONDS
            while not self._stopping.is_set():
                try:
                    self.step()
                except TransportError as error:
                    if not error.retriable:
                        raise
                    log.warning("Kafka is unavailable (%s); retrying in %.1f s", error, pause)
                    self._rewind()
                    self._stopping.wait(pause)
                    pause = min(2 * pause, _MAX_RETRY_SECONDS)
                else:
                    pause = _FIRST_RETRY_SECONDS
        finally:
            self._running = False
            self.close()

    def connect(self) -> None:
        """Restore the checkpoint; create missing topics, the producer and the consumers.

        The oracle topic is read to its end before any sample is scored: the queries sent
        since the checkpoint must be known, or a replayed sample would be asked again.
        """
        restored = False
        if self.checkpointer is not None:
            learner, offsets = self.checkpointer.restore()
            if learner is not None:
                restored = True
                # Its open items and annotator statistics are kept; k and the method are
                # this start's.
                learner.aggregator.config = self.settings.labeling.aggregation_config()
                self.learner = learner
                self.label_offsets = dict(offsets.get(self.settings.topics.labels, {}))
                self.oracle_offsets = dict(offsets.get(self.settings.topics.oracle, {}))
        if self.settings.topics.create:
            kafka_io.ensure_topics(self.settings)
        self._producer = self._transport.producer()
        self._labels = self._transport.log_consumer()
        self._oracle = self._transport.log_consumer()
        self._assign(self._labels, self.settings.topics.labels, self.label_offsets)
        self._assign(self._oracle, self.settings.topics.oracle, self.oracle_offsets)
        if not restored:
            self._warm_start()
        pending, queries = len(self.learner.pending), self.learner.policy.queries
        # Own queries numbered beyond the checkpoint's count were made after it: they are
        # charged again while the log is read back, in whatever order its partitions come.
        self._charge_own_beyond = queries
        self._catch_up_oracle()
        self._charge_own_beyond = None
        log.info(
            "read the oracle topic back: %d queries pending again, %d of them this replica's "
            "own made after the checkpoint",
            len(self.learner.pending) - pending,
            self.learner.policy.queries - queries,
        )
        if self.checkpointer is not None:
            # From here on no label may be lost, so there must be offsets to return to.
            self._save_checkpoint()
        self._join_samples_group()
        self._broker_probe.start()
        self._last_progress = time.monotonic()
        log.info(
            "stream_al service started on %s: group %s, replica %s, model %s, strategy %s "
            "(budget %s)",
            self._transport.name,
            self.settings.group_id,
            self.settings.replica_id,
            self.learner.model.describe(),
            self.settings.learner.strategy.name,
            self.settings.learner.strategy.budget,
        )

    def _warm_start(self) -> None:
        """Without a checkpoint: learn from the history ``warm_start`` names, if any."""
        options = self.settings.warm_start
        if options.model_file is not None:
            self.learner = warm_start.load_model_file(options.model_file, self.settings)
            self.learner.aggregator.config = self.settings.labeling.aggregation_config()
            log.info(
                "warm start: model file %s, %d labels learned",
                options.model_file,
                self.learner.labels_learned,
            )
        sources: list[tuple[str, Iterable[LabelMessage]]] = []
        if options.data is not None:
            sources.append((f"file {options.data}", warm_start.labels_from_file(options)))
        if options.replay_labels:
            assert self._labels is not None
            history, ends = warm_start.replay_labels_topic(self._labels, self.settings)
            sources.append((f"topic {self.settings.topics.labels}", history))
            # What is learned now must not come again as a duplicate.
            self.label_offsets = ends
        for name, labels in sources:
            outcomes = self.learner.warm_start(labels, now=self._clock())
            log.info(
                "warm start: %d labels learned from %s (%s)",
                outcomes[LabelStatus.LEARNED],
                name,
                ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items())) or "none",
            )

    def _join_samples_group(self) -> None:
        """Join the group on the samples topic, then wait until its partitions are known.

        In that order: the metadata update is what the group's leader compares its
        assignment with. Waiting first makes the first assignment against an empty
        snapshot, and the arriving metadata then forces a second rebalance, whose result
        kafka-python 3.0 can drop when a poll times out mid-way.
        """
        self._samples = self._transport.group_consumer()
        topic = self.settings.topics.samples
        self._samples.subscribe(topic, self._on_assigned, self._on_revoked)
        kafka_io.partitions_of(self._samples, topic)

    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Deliver and commit what was taken from partitions about to move (inside poll)."""
        self._finish_batch(SHUTDOWN_GRACE_SECONDS, wait_for_commit=True)
        self._assigned.difference_update(revoked)
        for tp in revoked:
            self.metrics.remove_lag(tp.topic, tp.partition)
        self.metrics.rebalanced()
        log.info("partitions revoked: %s", sorted(revoked))

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned.update(assigned)
        # Their previous owner's last queries may not have been read back yet: a replayed
        # sample must be known as asked before it is scored again.
        self._oracle_behind = True
        log.info("partitions assigned: %s", sorted(assigned))

    def _watch_group_membership(self) -> None:
        """Join the group afresh if the samples consumer is stuck in a rebalance.

        kafka-python 3.0 very rarely stalls in a join (leader elected, then silence) while the
        broker is fine; the member then holds no partitions for good. A standby replica with
        no partitions is stable, so only a rebalance that lasts this long starts over.
        """
        assert self._samples is not None
        now = time.monotonic()
        if not self._samples.rebalancing() or not self._broker_probe.reachable:
            self._unstable_since = None
            return
        if self._unstable_since is None:
            self._unstable_since = now
        elif now - self._unstable_since > _STUCK_REBALANCE_SECONDS:
            log.warning(
                "the samples consumer has been rebalancing for %.0f s; joining the group afresh",
                now - self._unstable_since,
            )
            self._samples.leave()
            self._assigned.clear()
            self.metrics.rebalanced()
            self._join_samples_group()

    def step(self, timeout_ms: int = 100) -> int:
        """One round: logs first, then one batch of samples. Returns the samples taken.

        While the previous batch is not delivered the step only waits for it (up to
        ``_DELIVERY_WAIT_SECONDS``), so ``stop()`` is honoured during an outage too.
        """
        assert self._samples is not None
        if self._batch.sealed and not self._finish_batch(_DELIVERY_WAIT_SECONDS):
            self._every_second()
            return 0
        self._read_oracle()
        self._learn_available_labels()
        polled = self._samples.poll(timeout_ms=timeout_ms)
        batch = self._batch
        for tp, records in polled.items():
            # Noted first: whatever interrupts the step from here, _rewind comes back here.
            batch.first_offsets.setdefault(tp, records[0].offset)
        if self._oracle_behind:
            self._catch_up_oracle()
        seen = 0
        try:
            for tp, records in polled.items():
                for record in records:
                    self._handle_sample(record)
                # Once per run, and only once all of it was handled: an exception in the
                # middle leaves the run out of what may be committed.
                batch.offsets[tp] = records[-1].offset + 1
                seen += len(records)
        finally:
            self._fold_metrics()
        batch.sealed = True
        if self._finish_batch(_DELIVERY_WAIT_SECONDS):
            self._checkpoint_if_due()
            self._last_progress = time.monotonic()
        self._every_second()
        return seen

    def _every_second(self) -> None:
        now = time.monotonic()
        if now - self._last_gauges >= _GAUGE_INTERVAL_SECONDS:
            self._last_gauges = now
            self._settle_answers()
            self._update_gauges()
            self._watch_group_membership()
        if now - self._last_backlog_read >= self.settings.labeling.backlog_poll_seconds:
            self._last_backlog_read = now
            self._read_backlog()

    def _rewind(self) -> None:
        """Seek the consumers back to the first record the learner has not taken in.

        A step cut short may have polled records it never handled; without this, the next
        commit would skip them. Samples of an unfinished batch come again (at-least-once);
        a sealed batch only waits for its deliveries, so it is kept.
        """
        assert self._samples is not None and self._labels is not None
        assert self._oracle is not None
        if not self._batch.sealed:
            batch, self._batch = self._batch, _Batch()
            self._replay(batch)
        self._seek(self._labels, self.settings.topics.labels, self.label_offsets)
        self._seek(self._oracle, self.settings.topics.oracle, self.oracle_offsets)

    def close(self) -> None:
        """Deliver and commit what was handled, save a checkpoint, close the clients.

        Bounded by ``SHUTDOWN_GRACE_SECONDS`` for the deliveries and as much for the
        checkpoint. What could not be delivered is neither committed nor checkpointed: it
        is scored again after the restart, so nothing is lost.
        """
        delivered = True
        if self._samples is not None and self._producer is not None:
            try:
                delivered = self._finish_batch(SHUTDOWN_GRACE_SECONDS, wait_for_commit=True)
            except Exception:
                delivered = False
                log.exception("could not deliver the last batch; it will be replayed")
            if not delivered:
                log.warning(
                    "stopping with a batch not delivered (partitions %s): it was not "
                    "committed and will be scored again after the restart",
                    sorted((tp.topic, tp.partition) for tp in self._batch.first_offsets),
                )
        if self.checkpointer is not None:
            if delivered and self._producer is not None:
                self._try_checkpoint()
            self.checkpointer.close()
        self._broker_probe.stop()
        if self._admin is not None:
            self._admin.close()
        for client in (self._samples, self._labels, self._oracle):
            if client is not None:
                client.close(_CLOSE_TIMEOUT_MS)
        if self._producer is not None:
            self._producer.close(SHUTDOWN_GRACE_SECONDS if delivered else 0)
        log.info("stream_al service stopped: %s", self._summary_line())

    # -- checkpoints -------------------------------------------------------------------------

    def _offsets(self) -> dict[str, dict[int, int]]:
        topics = self.settings.topics
        return {topics.labels: dict(self.label_offsets), topics.oracle: dict(self.oracle_offsets)}

    def _save_checkpoint(self) -> None:
        assert self.checkpointer is not None
        self.checkpointer.save(self.learner, self._offsets())
        self._checkpoints_ok = True
        self.metrics.checkpoint_saved()

    def _checkpoint_if_due(self) -> None:
        if self.checkpointer is not None and self.checkpointer.due(self.learner):
            self._try_checkpoint()

    def _try_checkpoint(self) -> None:
        """Save a checkpoint; a failure is reported and retried later, never fatal.

        Nothing is lost by a checkpoint that failed: the one before, with the labels and
        oracle logs replayed from its offsets, rebuilds the same state.
        """
        assert self.checkpointer is not None
        try:
            self._save_checkpoint()
        except (CheckpointError, KafkaError, TransportError, OSError) as error:
            self._checkpoints_ok = False
            self.checkpointer.postpone()
            self.metrics.checkpoint_failed()
            log.warning(
                "could not save a checkpoint (%s); the service carries on and tries again in "
                "%.0f s. Nothing is lost: a restart replays the logs from the last checkpoint",
                error,
                self.checkpointer.retry_seconds,
            )

    # -- samples -----------------------------------------------------------------------------

    def _handle_sample(self, record: Record) -> None:
        started = time.perf_counter()
        try:
            # A null record (a tombstone) is an empty message: not JSON, not a crash.
            sample = decode_sample(
                record.value or b"",
                self.settings.max_message_bytes,
                self._sample_mapping,
                record.key,
            )
        except InvalidMessage as error:
            self._reject_sample(record, error.reason, error.detail)
            return
        position = self.learner.policy.queries
        try:
            scored = self.learner.score(sample, now=self._clock())
        except Exception as error:  # a model that cannot take these values must not stop us
            self._reject_sample(record, "model_error", _describe(error))
            return
        self._latencies.append(time.perf_counter() - started)
        topics = self.settings.topics
        seen = self.learner.samples_seen
        # None over max_message_bytes is sent: a sample within the limit can make a larger
        # query or prediction (its features and metadata written again beside the model's
        # output, 1e15 as 1000000000000000.0), which the producer would refuse at send,
        # stopping the service on this sample after every restart.
        limit = self.settings.max_message_bytes
        too_large: list[str] = []
        # A query's number is its place in the policy's count, sent or not.
        for number, query in enumerate(scored.queries, start=position + 1):
            value = encode(query)
            if len(value) > limit:
                self.learner.withdraw(query.id)
                too_large.append(f"its query about {query.id!r} ({len(value)} bytes) not asked")
                continue
            headers = query_headers(self.replica, number, seen)
            self._send(topics.oracle, query.id, value, headers, query_id=query.id)
            self.metrics.query_sent(query.reason)
        if topics.predictions:
            prediction = scored.encoded_prediction(sample, self.learner.labels_learned)
            if len(prediction) > limit:
                too_large.append(f"its prediction ({len(prediction)} bytes) not sent")
            else:
                self._send(topics.predictions, sample.id, prediction)
                self._predictions += 1
        if too_large:
            detail = f"over max_message_bytes {limit}: {'; '.join(too_large)}"
            self._reject_sample(record, "too_large", detail)

    def _fold_metrics(self) -> None:
        """Hand the step's counts to the metrics: once per batch, not per sample."""
        self.metrics.samples_scored(self._latencies)
        self.metrics.predictions_sent(self._predictions)
        self._latencies, self._predictions = [], 0

    def _reject_sample(self, record: Record, reason: DeadLetterReason, detail: str) -> None:
        self._dead_letter(record, reason, detail)
        self.metrics.sample_dead_lettered(reason)

    def _send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
        query_id: str | None = None,
    ) -> None:
        assert self._producer is not None
        encoded_key = key.encode() if isinstance(key, str) else key
        delivery = self._producer.send(topic, encoded_key, value, headers)
        self._batch.deliveries.append((delivery, query_id))

    def _finish_batch(self, timeout: float, wait_for_commit: bool = False) -> bool:
        """Wait up to ``timeout`` s for the batch's deliveries, then commit its offsets.

        Returns whether the batch is off our hands. One not delivered in time stays, to be
        waited for again; one whose deliveries failed is replayed. The commit itself is
        asynchronous in the loop (a round trip per batch would cost a third of the
        throughput); before partitions are revoked and at shutdown it is waited for. A
        commit that fails only means the batch comes again: at-least-once either way.
        """
        batch = self._batch
        if batch.empty:
            self._batch = _Batch()
            return True
        assert self._producer is not None and self._samples is not None
        try:
            self._producer.flush(timeout)
        except DeliveryTimeout:
            return False
        # Only now is the batch off our hands: a flush that raised leaves it for _rewind.
        self._batch = _Batch()
        failed = [(d, query_id) for d, query_id in batch.deliveries if d.failed()]
        if failed:
            # Not delivered: do not commit; the failed queries were never asked, so they
            # may be asked again when the batch is scored again.
            log.error(
                "%d messages not delivered (%s); replaying the batch",
                len(failed),
                failed[0][0].exception,
            )
            for _delivery, query_id in failed:
                if query_id is not None:
                    self.learner.withdraw(query_id)
            self._replay(batch)
            return True
        if batch.offsets:
            try:
                if wait_for_commit:
                    self._samples.commit(batch.offsets, timeout)
                else:
                    self._samples.commit_async(batch.offsets)
            except TransportError as error:
                # The group is rebalancing or the broker is away: the batch was delivered
                # but not committed, so its samples come again (at-least-once), here or at
                # the partitions' next owner.
                log.warning("could not commit offsets %s: %s", batch.offsets, error)
        return True

    def _replay(self, batch: _Batch) -> None:
        """Seek the samples consumer back to ``batch``'s first records, where still assigned."""
        assert self._samples is not None
        assigned = self._samples.assignment()
        for tp, offset in batch.first_offsets.items():
            if tp in assigned:
                self._samples.seek(tp, offset)

    def _dead_letter(self, record: Record, reason: DeadLetterReason, detail: str) -> None:
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

    # -- the labels and oracle logs ----------------------------------------------------------

    def _assign(self, consumer: LogConsumer, topic: str, offsets: dict[int, int]) -> None:
        """Read every partition of ``topic``, from ``offsets`` or from the end (noted there)."""
        partitions = kafka_io.partitions_of(consumer, topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = consumer.end_offsets(assigned)
        for tp in assigned:
            offsets.setdefault(tp.partition, ends[tp])
        consumer.assign({tp: offsets[tp.partition] for tp in assigned})

    @staticmethod
    def _seek(consumer: LogConsumer, topic: str, offsets: dict[int, int]) -> None:
        for partition, offset in offsets.items():
            consumer.seek(TopicPartition(topic, partition), offset)

    def _read_oracle(self, timeout_ms: int = 0) -> None:
        assert self._oracle is not None
        for records in self._oracle.poll(timeout_ms=timeout_ms).values():
            for record in records:
                self._recover_query(record)

    def _catch_up_oracle(self) -> None:
        """Read the oracle topic up to its end as of now (bounded by ``_CATCH_UP_SECONDS``)."""
        assert self._oracle is not None
        topic = self.settings.topics.oracle
        ends = self._oracle.end_offsets(list(self._oracle.assignment()))
        deadline = time.monotonic() + _CATCH_UP_SECONDS
        while any(self.oracle_offsets.get(tp.partition, 0) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TransportError(f"could not read {topic!r} to its end in time", True)
            self._read_oracle(timeout_ms=100)
        self._oracle_behind = False

    def _recover_query(self, record: Record) -> None:
        next_offset = record.offset + 1
        if next_offset <= self.oracle_offsets.get(record.partition, 0):
            return  # read already (replayed after a seek)
        self.oracle_offsets[record.partition] = next_offset
        origin = query_origin(record)
        if origin is None or not origin.replica.startswith(f"{self.settings.group_id}/"):
            return  # not a query of this service's group
        own = origin.replica == self.replica
        beyond = self._charge_own_beyond
        if own and (beyond is None or origin.number <= beyond):
            return  # the common case, told from the headers alone: a query counted here
        try:
            query = Query.model_validate_json(record.value or b"")
        except ValidationError as error:
            log.warning(
                "unreadable query at %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                error,
            )
            return
        if self.learner.recover_query(query, origin.samples_seen, charge=own):
            self.metrics.query_recovered("own" if own else "other_replica")

    def _learn_available_labels(self) -> None:
        assert self._labels is not None
        records = self._labels.poll(timeout_ms=0)
        for batch in records.values():
            for record in batch:
                self._handle_label(record)

    def _handle_label(self, record: Record) -> None:
        next_offset = record.offset + 1
        if next_offset <= self.label_offsets.get(record.partition, 0):
            return  # already reflected in the learner (replayed after a seek)
        try:
            label = decode_label(
                record.value or b"",
                self.settings.max_message_bytes,
                self._label_mapping,
                record.key,
            )
        except InvalidMessage as error:
            self.label_offsets[record.partition] = next_offset
            self._reject_label(record, error.reason, error.detail)
            return
        if label.features is None and not self.learner.knows(label.id):
            # Its query was logged before the label was written: read the oracle topic to
            # where it ends now, and the query is known if anyone here asked it.
            self._catch_up_oracle()
        self.label_offsets[record.partition] = next_offset
        try:
            learned = self.learner.learn(label, now=self._clock())
        except Exception as error:
            self._reject_label(record, "model_error", _describe(error))
            return
        self.metrics.answer_received(
            "correction" if label.corrects else "skip" if label.skipped else "label"
        )
        if learned.status in (LabelStatus.AWAITING, LabelStatus.CORRECTED):
            return  # an answer taken in, counted above; no label decided by it
        self._count_label(learned)
        if learned.status in (LabelStatus.LEARNED, LabelStatus.SKIPPED):
            return
        reason = _LABEL_STATUS_TO_REASON[learned.status]
        self._dead_letter(record, reason, f"label for sample {label.id!r}: {learned.detail}")
        self.metrics.label_dead_lettered(reason)

    def _count_label(self, learned: Learned) -> None:
        status = learned.status.value
        assert status in LABEL_STATUSES, status
        self.metrics.label_outcome(status)  # type: ignore[arg-type]
        decided = learned.status in (LabelStatus.LEARNED, LabelStatus.SKIPPED)
        if decided and learned.asked_at is not None:
            self.metrics.observe_label_latency(max(0.0, self._clock() - learned.asked_at))

    def _settle_answers(self) -> None:
        """Decide the items whose k answers did not all come in time."""
        for learned in self.learner.settle(now=self._clock()):
            self._count_label(learned)

    def _read_backlog(self) -> None:
        """Read the labelers' backlog: their group's lag on the oracle topic.

        Feeds the policy (``strategy.target_backlog``) and the backlog gauge. A failure
        only leaves the reading unknown until the next try.
        """
        assert self._oracle is not None
        if not self._broker_probe.reachable:
            return  # an admin request would hold the loop for its whole timeout
        try:
            if self._admin is None:
                self._admin = kafka_io.admin(self.settings)
            backlog = kafka_io.group_lag(
                self._admin,
                self._oracle,
                self.settings.labeling.group_id,
                self.settings.topics.oracle,
            )
        except (KafkaError, TransportError, OSError) as error:
            log.warning("could not read the labelers' backlog: %s", error)
            self.metrics.set_backlog(None)
            return
        self.metrics.set_backlog(backlog)
        self.learner.observe_backlog(backlog)

    def _reject_label(self, record: Record, reason: DeadLetterReason, detail: str) -> None:
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
            "loop_progressing": self._running
            and time.monotonic() - self._last_progress < _STALL_SECONDS,
            "checkpoints_saving": self._checkpoints_ok,
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
        aggregator = learner.aggregator
        self.metrics.set_agreement(
            {name: (a.agreed, a.votes) for name, a in aggregator.agreement.items()},
            self.settings.labeling.max_annotators_in_metrics,
            aggregator.open_items,
        )
        self._update_lag()

    def _update_lag(self) -> None:
        assert self._samples is not None
        for tp in self._samples.assignment():
            lag = self._samples.lag(tp)
            if lag is not None:
                self.metrics.set_lag(tp.topic, tp.partition, lag)

    def _summary_line(self) -> str:
        learner = self.learner
        return (
            f"{learner.samples_seen} samples scored, {learner.policy.queries} queries, "
            f"{learner.labels_learned} labels learned"
        )


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
