"""The contract every checkpoint store fulfils, and the restore rule they share."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from stream_al.durability.checkpoint import Checkpoint, config_changes
from stream_al.durability.errors import CheckpointInvalid, CheckpointMismatch, NoValidCheckpoint

log = logging.getLogger(__name__)


class CheckpointStore(Protocol):
    """Where the service saves checkpoints and finds the one to restart from."""

    def save(self, checkpoint: Checkpoint) -> object:
        """Store ``checkpoint`` durably before returning; returns where it went."""
        ...

    def load_latest(
        self,
        expected_fingerprint: str | None = None,
        expected_config: Mapping[str, Any] | None = None,
    ) -> Checkpoint | None:
        """The newest usable checkpoint, ``None`` if none was ever stored.

        Raises:
            CheckpointMismatch: the newest usable checkpoint has another fingerprint.
            NoValidCheckpoint: checkpoints exist, none is usable.
            UnsupportedCheckpointVersion: the newest intact one is from a newer format.
        """
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


#: A stored checkpoint not read yet: where it is (for messages) and how to load it.
Candidate = tuple[str, Callable[[], Checkpoint]]


def restore_latest(
    candidates: Iterable[Candidate],
    expected_fingerprint: str | None,
    expected_config: Mapping[str, Any] | None,
) -> Checkpoint | None:
    """Load the first usable candidate (newest first) and check its fingerprint.

    An invalid candidate (corrupt, untrusted) is logged at WARNING and skipped, so the
    service restarts from the one before instead of crashing on a half-written disk or
    a forged message. A fingerprint mismatch is *not* skipped: falling back to an
    older checkpoint would not fix it, and the operator must choose.
    """
    failures: list[tuple[str, str]] = []
    for source, load in candidates:
        try:
            checkpoint = load()
        except CheckpointInvalid as exc:
            log.warning("checkpoint %s refused: %s; trying the previous one", source, exc)
            failures.append((source, str(exc)))
            continue
        found = checkpoint.config_fingerprint
        if expected_fingerprint is not None and found != expected_fingerprint:
            stored_config = checkpoint.learner_config()
            changes = (
                config_changes(stored_config, expected_config)
                if stored_config is not None and expected_config is not None
                else []
            )
            raise CheckpointMismatch(source, expected_fingerprint, found, changes)
        if failures:
            log.warning(
                "restored checkpoint %s after refusing %d newer one(s)", source, len(failures)
            )
        else:
            log.info("restored checkpoint %s", source)
        return checkpoint
    if failures:
        raise NoValidCheckpoint(failures)
    return None
