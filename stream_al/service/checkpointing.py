"""The service's use of checkpoints: restore at start, save every N labels or T seconds.

A checkpoint holds the learner (model, strategy state, pending queries, counters) and the
offsets of the labels and oracle topics it reflects, taken between two rounds of the
service loop, once the round's messages were delivered, so they always agree. On start
both consumers are positioned right after those offsets and the logs since are replayed:
the queries sent since are pending again, and each label is learned exactly once.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from stream_al.core.learner import ActiveLearner
from stream_al.durability import (
    Checkpoint,
    CheckpointMismatch,
    CheckpointSchedule,
    CheckpointStore,
    KafkaCheckpointStore,
    LocalCheckpointStore,
    NoValidCheckpoint,
    config_changes,
    config_fingerprint,
)
from stream_al.settings import Settings

log = logging.getLogger(__name__)


class CheckpointRefused(RuntimeError):
    """The stored checkpoint cannot be used and starting fresh was not allowed."""


def open_store(settings: Settings) -> CheckpointStore | None:
    """The configured checkpoint store, or None when checkpoints are off.

    Every store signs what it writes and reads nothing unsigned; see
    :mod:`stream_al.durability.keys` for where the key comes from.
    """
    options = settings.checkpoint
    key = options.hmac_key.get_secret_value().encode() if options.hmac_key else None
    if options.topic:
        return KafkaCheckpointStore(
            options.topic,
            key=f"{settings.group_id}/{settings.replica_id}",
            kafka_config=settings.kafka.client_config(),
            hmac_key=key,
            key_file=options.key_file,
            keep=options.keep,
            timeout_s=options.timeout_seconds,
        )
    if options.directory is not None:
        return LocalCheckpointStore(
            options.directory, keep=options.keep, hmac_key=key, key_file=options.key_file
        )
    return None


class Checkpointer:
    """Restores and saves the learner of one service replica."""

    def __init__(self, settings: Settings, store: CheckpointStore) -> None:
        self.settings = settings
        self.store = store
        self.schedule = CheckpointSchedule(
            settings.checkpoint.every_labels, settings.checkpoint.every_seconds
        )
        self._config = settings.learner.model_dump(mode="json")
        # Only the model's identity must match; the strategy may change over a checkpoint.
        self._fingerprint = config_fingerprint(settings.learner.model_identity())
        self._labels_at_save = 0
        self._not_before = 0.0

    #: After a failed save, the next attempt waits this long (or ``every_seconds``).
    @property
    def retry_seconds(self) -> float:
        return min(self.settings.checkpoint.every_seconds, 10.0)

    def restore(self) -> tuple[ActiveLearner | None, dict[str, dict[int, int]]]:
        """The learner and the offsets (topic -> partition -> next offset) it reflects.

        ``(None, {})`` when there is no checkpoint to start from.
        """
        try:
            checkpoint = self.store.load_latest(self._fingerprint, self._config)
        except (CheckpointMismatch, NoValidCheckpoint) as error:
            if not self.settings.checkpoint.start_fresh:
                raise CheckpointRefused(
                    f"{error}\nSet checkpoint.start_fresh (STREAM_AL_CHECKPOINT__START_FRESH=true) "
                    "to start with a fresh model instead."
                ) from error
            log.warning("starting fresh, as checkpoint.start_fresh says: %s", error)
            return None, {}
        if checkpoint is None:
            log.info("no checkpoint yet: starting with a fresh model")
            return None, {}
        learner: ActiveLearner = checkpoint.learner
        if learner.config != self.settings.learner:
            changes = config_changes(learner.config.model_dump(mode="json"), self._config)
            learner.reconfigure(self.settings.learner)
            log.warning(
                "the checkpoint was made under other settings; applied to the restored model: "
                "%s (the new budget counts from now on)",
                "; ".join(changes),
            )
        offsets = checkpoint.label_offsets
        topics = self.settings.topics
        self._labels_at_save = learner.labels_learned
        if topics.oracle not in offsets:
            log.warning(
                "the checkpoint has no offsets of the oracle topic (an older release wrote "
                "it): queries sent after it are not recovered"
            )
        log.info(
            "restored the checkpoint of %s: %d samples seen, %d labels learned; replaying "
            "labels from offsets %s and queries from %s",
            checkpoint.created_at.isoformat(),
            learner.samples_seen,
            learner.labels_learned,
            offsets.get(topics.labels, {}),
            offsets.get(topics.oracle, "the end"),
        )
        return learner, offsets

    def due(self, learner: ActiveLearner) -> bool:
        """Whether a checkpoint is due (not before the retry time after a failure)."""
        now = time.monotonic()
        labels_since = learner.labels_learned - self._labels_at_save
        return now >= self._not_before and self.schedule.due(labels_since, now)

    def postpone(self) -> None:
        """A save failed: the next attempt waits ``retry_seconds``."""
        self._not_before = time.monotonic() + self.retry_seconds

    def save(self, learner: ActiveLearner, offsets: dict[str, dict[int, int]]) -> Any:
        """Save ``learner`` with the offsets it reflects (topic -> partition -> offset)."""
        checkpoint = Checkpoint(
            learner=learner,
            label_offsets={topic: dict(parts) for topic, parts in offsets.items()},
            config_fingerprint=self._fingerprint,
            created_at=datetime.now(UTC),
        )
        where = self.store.save(checkpoint)
        self.schedule.mark_saved(time.monotonic())
        self._labels_at_save = learner.labels_learned
        log.debug("checkpoint saved to %s", where)
        return where

    def close(self) -> None:
        self.store.close()
