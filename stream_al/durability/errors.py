"""Errors raised by the checkpoint stores.

They form two families. A :class:`CheckpointInvalid` concerns one stored checkpoint
(truncated, bit-flipped, unsigned, signed with another key): the stores log it and
fall back to the checkpoint before. Every other :class:`CheckpointError` is a
decision the operator has to take (the configuration changed, the file comes from a
newer release, nothing usable is left, the store is misconfigured), so it propagates.
"""

from __future__ import annotations

from collections.abc import Sequence


class CheckpointError(Exception):
    """Base class of every checkpoint error."""


class CheckpointInvalid(CheckpointError):
    """One stored checkpoint cannot be used; an older one may still be fine."""


class CheckpointCorrupt(CheckpointInvalid):
    """Truncated, bad magic bytes, wrong length, unknown digest kind or unpicklable."""


class CheckpointUntrusted(CheckpointInvalid):
    """Missing (checksum only), foreign or non-matching HMAC signature: never unpickled."""


class UnsupportedCheckpointVersion(CheckpointError):
    """An intact checkpoint written in a format this release does not read.

    Not a reason to fall back silently: the older checkpoint would roll the service
    back, so the operator decides (upgrade again, or start fresh).
    """


class CheckpointMismatch(CheckpointError):
    """The newest valid checkpoint was made under a different learner configuration.

    Attributes:
        source: where the checkpoint was read from (file path or Kafka coordinates).
        expected: fingerprint of the configuration the service runs now.
        found: fingerprint recorded in the checkpoint.
        changes: human-readable differences (``"strategy.budget: 0.05 -> 0.1"``), empty
            when the configurations were not available to compare.
    """

    def __init__(self, source: str, expected: str, found: str, changes: Sequence[str]) -> None:
        self.source = source
        self.expected = expected
        self.found = found
        self.changes = list(changes)
        what = "; ".join(self.changes) if self.changes else "configurations not available"
        super().__init__(
            f"checkpoint {source} was made with learner configuration fingerprint {found}, "
            f"but the service now runs {expected} (checkpoint -> now: {what}). Restore the "
            "previous configuration, or start fresh explicitly to discard the checkpoint."
        )


class NoValidCheckpoint(CheckpointError):
    """Checkpoints exist but none of them can be used.

    Raised instead of returning ``None`` so that a wrong ``checkpoint.hmac_key`` or a
    damaged disk does not silently restart the learner from scratch (and then prune
    the checkpoints that a corrected setting could still have read).

    Attributes:
        failures: ``(source, reason)`` for every checkpoint tried, newest first.
    """

    def __init__(self, failures: Sequence[tuple[str, str]]) -> None:
        self.failures = list(failures)
        listing = "; ".join(f"{source}: {reason}" for source, reason in self.failures)
        super().__init__(
            f"none of the {len(self.failures)} stored checkpoints is usable ({listing}). "
            "Fix the cause (e.g. checkpoint.hmac_key or checkpoint.key_file) or start fresh "
            "explicitly."
        )


class CheckpointTooLarge(CheckpointError):
    """A checkpoint exceeds what the store is configured (or able) to hold."""


class CheckpointConfigError(CheckpointError, ValueError):
    """The store's own settings are invalid; the message names the setting."""
