"""Random sampling at the budget rate, and the pacing rule shared with ``adaptive``."""

from __future__ import annotations

from typing import Any

from stream_al.core.strategies.base import Decision, Selection
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.selector import Selector, derive_rng


def paced_rate(base: float, deficit: float, budget: float, pacing_labels: float) -> float:
    """The query probability that spends ``base`` and repays a label deficit.

    ``base + deficit * B / pacing_labels``, clipped to [0, 1]: a policy ``pacing_labels``
    labels behind budget asks twice as often as the budget rate until it has caught up,
    one that far ahead stops asking. The correction is proportional, so the deficit
    decays geometrically, with a time constant of ``pacing_labels / B`` samples. Used
    with ``base = B (1 - exploration)`` the total rate converges to ``B`` whatever
    warm-up and exploration spent.
    """
    return min(1.0, max(0.0, base + deficit * budget / pacing_labels))


class RandomSampling(Selector):
    """Query each sample with probability ``B``, ignoring the model.

    The rate is paced by the ledger (see :func:`paced_rate`) so that warm-up and
    exploration labels are paid for. Picks are reported with reason ``"exploration"``:
    nothing about them is uncertain.
    """

    name = "random"
    model_free = True

    def __init__(self, pacing_labels: float = 10.0, seed: int = 42) -> None:
        if pacing_labels <= 0.0:
            raise ValueError(f"pacing_labels must be > 0, got {pacing_labels}")
        self.pacing_labels = pacing_labels
        self._rng = derive_rng(seed, self.name)
        self._rate = 0.0
        self._probability = 0.0

    @property
    def threshold(self) -> None:
        return None

    def offer(self, key: str, uncertainty: float, taken: bool, ledger: Ledger) -> list[Selection]:
        self._rate = paced_rate(
            ledger.uncertain_budget, ledger.deficit, ledger.budget, self.pacing_labels
        )
        # Draw on every sample, taken or not, so the draws do not depend on the wrapper.
        draw = self._rng.random()
        # Had the wrapper not taken it, one label less would have been spent.
        untaken = self._rate
        if taken:
            untaken = paced_rate(
                ledger.uncertain_budget, ledger.deficit + 1.0, ledger.budget, self.pacing_labels
            )
        self._probability = untaken if ledger.selectable else 0.0
        if taken or not ledger.selectable or draw >= self._rate:
            return []
        return [Selection(key, Decision(True, "exploration", None))]

    def selection_probability(self) -> float:
        return self._probability

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "rate": self._rate, "pacing_labels": self.pacing_labels}
