"""Stop spending on uncertainty once the model is good enough, and resume when it is not.

A stream has no held-out validation set, so "good enough" is read from the unbiased
estimate of the accuracy of all predictions (:mod:`stream_al.core.estimate`). The policy
*stops* once the lower bound of that estimate reaches the target: it is then confident
the target is met. It *resumes* once the estimate itself falls below the target again
(after a drift, say). The gap between the bound and the estimate is the hysteresis that
keeps it from flapping. While stopped only random labels are asked, at the monitoring
rate, so the estimate stays alive; the rest of the budget is saved, not owed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from stream_al.core.estimate import AccuracyEstimate

#: A change of the policy's mode, or a drift it detected.
EventKind = Literal["stopped", "resumed", "drift"]
POLICY_EVENTS: tuple[EventKind, ...] = get_args(EventKind)


@dataclass(frozen=True, slots=True)
class PolicyEvent:
    """Something the policy decided on its own, at a position of the stream."""

    position: int
    kind: EventKind
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"position": self.position, "kind": self.kind, "detail": self.detail}


class TargetStopping:
    """Stop once ``estimate.low >= target``; resume once ``estimate.value < target``.

    Stopping also needs ``min_labels`` effective labels behind the estimate: a census of
    the first dozen samples may have a high lower bound and say nothing of the stream.

    ``hold_until`` blocks stopping until a stream position (the policy sets it after a
    detected drift, so that labels from before the drift cannot stop it again).

    >>> rule = TargetStopping(0.9, min_labels=30)
    >>> rule.update(AccuracyEstimate(0.95, 0.88, 0.98, 50, 50.0), position=100)
    >>> rule.update(AccuracyEstimate(0.96, 0.91, 0.98, 80, 80.0), position=200)
    'stopped'
    >>> rule.update(AccuracyEstimate(0.91, 0.85, 0.95, 80, 80.0), position=300)
    >>> rule.update(AccuracyEstimate(0.89, 0.83, 0.94, 80, 80.0), position=400)
    'resumed'
    """

    def __init__(self, target: float, min_labels: float = 30.0) -> None:
        if not 0.0 < target <= 1.0:
            raise ValueError(f"target accuracy must be in (0, 1], got {target}")
        self.target = target
        self.min_labels = min_labels
        self.stopped = False
        self.hold_until = 0

    def update(self, estimate: AccuracyEstimate, position: int) -> EventKind | None:
        """Take the latest estimate; return the change of mode it causes, if any."""
        if not estimate.known:
            return None
        if (
            not self.stopped
            and estimate.low >= self.target
            and estimate.effective_labels >= self.min_labels
            and position > self.hold_until
        ):
            self.stopped = True
            return "stopped"
        if self.stopped and estimate.value < self.target:
            self.stopped = False
            return "resumed"
        return None

    def resume(self, hold_until: int) -> bool:
        """Resume now (a drift was detected) and do not stop before ``hold_until``."""
        self.hold_until = max(self.hold_until, hold_until)
        was = self.stopped
        self.stopped = False
        return was

    def state(self) -> dict[str, Any]:
        return {
            "target_accuracy": self.target,
            "stopped": self.stopped,
            "hold_until": self.hold_until,
        }


def describe(estimate: AccuracyEstimate) -> str:
    """``0.912 [0.871, 0.941] on 84 labels``, for log lines and events."""
    if math.isnan(estimate.value):
        return "no estimate"
    return (
        f"{estimate.value:.3f} [{estimate.low:.3f}, {estimate.high:.3f}] "
        f"on {estimate.labels} labels"
    )
