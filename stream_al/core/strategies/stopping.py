"""Stop spending on uncertainty once the model is good enough, and resume when it is not.

A stream has no held-out validation set, so "good enough" is read from the unbiased
estimate of the accuracy of all predictions (:mod:`stream_al.core.estimate`). The policy
*stops* once the lower bound of that estimate reaches the target: it is then confident
the target is met. It *resumes* once the estimate itself falls below the target again
(after a drift, say). The gap between the bound and the estimate is the hysteresis that
keeps it from flapping. The plateau rule (:class:`PlateauStopping`) stops without a
target, once the estimate has stopped improving. While stopped only random labels are
asked, at the monitoring rate, so the estimate stays alive; the rest of the budget is
saved, not owed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal, get_args

from stream_al.core.estimate import AccuracyEstimate

#: A change of the policy's mode, a drift it detected, and what became of the fresh model
#: a drift started: it replaced the current one, or the current one was kept.
EventKind = Literal["stopped", "resumed", "drift", "model-replaced", "model-kept"]
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

    name = "target"

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


class PlateauStopping:
    """Stop once the estimate has gained less than ``tolerance`` over ``window`` samples.

    A target may be out of reach, or reached long before anyone dares to set it: the
    learning curve flattening out is the other sign that more labels buy little. The
    estimate is noted every ``window / 4`` samples once it rests on ``min_labels``
    effective labels; the rule stops when it is less than ``tolerance`` above the note of
    ``window`` samples before. It resumes once the interval's upper bound falls below the level
    it stopped at: the model got worse, surely (a drift, say).

    >>> rule = PlateauStopping(window=1000, tolerance=0.01, min_labels=10)
    >>> for position, value in [(250, 0.80), (750, 0.85), (1250, 0.90), (1500, 0.905)]:
    ...     rule.update(AccuracyEstimate(value, value - 0.05, value + 0.05, 40, 40.0), position)
    >>> rule.update(AccuracyEstimate(0.905, 0.86, 0.95, 40, 40.0), position=2300)
    'stopped'
    >>> rule.update(AccuracyEstimate(0.87, 0.82, 0.92, 40, 40.0), position=2400)
    >>> rule.update(AccuracyEstimate(0.80, 0.75, 0.85, 40, 40.0), position=2500)
    'resumed'
    """

    name = "plateau"

    def __init__(self, window: int, tolerance: float, min_labels: float = 30.0) -> None:
        if window < 4:
            raise ValueError(f"plateau window must be >= 4 samples, got {window}")
        if not 0.0 <= tolerance < 1.0:
            raise ValueError(f"plateau tolerance must be in [0, 1), got {tolerance}")
        self.window = window
        self.tolerance = tolerance
        self.min_labels = min_labels
        self.stopped = False
        self.hold_until = 0
        self.level = math.nan
        #: (position, estimate) noted every ``window / 4`` samples, the last ``window``.
        self._notes: deque[tuple[int, float]] = deque()

    def update(self, estimate: AccuracyEstimate, position: int) -> EventKind | None:
        if not estimate.known:
            return None
        if self.stopped:
            if estimate.high < self.level - self.tolerance:
                self.stopped = False
                self._notes.clear()
                return "resumed"
            return None
        if estimate.effective_labels < self.min_labels:
            return None  # (nor noted: a census of the first labels says nothing)
        if not self._notes or position - self._notes[-1][0] >= self.window // 4:
            self._notes.append((position, estimate.value))
        while len(self._notes) > 1 and self._notes[1][0] <= position - self.window:
            self._notes.popleft()
        start, then = self._notes[0]
        if (
            position - start >= self.window
            and estimate.value - then < self.tolerance
            and position > self.hold_until
        ):
            self.stopped = True
            self.level = estimate.value
            return "stopped"
        return None

    def resume(self, hold_until: int) -> bool:
        """Resume now (a drift was detected) and do not stop before ``hold_until``."""
        self.hold_until = max(self.hold_until, hold_until)
        was = self.stopped
        self.stopped = False
        self._notes.clear()
        return was

    def state(self) -> dict[str, Any]:
        return {
            "plateau_window": self.window,
            "plateau_tolerance": self.tolerance,
            "stopped": self.stopped,
            "level": None if math.isnan(self.level) else self.level,
            "hold_until": self.hold_until,
        }


class StoppingRules:
    """The target and the plateau rule together: stopped while either holds.

    >>> rules = StoppingRules([TargetStopping(0.9, min_labels=1)])
    >>> rules.update(AccuracyEstimate(0.97, 0.93, 0.99, 50, 50.0), position=10)
    'stopped'
    >>> rules.stopped, rules.holding
    (True, 'target')
    """

    def __init__(self, rules: list[TargetStopping | PlateauStopping]) -> None:
        if not rules:
            raise ValueError("no stopping rule")
        self.rules = rules

    @property
    def stopped(self) -> bool:
        return any(rule.stopped for rule in self.rules)

    @property
    def holding(self) -> str:
        """The rules that hold now, for the events' detail."""
        return " and ".join(rule.name for rule in self.rules if rule.stopped) or "none"

    def update(self, estimate: AccuracyEstimate, position: int) -> EventKind | None:
        was = self.stopped
        for rule in self.rules:
            rule.update(estimate, position)
        if self.stopped != was:
            return "stopped" if self.stopped else "resumed"
        return None

    def resume(self, hold_until: int) -> bool:
        return any([rule.resume(hold_until) for rule in self.rules])

    def state(self) -> dict[str, Any]:
        merged: dict[str, Any] = {"stopped": self.stopped}
        for rule in self.rules:
            merged.update({k: v for k, v in rule.state().items() if k != "stopped"})
        return merged


def describe(estimate: AccuracyEstimate) -> str:
    """``0.912 [0.871, 0.941] on 84 labels``, for log lines and events."""
    if math.isnan(estimate.value):
        return "no estimate"
    return (
        f"{estimate.value:.3f} [{estimate.low:.3f}, {estimate.high:.3f}] "
        f"on {estimate.labels} labels"
    )
