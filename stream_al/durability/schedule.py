"""When to checkpoint: every N labels or every T seconds, whichever comes first."""

from __future__ import annotations

from stream_al.durability.errors import CheckpointConfigError


class CheckpointSchedule:
    """Decides whether a checkpoint is due; the service also saves at shutdown.

    Time is whatever clock the caller passes (``time.monotonic()`` in the service),
    counted from the last :meth:`mark_saved`, or from the first :meth:`due` call
    before any save. Leaving both triggers ``None`` means "only at shutdown".

    Args:
        every_labels: checkpoint once this many labels were learned since the last
            one (``checkpoint.every_labels``), or ``None``.
        every_seconds: checkpoint once this much time passed since the last one
            (``checkpoint.every_seconds``), or ``None``.
    """

    def __init__(self, every_labels: int | None, every_seconds: float | None) -> None:
        if every_labels is not None and every_labels < 1:
            raise CheckpointConfigError(
                f"checkpoint.every_labels must be at least 1 or unset (got {every_labels})"
            )
        if every_seconds is not None and not every_seconds > 0:
            raise CheckpointConfigError(
                f"checkpoint.every_seconds must be positive or unset (got {every_seconds})"
            )
        self.every_labels = every_labels
        self.every_seconds = every_seconds
        self._last_saved_at: float | None = None

    def due(self, labels_since: int, now: float) -> bool:
        """Whether to checkpoint now, ``labels_since`` labels after the last one."""
        if self._last_saved_at is None:
            self._last_saved_at = now
        if self.every_labels is not None and labels_since >= self.every_labels:
            return True
        return self.every_seconds is not None and now - self._last_saved_at >= self.every_seconds

    def mark_saved(self, now: float) -> None:
        """Record that a checkpoint was taken at ``now``; the clock restarts."""
        self._last_saved_at = now
