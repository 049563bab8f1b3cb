"""How accurate is the model on the whole stream? Estimates from the labels it asked for.

The accuracy on *queried* samples (``ActiveLearner.recent_accuracy``) is biased low: an
uncertainty strategy asks about the hardest samples by construction. Two estimates here
are not, because each label is weighted by the probability that its sample was asked:

``random``
    Only the labels asked whatever the model thought: exploration (each sample after
    warm-up is drawn with probability ``exploration * B``, independently of the model, or
    else by the selector's own random pick, ``q + (1 - q) rho``: see
    ``Selector.random_pick_probability``) and warm-up (the first samples, all of them).
    Those are a probability sample of the stream, so the share the model predicted right
    (each label weighed by one over its probability) estimates the accuracy of *all* its
    predictions. With equal weights (the usual case once warm-up has left the window)
    this is the plain share right, with a Wilson score interval.

``weighted``
    Every label, each weighted by ``1 / pi``, ``pi`` the probability with which the policy
    would have asked about that sample given everything before it (Hajek's self-normalised
    Horvitz-Thompson estimator). The confident samples are reached only by exploration,
    the uncertain ones are nearly all labeled, so it is a stratified estimate and tighter
    when the two strata differ. It needs every label's ``pi``; a strategy that cannot tell
    (``pool`` and the threshold family) leaves it undefined (NaN).

Both are computed over the samples of a recent window (by stream position, so labels that
come back late count for the sample they belong to) and since the start. ``random``'s
interval is Wilson's score interval at Kish's effective number of labels,
``(sum w)^2 / sum w^2``. ``weighted`` splits the labels in two strata: the samples only an
exploration draw could reach (Wilson, as ``random``) and the rest (Hajek, Wilson at the
design-effect size ``p (1 - p) / V``, ``V`` the linearised variance under independent
inclusion), and combines the two intervals by the method of variance estimates recovery
(MOVER, Zou & Donner 2008). A plain normal interval on all labels at once collapses when the
few exploration labels happen to be all right, and covered the truth in 3 of 8 runs.

>>> log = AccuracyLog(window=1000, confidence=0.95)
>>> for i in range(200):
...     log.add(position=i + 1, correct=i % 10 != 0, probability=0.5)
>>> estimate = log.estimate(now=200)
>>> round(estimate.value, 3), round(estimate.low, 3), round(estimate.high, 3), estimate.labels
(0.9, 0.851, 0.934, 200)
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

from stream_al.core.types import QueryReason

#: ``random``: labels asked whatever the model thought; ``weighted``: all labels, by 1 / pi.
EstimateKind = Literal["random", "weighted"]
#: ``window``: the samples of the last ``window`` positions; ``total``: since the start.
EstimateScope = Literal["window", "total"]
ESTIMATE_KINDS: tuple[EstimateKind, ...] = ("random", "weighted")
ESTIMATE_SCOPES: tuple[EstimateScope, ...] = ("window", "total")


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile for ``confidence``.

    >>> round(z_value(0.95), 3)
    1.96
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``p`` observed on ``n`` (effective) trials.

    Unlike ``p +- z sqrt(p (1 - p) / n)`` it stays inside [0, 1] and does not collapse to a
    point when every trial succeeded.

    >>> low, high = wilson(1.0, 20, 1.96)
    >>> round(low, 3), high
    (0.839, 1.0)
    """
    if n <= 0.0 or math.isnan(p):
        return math.nan, math.nan
    z2 = z * z
    centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n)
    half = z / (1.0 + z2 / n) * math.sqrt(max(0.0, p * (1.0 - p) / n + z2 / (4.0 * n * n)))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class AccuracyEstimate:
    """An estimate of the accuracy of all predictions, with its confidence interval."""

    value: float
    low: float
    high: float
    #: Labels the estimate rests on, and their effective number (see the module docstring).
    labels: int
    effective_labels: float

    @classmethod
    def none(cls) -> AccuracyEstimate:
        """No estimate (no label yet, or the probabilities are unknown): NaN everywhere."""
        return cls(math.nan, math.nan, math.nan, 0, 0.0)

    @property
    def known(self) -> bool:
        return not math.isnan(self.value)

    def as_dict(self) -> dict[str, float]:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "labels": self.labels,
            "effective_labels": self.effective_labels,
        }


class _Sums:
    """Running sums of the weighted outcomes (``w = 1 / pi``, ``c = (1 - pi) / pi^2``)."""

    __slots__ = ("c", "cy", "n", "w", "w2", "wy")

    def __init__(self) -> None:
        self.n = 0
        self.w = self.wy = self.w2 = self.c = self.cy = 0.0

    def add(self, correct: bool, probability: float, sign: int = 1) -> None:
        w = 1.0 / probability
        c = (1.0 - probability) * w * w
        y = 1.0 if correct else 0.0
        self.n += sign
        self.w += sign * w
        self.wy += sign * w * y
        self.w2 += sign * w * w
        self.c += sign * c
        self.cy += sign * c * y


