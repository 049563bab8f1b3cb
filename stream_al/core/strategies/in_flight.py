"""Labels in flight: do not spend twice on a region whose labels are still on their way.

While labels are late the model does not change, so an uncertainty rule keeps finding
the same uncertain region and asks about it again and again before the first answer
could have taught the model anything. Knowing which queries are still unanswered, the
rule can discount samples that lie close to one of them.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stream_al.core.strategies.base import Selection
from stream_al.core.strategies.density import Standardiser
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.selector import Selector
from stream_al.core.strategies.window import SlidingWindow
from stream_al.core.types import FeatureValue, Proba

if TYPE_CHECKING:
    from stream_al.core.models import ScoringModel

#: Unanswered queries remembered at most (the oldest are forgotten: labels that never come).
MAX_IN_FLIGHT = 1000
#: Recent samples over which the usual distance to the nearest query in flight is taken.
USUAL_WINDOW = 200
_AT_USUAL = 1.0 - math.exp(-1.0)


class InFlightAware(Selector):
    """``inner`` on ``uncertainty * w``, lower near queries whose labels are in flight::

        w = min(1, (1 - exp(-(d / s)^2)) / (1 - exp(-1)))

    ``d`` is the distance (standardised features, :class:`Standardiser`) from the sample
    to the nearest query whose label has not come back yet (every query of the policy:
    warm-up, exploration and uncertain ones), ``s`` the median of that distance over the
    last 200 samples. A sample at least as far from the queries in flight as usual keeps
    its uncertainty, one at half that distance 35 % of it, one next to a query nearly
    none; with no query in flight nothing changes (and such a moment is not special: half
    the samples keep their uncertainty anyway). The policy reports each label
    (:meth:`answered`), which lands its query. ``inner`` ranks the discounted values, so
    its selection probability (and the weighted accuracy estimate) holds for them. Only
    the sample just offered is remembered as in flight: a pool's picks from its buffer
    are not.
    """

    def __init__(self, inner: Selector) -> None:
        self.inner = inner
        self.name = inner.name
        self.lookback = inner.lookback
        self._scale = Standardiser()
        self._in_flight: OrderedDict[str, list[float]] = OrderedDict()
        self._distances = SlidingWindow(USUAL_WINDOW)
        self._raw: list[float] | None = None
        self.last_weight = 1.0

    @property
    def in_flight(self) -> int:
        """Queries remembered as unanswered."""
        return len(self._in_flight)

    def observe(self, features: Mapping[str, FeatureValue]) -> None:
        self._raw = self._scale.add(features)
        self.inner.observe(features)

    def observe_model(self, model: ScoringModel, proba: Proba) -> None:
        self.inner.observe_model(model, proba)

    def judged(self, key: str, correct: bool) -> None:
        self.inner.judged(key, correct)

    def answered(self, key: str) -> None:
        self._in_flight.pop(key, None)
        self.inner.answered(key)

    def model_changed(self, replaced: bool) -> None:
        self.inner.model_changed(replaced)

    def _weight(self, raw: list[float]) -> float:
        if not self._in_flight:
            return 1.0
        point = self._scale.z(raw)
        d = min(math.dist(point, self._scale.z(other)) for other in self._in_flight.values())
        usual = self._distances.quantile(0.5) if len(self._distances) else d
        self._distances.add(d)
        if usual <= 0.0:
            return 1.0 if d > 0.0 else 0.0
        return min(1.0, (1.0 - math.exp(-((d / usual) ** 2))) / _AT_USUAL)

    def offer(self, key: str, uncertainty: float, taken: bool, ledger: Ledger) -> list[Selection]:
        raw, self._raw = self._raw, None
        weight = 1.0 if raw is None else self._weight(raw)
        self.last_weight = weight
        picked = self.inner.offer(key, uncertainty * weight, taken, ledger)
        if raw is not None and (taken or any(s.key == key for s in picked)):
            self._in_flight[key] = raw
            while len(self._in_flight) > MAX_IN_FLIGHT:
                self._in_flight.popitem(last=False)
        return picked

    @property
    def threshold(self) -> float | None:
        return self.inner.threshold

    def selection_probability(self) -> float | None:
        return self.inner.selection_probability()

    def random_pick_probability(self) -> float:
        return self.inner.random_pick_probability()

    def restart(self) -> None:
        self.inner.restart()

    def state(self) -> dict[str, Any]:
        return self.inner.state() | {
            "in_flight": {"queries": len(self._in_flight), "last_weight": self.last_weight}
        }
