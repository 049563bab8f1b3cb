"""Learned alternation among strategies: Active Learning by Learning (Hsu and Lin, 2015).

No single strategy wins on every stream (margin chases noise, density misses a flip,
random wastes labels where the model is sure). ALBL lets a bandit choose, per decision,
which of several strategies decides, and rewards each by an unbiased estimate of how good
the model is after its labels, so that the choice drifts toward the best of them on the
stream at hand without being told which it is.

Here, for a stream:

* every arm (a :class:`Selector`) sees every sample, so its statistics stay current; for
  each sample one arm is drawn from the bandit's distribution ``pi`` (seeded), and only
  its decision counts. All arms read the one ledger and are paced by it, so whichever
  decides, the policy spends the budget: the budget is held by the same mechanism as for
  any other strategy;
* the probability that the sample is picked is ``sum_a pi_a p_a`` (``p_a`` each arm's
  own selection probability), exact because the draw of the arm is independent of the
  arms' draws; with the wrapper's exploration ``q_e`` the sample is asked with
  probability ``q = q_e + (1 - q_e) sum_a pi_a p_a``, known for every sample;
* the reward is ALBL's importance-weighted accuracy (IW-ACC): each sample is credited to
  the arm whose label was the latest one learned when it was predicted (the model that
  predicted it is the one that label just updated); when a sample's label comes back its
  prediction's correctness ``c`` counts ``c / q`` (zero for samples never asked, which
  is what makes it unbiased: ``E[c / q * asked] = P(correct)``);
* the bandit is EXP3 (Auer et al.): ``log w_a += eta * B * (c / q) / pi_a(t)``, with
  ``pi_a(t)`` the probability with which the credited arm was drawn for its query and
  ``B`` the budget (about one label per ``1 / B`` samples, so ``B * sum c / q`` over one
  arm's stretch estimates the accuracy of that stretch); ``pi = (1 - gamma) w / sum w
  + gamma / K`` keeps every arm alive (streams drift, and a lost arm may win later).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from stream_al.core.models import ScoringModel
from stream_al.core.strategies.base import Selection
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.selector import Selector, derive_rng
from stream_al.core.types import FeatureValue, Proba

#: Samples remembered while their label may still come back (older ones are forgotten).
MAX_REMEMBERED = 20_000


class LearnedAlternation(Selector):
    """Per sample, one of ``arms`` decides, drawn by an EXP3 bandit rewarded by IW-ACC.

    ``gamma`` is the share of uniform draws, ``eta`` the learning rate of the weights.

    >>> from stream_al.core.strategies.adaptive import AdaptiveQuantile
    >>> from stream_al.core.strategies.random_sampling import RandomSampling
    >>> albl = LearnedAlternation([AdaptiveQuantile(seed=1), RandomSampling(seed=1)], seed=1)
    >>> ledger = Ledger(budget=0.1)
    >>> picked = 0
    >>> for i in range(2000):
    ...     ledger.see()
    ...     for selection in albl.offer(f"s{i}", (i % 10) / 10, False, ledger):
    ...         ledger.record("uncertain"); picked += 1
    >>> 150 < picked < 250, [round(p, 2) for p in albl.probabilities]
    (True, [0.5, 0.5])
    """

    name = "albl"

    def __init__(
        self, arms: Sequence[Selector], gamma: float = 0.2, eta: float = 0.05, seed: int = 42
    ) -> None:
        if len(arms) < 2:
            raise ValueError(f"ALBL needs at least two arms, got {len(arms)}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        if eta <= 0.0:
            raise ValueError(f"eta must be > 0, got {eta}")
        self.arms = list(arms)
        self.lookback = max(arm.lookback for arm in self.arms)
        self.gamma = gamma
        self.eta = eta
        self._rng = derive_rng(seed, self.name)
        self._log_weights = [0.0] * len(self.arms)
        self._probability = 0.0
        #: The bandit's distribution when the last sample's arm was drawn.
        self._pi = [0.0] * len(self.arms)
        self._chosen = 0
        #: The arm whose label was learned last (None: warm-up or exploration labels only).
        self._latest: int | None = None
        self._latest_pi = 1.0
        #: key -> (arm drawn, its pi then, query probability, arm credited, that arm's pi)
        self._samples: OrderedDict[str, tuple[int, float, float, int | None, float]] = OrderedDict()
        #: keys asked for by the bandit's arms: their label's arm becomes the latest
        self._asked: OrderedDict[str, int] = OrderedDict()
        self.draws = [0] * len(self.arms)
        self.rewards = [0.0] * len(self.arms)
        self._budget = 0.0

    @property
    def probabilities(self) -> list[float]:
        """The bandit's distribution over the arms now."""
        top = max(self._log_weights)
        w = [math.exp(v - top) for v in self._log_weights]
        total = sum(w)
        k = len(w)
        return [(1.0 - self.gamma) * x / total + self.gamma / k for x in w]

    @property
    def chosen(self) -> int:
        """The index of the arm drawn for the last sample offered."""
        return self._chosen

    @property
    def threshold(self) -> float | None:
        return self.arms[self._chosen].threshold

    def observe(self, features: Mapping[str, FeatureValue]) -> None:
        for arm in self.arms:
            arm.observe(features)

    def observe_model(self, model: ScoringModel, proba: Proba) -> None:
        for arm in self.arms:
            arm.observe_model(model, proba)

    def offer(self, key: str, uncertainty: float, taken: bool, ledger: Ledger) -> list[Selection]:
        pi = self.probabilities
        chosen = self._rng.choices(range(len(self.arms)), weights=pi)[0]
        self._chosen, self._pi = chosen, pi
        self.draws[chosen] += 1
        self._budget = ledger.budget
        picked: list[Selection] = []
        mixture = 0.0
        known = True
        for i, arm in enumerate(self.arms):
            selections = arm.offer(key, uncertainty, taken, ledger)
            p = arm.selection_probability()
            if p is None:
                known = False
            else:
                mixture += pi[i] * p
            if i == chosen:
                picked = selections
        # pi sums to 1 only up to rounding: arms all sure to pick made it 1 + 2e-16.
        self._probability = min(1.0, mixture) if known else 0.0
        q_e = 0.0 if ledger.held else ledger.exploration * ledger.budget
        q = 1.0 if ledger.held else q_e + (1.0 - q_e) * self._probability
        self._samples[key] = (chosen, pi[chosen], q, self._latest, self._latest_pi)
        while len(self._samples) > MAX_REMEMBERED:
            self._samples.popitem(last=False)
        if any(s.key == key for s in picked):
            self._asked[key] = chosen
            while len(self._asked) > MAX_REMEMBERED:
                self._asked.popitem(last=False)
        return picked

    def selection_probability(self) -> float | None:
        return self._probability

    def random_pick_probability(self) -> float:
        # The arm is drawn independently of the arms' own draws, as for the mixture above.
        drawn = zip(self._pi, self.arms, strict=True)
        own = sum(p * arm.random_pick_probability() for p, arm in drawn)
        return min(1.0, own)

    def answered(self, key: str) -> None:
        for arm in self.arms:
            arm.answered(key)

    def model_changed(self, replaced: bool) -> None:
        for arm in self.arms:
            arm.model_changed(replaced)

    def judged(self, key: str, correct: bool) -> None:
        """Reward the arm credited with ``key``'s prediction; ``key``'s own arm is next."""
        for arm in self.arms:
            arm.judged(key, correct)
        sample = self._samples.pop(key, None)
        if sample is None:
            return
        _, drawn_pi, q, credited, credited_pi = sample
        if credited is not None and q > 0.0:
            reward = (1.0 if correct else 0.0) / q
            self.rewards[credited] += reward
            self._log_weights[credited] += self.eta * self._budget * reward / credited_pi
        # The model learns this label now: later predictions are its arm's (none for a
        # warm-up or exploration label, which no arm chose).
        self._latest, self._latest_pi = self._asked.pop(key, None), drawn_pi

    def restart(self) -> None:
        for arm in self.arms:
            arm.restart()

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "probabilities": self.probabilities,
            "arms": [arm.state() for arm in self.arms],
            "draws": list(self.draws),
            "chosen": self.arms[self._chosen].name,
        }
