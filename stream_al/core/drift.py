"""Drift detection for the query policy: ADWIN on the random labels' errors and on uncertainty.

After a drift the model may be *confidently* wrong: an uncertainty strategy keeps asking
where the model hesitates, which is no longer where it errs. Two signals are watched:

* the errors of the random labels (warm-up and exploration), an unbiased sample of the
  model's errors on the stream;
* the model's uncertainty on every sample (its distribution moves when the inputs or the
  model's view of them do).

Each feeds a river :class:`~river.drift.ADWIN`. A change counts as a drift only when it
goes the wrong way (more errors, more uncertainty): a model that learns becomes surer and
errs less, and ADWIN flags that too. The policy then reacts (see
:class:`~stream_al.core.strategies.budgeted.BudgetedPolicy`).
"""

from __future__ import annotations

from typing import Any, Literal

from river.drift import ADWIN

#: Which signal detected a drift.
DriftSignal = Literal["errors", "uncertainty"]
DRIFT_SIGNALS: tuple[DriftSignal, ...] = ("errors", "uncertainty")


class RisingChange:
    """ADWIN on a stream of numbers, reporting only changes that raise its mean.

    >>> detector = RisingChange(delta=0.002)
    >>> [detector.update(0.0) for _ in range(300)].count(True)
    0
    >>> any(detector.update(1.0) for _ in range(100))
    True
    """

    def __init__(self, delta: float, min_window: int = 5, clock: int = 32) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"ADWIN delta must be in (0, 1), got {delta}")
        self.delta = delta
        # ``clock``: ADWIN looks for a change every ``clock`` values.
        self._adwin = ADWIN(delta=delta, clock=clock, min_window_length=min_window)
        self.rises = 0
        self.falls = 0

    def update(self, value: float) -> bool:
        """Take one value; True when ADWIN detects that the mean has gone up."""
        before = self._adwin.estimation
        self._adwin.update(value)
        if not self._adwin.drift_detected:
            return False
        if self._adwin.estimation > before:
            self.rises += 1
            return True
        self.falls += 1
        return False

    @property
    def mean(self) -> float:
        return float(self._adwin.estimation)

    def state(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "width": int(self._adwin.width),
            "rises": self.rises,
            "falls": self.falls,
        }


class DriftWatch:
    """The detectors a policy runs, by signal; either may be off."""

    def __init__(self, errors: bool, uncertainty: bool, delta: float) -> None:
        self.detectors: dict[DriftSignal, RisingChange] = {}
        if errors:  # a few labels per thousand samples: look at every one
            self.detectors["errors"] = RisingChange(delta, clock=1)
        if uncertainty:
            self.detectors["uncertainty"] = RisingChange(delta)

    def error(self, wrong: bool) -> bool:
        detector = self.detectors.get("errors")
        return detector is not None and detector.update(1.0 if wrong else 0.0)

    def uncertainty(self, value: float) -> bool:
        detector = self.detectors.get("uncertainty")
        return detector is not None and detector.update(value)

    def state(self) -> dict[str, Any]:
        return {signal: detector.state() for signal, detector in self.detectors.items()}