class AccuracyLog:
    """Labeled outcomes ``(position, correct, pi)``, estimated over a window and in total.

    ``kind`` picks the interval (see the module docstring). Outcomes may arrive out of
    order (labels come back late); the window holds those whose sample's position is in
    ``(now - window, now]``. An outcome is ``explored`` when only a random draw could have
    asked for it (the model would not have); ``weighted`` treats those as a stratum of
    their own (below).
    """

    def __init__(
        self, window: int, confidence: float = 0.95, kind: EstimateKind = "random"
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.kind: EstimateKind = kind
        self.z = z_value(confidence)
        self._heap: list[tuple[int, int, bool, float, bool]] = []
        self._seq = 0
        #: Running sums by stratum (explored or not), in the window and since the start.
        self._recent = (_Sums(), _Sums())
        self._total = (_Sums(), _Sums())
        #: Labels in the window whose probability was unknown: the window estimate is void.
        self._unknown: list[int] = []
        self.unknown_total = 0

    def add(
        self, position: int, correct: bool, probability: float | None, explored: bool = False
    ) -> None:
        """Record one label of the sample at ``position`` (1-based), asked with ``pi``."""
        if probability is None:
            heapq.heappush(self._unknown, position)
            self.unknown_total += 1
        else:
            if not 0.0 < probability <= 1.0:
                raise ValueError(f"probability must be in (0, 1], got {probability!r}")
            self._seq += 1
            heapq.heappush(self._heap, (position, self._seq, correct, probability, explored))
            self._recent[explored].add(correct, probability)
            self._total[explored].add(correct, probability)
        if len(self._heap) + len(self._unknown) > 2 * self.window:
            # Bounded memory for a caller that never asks for an estimate (a library user,
            # a long simulation): the stream is at least at ``position``, so what is out of
            # the window there is out of it for good.
            self._evict(position)

    def _evict(self, now: int) -> None:
        start = now - self.window
        while self._heap and self._heap[0][0] <= start:
            _, _, correct, probability, explored = heapq.heappop(self._heap)
            self._recent[explored].add(correct, probability, sign=-1)
        while self._unknown and self._unknown[0] <= start:
            heapq.heappop(self._unknown)
        for explored in (False, True):  # no rounding residue once a stratum is empty
            if self._recent[explored].n == 0:
                self._recent[explored].__init__()  # type: ignore[misc]

    def estimate(self, now: int, scope: EstimateScope = "window") -> AccuracyEstimate:
        """The estimate over the window ending at position ``now``, or since the start."""
        self._evict(now)
        if scope == "window":
            strata, void = self._recent, bool(self._unknown)
        else:
            strata, void = self._total, self.unknown_total > 0
        if void:
            return AccuracyEstimate.none()
        if self.kind == "random":
            return self._random(_merged(strata))
        return self._stratified(strata)

    def _random(self, sums: _Sums) -> AccuracyEstimate:
        """Wilson at Kish's effective number of labels."""
        if sums.n <= 0 or sums.w <= 0.0:
            return AccuracyEstimate.none()
        p = min(1.0, max(0.0, sums.wy / sums.w))
        n_eff = sums.w * sums.w / sums.w2
        low, high = wilson(p, n_eff, self.z)
        return AccuracyEstimate(p, low, high, sums.n, n_eff)

    def _weighted(self, sums: _Sums) -> AccuracyEstimate:
        """Hajek's estimator, Wilson at the design-effect size ``p (1 - p) / V``."""
        if sums.n <= 0 or sums.w <= 0.0:
            return AccuracyEstimate.none()
        p = min(1.0, max(0.0, sums.wy / sums.w))
        if sums.c <= 1e-12 * sums.w2:  # every label had pi = 1: a census, exact
            return AccuracyEstimate(p, p, p, sums.n, math.inf)
        # Linearised variance of the ratio estimator: sum c (y - p)^2 / N^2.
        variance = max(0.0, sums.cy - 2.0 * p * sums.cy + p * p * sums.c) / (sums.w * sums.w)
        n_eff = sums.w * sums.w / sums.w2
        if variance > 0.0 and 0.0 < p < 1.0:
            n_eff = p * (1.0 - p) / variance
        low, high = wilson(p, n_eff, self.z)
        return AccuracyEstimate(p, low, high, sums.n, n_eff)

    def _stratified(self, strata: tuple[_Sums, _Sums]) -> AccuracyEstimate:
        """Two strata, combined by the method of variance estimates recovery (MOVER).

        The *explored* stratum (samples only a random draw could reach, all with the same
        small ``pi``) is a plain random sample of the samples the model was sure of: Wilson
        at Kish's size, as ``random``. The other labels (warm-up, and the samples the model
        was unsure of, most of them asked with ``pi`` near 1) are estimated by Hajek's
        estimator. The two intervals are combined as in Zou & Donner (2008): the distance
        of each bound from the estimate is the root of the sum of the strata's squared
        distances, each scaled by the stratum's estimated share of the samples.
        """
        explored = self._random(strata[True])
        rest = self._weighted(strata[False])
        share = strata[True].w / (strata[True].w + strata[False].w or 1.0)
        parts = [(est, f) for est, f in ((explored, share), (rest, 1.0 - share)) if est.known]
        if not parts:
            return AccuracyEstimate.none()
        if len(parts) == 1:
            return parts[0][0]
        p = sum(f * est.value for est, f in parts)
        down = math.sqrt(sum((f * (est.value - est.low)) ** 2 for est, f in parts))
        up = math.sqrt(sum((f * (est.high - est.value)) ** 2 for est, f in parts))
        low, high = max(0.0, p - down), min(1.0, p + up)
        half = (high - low) / (2.0 * self.z)
        n_eff = p * (1.0 - p) / (half * half) if half > 0.0 else math.inf
        return AccuracyEstimate(p, low, high, explored.labels + rest.labels, n_eff)


def _merged(strata: tuple[_Sums, _Sums]) -> _Sums:
    merged = _Sums()
    for sums in strata:
        merged.n += sums.n
        merged.w += sums.w
        merged.wy += sums.wy
        merged.w2 += sums.w2
        merged.c += sums.c
        merged.cy += sums.cy
    return merged


@dataclass(frozen=True, slots=True)
class Asked:
    """What the policy knew when it asked about one sample."""

    #: The sample's position in the stream (1-based: ``ledger.seen`` when it was offered).
    position: int
    reason: QueryReason
    #: Probability that the policy would ask about this sample, given the past; None if
    #: the strategy cannot tell.
    probability: float | None
    #: Probability that it would be asked *whatever the model thought* (warm-up and
    #: exploration draws); None for a sample asked because the model was unsure.
    random_probability: float | None
    #: Read back from the query log after a restart (its probability was not logged).
    recovered: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """A label joined with what the policy knew when it asked: the estimators' input."""

    asked: Asked
    correct: bool


class AccuracyMonitor:
    """The queries still open and both accuracy estimates, fed by the policy.

    ``asked`` is called for every query when it is made, ``labelled`` when its label comes
    back with whether the prediction made at the time was right. At most ``open_max``
    queries are remembered (the oldest are forgotten first, like the pending store).

    >>> monitor = AccuracyMonitor(window=100)
    >>> monitor.asked("a", Asked(1, "exploration", 0.01, 0.01))
    >>> monitor.asked("b", Asked(2, "uncertain", 1.0, None))
    >>> monitor.labelled("a", True).asked.reason
    'exploration'
    >>> _ = monitor.labelled("b", False)
    >>> monitor.estimate("random", now=2).labels, monitor.estimate("weighted", now=2).labels
    (1, 2)
    """

    def __init__(self, window: int, confidence: float = 0.95, open_max: int = 100_000) -> None:
        self.window = window
        self.confidence = confidence
        self.open_max = open_max
        self._open: OrderedDict[str, Asked] = OrderedDict()
        self.logs: dict[EstimateKind, AccuracyLog] = {
            kind: AccuracyLog(window, confidence, kind) for kind in ESTIMATE_KINDS
        }

    def asked(self, key: str, asked: Asked) -> None:
        self._open.pop(key, None)
        self._open[key] = asked
        while len(self._open) > self.open_max:
            self._open.popitem(last=False)

    def labelled(self, key: str, correct: bool) -> Outcome | None:
        """Record the label of ``key``; None when its query is not (or no longer) known."""
        asked = self._open.pop(key, None)
        if asked is None:
            return None
        if asked.random_probability is not None:
            self.logs["random"].add(asked.position, correct, asked.random_probability)
        explored = asked.reason == "exploration" and asked.probability == asked.random_probability
        if asked.probability is not None or not asked.recovered:
            # (a recovered label of unknown probability is left out rather than void the
            # window: which labels a restart loses does not depend on their outcome)
            self.logs["weighted"].add(asked.position, correct, asked.probability, explored)
        return Outcome(asked, correct)

    def estimate(
        self, kind: EstimateKind = "random", now: int = 0, scope: EstimateScope = "window"
    ) -> AccuracyEstimate:
        return self.logs[kind].estimate(now, scope)

    def state(self, now: int) -> dict[str, Any]:
        return {
            f"{kind}_{scope}": self.estimate(kind, now, scope).as_dict()
            for kind in ESTIMATE_KINDS
            for scope in ESTIMATE_SCOPES
        }
