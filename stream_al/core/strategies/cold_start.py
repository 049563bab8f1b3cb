"""Cold start by clustering: the first labels go to representatives of new regions.

The plain warm-up labels the first ``warmup`` samples. Where those are not representative
(a stream that opens with one or two classes), the model starts blind to the rest and an
uncertainty rule does not find them: a model that knows two classes is sure of them.
Here the warm-up labels are spread over the first ``horizon`` samples and spent on
samples far from every representative labelled so far, the facilities of Meyerson's
online facility location (an online clustering, FOCS 2001): one label per new cluster.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stream_al.core.strategies.base import Decision, Selection
from stream_al.core.strategies.density import Standardiser
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.selector import Selector, derive_rng
from stream_al.core.strategies.window import SlidingWindow
from stream_al.core.types import FeatureValue, Proba

if TYPE_CHECKING:
    from stream_al.core.models import ScoringModel

#: A sample is in a new region when its squared distance to the nearest representative
#: is at least this many times the median of the recent ones: twice as far.
NEW_REGION = 4.0
#: Recent samples the median squared distance is taken over.
USUAL_WINDOW = 200
#: Far samples remembered, waiting for a second one near them.
FAR_MEMORY = 20


class ClusterColdStart(Selector):
    """Spend ``labels`` warm-up labels on new clusters, then leave it all to ``inner``.

    For each sample ``x`` (features standardised, :class:`Standardiser`), ``D(x)`` is the
    distance to the nearest representative labelled so far. The first ``labels // 2``
    samples are labelled at once, as the plain warm-up does (a cold model needs some
    labels now). The other half waits for new clusters: while labels are left and fewer
    than ``horizon`` samples have been seen, the ``t``-th sample becomes a representative
    (a query with reason ``"warm-up"``) with probability::

        p = clip(owed * D(x)^2 / m, 0, 1)   if x is far and confirmed, else 0
        owed = (labels - labels // 2) * t / horizon - (spent - labels // 2)

    with ``m`` the median of ``D^2`` over the last 200 samples (a median, so that the
    burst of far samples a new cluster brings does not hide the next one). ``x`` is *far*
    when ``D(x)^2 >= 4 m`` (twice as far from every representative as usual) and
    *confirmed* when one of the last 20 far samples lies within that distance of it: a
    new region is where far samples gather, not a lone tail sample of a known one. That
    is Meyerson's opening rule with a facility cost paced so that the labels are spent
    evenly over the horizon, and only on new regions: a sample in a region already
    represented is never taken, one in a new region as soon as a label is owed; labels
    owed accumulate while the stream brings nothing new, and those the horizon leaves
    unspent stay in the budget, for the uncertainty rule. ``inner`` sees
    every sample and picks the uncertain ones throughout (a cold-start pick is offered to
    it as taken); labels of both come out of the one ledger, so a cold start's labels are
    repaid like the plain warm-up's.

    Without features (a caller that does not pass them) the cold start picks nothing.
    """

    name = "cluster-cold-start"

    def __init__(self, inner: Selector, labels: int, horizon: int, seed: int = 42) -> None:
        if labels < 0:
            raise ValueError(f"cold-start labels must be >= 0, got {labels}")
        if horizon < 1:
            raise ValueError(f"cold-start horizon must be >= 1, got {horizon}")
        self.inner = inner
        self.labels = labels
        self.horizon = horizon
        #: Labels spent on the first samples, as the plain warm-up does (a cold model
        #: needs some at once); the rest wait for new clusters.
        self.first = labels // 2
        self.lookback = inner.lookback
        self._rng = derive_rng(seed, self.name)
        self._scale = Standardiser()
        self._representatives: list[list[float]] = []
        self._d2 = SlidingWindow(USUAL_WINDOW)
        #: Recent far samples: a new region is one where two of them fall close together.
        self._far: deque[list[float]] = deque(maxlen=FAR_MEMORY)
        self._seen = 0
        self._raw: list[float] | None = None
        self._probability = 0.0

    @property
    def active(self) -> bool:
        """Whether cold-start labels are still being spent."""
        return len(self._representatives) < self.labels and self._seen < self.horizon

    def observe(self, features: Mapping[str, FeatureValue]) -> None:
        self._raw = self._scale.add(features)
        self.inner.observe(features)

    def _confirmed(self, raw: list[float], usual: float) -> bool:
        """Whether an earlier far sample lies near ``raw`` (then remember ``raw`` as one)."""
        point = self._scale.z(raw)
        near = any(math.dist(point, self._scale.z(c)) ** 2 < NEW_REGION * usual for c in self._far)
        self._far.append(raw)
        return near

    def _nearest_d2(self, raw: list[float]) -> float:
        point = self._scale.z(raw)
        return min(
            (math.dist(point, self._scale.z(r)) ** 2 for r in self._representatives),
            default=math.inf,
        )

    def _open_probability(self, raw: list[float]) -> float:
        """The probability that the sample ``raw`` becomes a representative."""
        d2 = self._nearest_d2(raw)
        if not math.isfinite(d2):  # no representative yet
            return 1.0
        usual = self._d2.quantile(0.5) if len(self._d2) else d2
        self._d2.add(d2)
        spent = len(self._representatives)
        if spent < self.first:
            return 1.0
        if d2 < NEW_REGION * usual or not self._confirmed(raw, usual):
            return 0.0
        if usual <= 0.0:
            return 1.0
        owed = (self.labels - self.first) * self._seen / self.horizon - (spent - self.first)
        return max(0.0, min(1.0, owed * d2 / usual))

    def offer(self, key: str, uncertainty: float, taken: bool, ledger: Ledger) -> list[Selection]:
        raw, self._raw = self._raw, None
        self._probability = 0.0
        pick = False
        if raw is not None and self.active:
            self._seen += 1
            p = self._open_probability(raw)
            draw = self._rng.random()  # drawn on every active sample: reproducible by seed
            if ledger.selectable:
                self._probability = p  # for a taken sample: had it been offered untaken
                pick = not taken and draw < p
            if pick:
                self._representatives.append(raw)
        picked = self.inner.offer(key, uncertainty, taken or pick, ledger)
        if not pick:
            return picked
        mine = Selection(key, Decision(True, "warm-up", None))
        return [mine, *(s for s in picked if s.key != key)]

    @property
    def threshold(self) -> float | None:
        return self.inner.threshold

    def selection_probability(self) -> float | None:
        inner = self.inner.selection_probability()
        if inner is None:
            return None
        return self._probability + (1.0 - self._probability) * inner

    def random_pick_probability(self) -> float:
        # ``inner`` picks only a sample the cold start did not take.
        return (1.0 - self._probability) * self.inner.random_pick_probability()

    def observe_model(self, model: ScoringModel, proba: Proba) -> None:
        self.inner.observe_model(model, proba)

    def judged(self, key: str, correct: bool) -> None:
        self.inner.judged(key, correct)

    def answered(self, key: str) -> None:
        self.inner.answered(key)

    def model_changed(self, replaced: bool) -> None:
        self.inner.model_changed(replaced)

    def restart(self) -> None:
        self.inner.restart()

    def state(self) -> dict[str, Any]:
        return self.inner.state() | {
            "cold_start": {
                "representatives": len(self._representatives),
                "labels": self.labels,
                "horizon": self.horizon,
                "active": self.active,
            }
        }
