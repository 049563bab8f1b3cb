"""Drift detection for the query policy: on the labels' errors and on the uncertainty.

After a drift the model may be *confidently* wrong: an uncertainty strategy keeps asking
where the model hesitates, which is no longer where it errs. Two signals are watched:

* the errors of the labels (the prediction made when a sample was asked, against its
  label). By default every label counts (``labels="all"``): the queried samples are the
  hard ones, so their error rate is not the stream's, but a detector looks for a *change*
  of the rate, and ``1 / exploration`` (10) times more labels than the random ones alone
  give it the power to see one. (On ``sea-flip`` at B = 0.05 the random labels are one per
  200 samples: ADWIN on them changed nothing in the 5,000 samples after the labels flipped;
  see ``bench/drift.py``.) ``labels="random"`` keeps to the unbiased warm-up and exploration
  labels;
* the model's uncertainty on every sample (its distribution moves when the inputs or the
  model's view of them do).

Errors feed one of river's detectors (``detector``): ADWIN (``adwin``, confidence
``delta``) or a binary one made for error streams (``ddm``, ``eddm``, ``hddm-a``,
``hddm-w``, the Hoeffding-bound ones at drift confidence ``delta``). Uncertainty is a real
number and always feeds ADWIN. A change counts as a drift only when it goes the wrong way
(more errors, more uncertainty): a model that learns becomes surer and errs less, and
ADWIN flags that too (the binary detectors test only for a rise). The policy then reacts
(see :class:`~stream_al.core.strategies.budgeted.BudgetedPolicy`).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from river.drift import ADWIN
from river.drift.binary import DDM, EDDM, HDDMA, HDDMW

#: Which signal detected a drift.
DriftSignal = Literal["errors", "uncertainty"]
DRIFT_SIGNALS: tuple[DriftSignal, ...] = ("errors", "uncertainty")
#: The detector on the errors.
DetectorName = Literal["adwin", "ddm", "eddm", "hddm-a", "hddm-w"]
#: Whose errors are watched: every label, or only the random (warm-up, exploration) ones.
ErrorLabels = Literal["all", "random"]


class ChangeDetector(Protocol):
    def update(self, value: float) -> bool: ...

    def state(self) -> dict[str, Any]: ...


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


class RisingErrors:
    """One of river's binary detectors on a stream of errors (1 wrong, 0 right).

    They test for a rise of the error rate only, and start afresh after each detection;
    all but EDDM, which also fires when the errors grow rarer (and in the bench raised
    false alarms on stationary streams: prefer the others).

    >>> detector = RisingErrors("hddm-a", delta=0.001)
    >>> [detector.update(i % 10 == 0) for i in range(500)].count(True)
    0
    >>> next(i for i in range(500) if detector.update(i % 2 == 0)) < 60
    True
    """

    def __init__(self, name: DetectorName, delta: float) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"drift confidence delta must be in (0, 1), got {delta}")
        self.name = name
        self.delta = delta
        self._detector = self._build()
        self.seen = 0
        self.rises = 0

    def _build(self) -> DDM | EDDM | HDDMA | HDDMW:
        match self.name:
            case "ddm":
                return DDM()
            case "eddm":
                return EDDM()
            case "hddm-a":
                return HDDMA(drift_confidence=self.delta, warning_confidence=5 * self.delta)
            case "hddm-w":
                return HDDMW(drift_confidence=self.delta, warning_confidence=5 * self.delta)
        raise ValueError(f"not a binary detector: {self.name!r}")

    def update(self, value: float) -> bool:
        self._detector.update(bool(value))
        self.seen += 1
        if not self._detector.drift_detected:
            return False
        self.rises += 1
        return True

    def state(self) -> dict[str, Any]:
        return {"detector": self.name, "seen": self.seen, "rises": self.rises}


class DriftWatch:
    """The detectors a policy runs, by signal; either may be off.

    ``labels`` picks whose errors the ``errors`` detector sees (see the module docstring).
    """

    def __init__(
        self,
        errors: bool,
        uncertainty: bool,
        delta: float,
        detector: DetectorName = "hddm-w",
        labels: ErrorLabels = "all",
    ) -> None:
        self.labels: ErrorLabels = labels
        self.detectors: dict[DriftSignal, ChangeDetector] = {}
        if errors:
            if detector == "adwin":  # a few labels per thousand samples: look at every one
                self.detectors["errors"] = RisingChange(delta, clock=1)
            else:
                self.detectors["errors"] = RisingErrors(detector, delta)
        if uncertainty:
            self.detectors["uncertainty"] = RisingChange(delta)

    def error(self, wrong: bool, random: bool = True) -> bool:
        """Take one label's outcome; ``random``: whether it was a random label."""
        detector = self.detectors.get("errors")
        if detector is None or (self.labels == "random" and not random):
            return False
        return detector.update(1.0 if wrong else 0.0)

    def uncertainty(self, value: float) -> bool:
        detector = self.detectors.get("uncertainty")
        return detector is not None and detector.update(value)

    def state(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            **{signal: detector.state() for signal, detector in self.detectors.items()},
        }
