"""Variable Uncertainty and its randomised variant (Zliobaite et al., IEEE TNNLS 2014)."""

from __future__ import annotations

from typing import Any

from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.selector import derive_rng
from stream_al.core.strategies.spending import GatedSelector


class VariableUncertainty(GatedSelector):
    """A threshold that tightens after every query and relaxes after every pass.

    The paper states the rule on the model's confidence ``c = 1 - uncertainty``: query
    if ``c < theta``; after a query ``theta <- theta (1 - s)``, otherwise
    ``theta <- theta (1 + s)``. It is implemented in exactly that form (``theta`` is the
    *confidence* threshold), and :attr:`threshold` reports the equivalent uncertainty cut
    ``1 - theta``: a sample is queried when ``uncertainty > 1 - theta``. ``theta`` is not
    bounded: above 1 it asks about everything, which is how a model that is certain of
    every sample still gets labels.

    With the symmetric step the threshold settles where half the decisions are queries,
    so whenever the gate is open the rule asks about every other sample: it is the gate,
    not the threshold, that holds the budget. See ``AdaptiveQuantile`` for the fix.
    """

    name = "variable-uncertainty"

    def __init__(
        self,
        threshold: float = 0.5,
        step: float = 0.01,
        window: int = 1000,
        initial_spending: float | None = None,
    ) -> None:
        super().__init__(window, initial_spending)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if not 0.0 < step < 1.0:
            raise ValueError(f"step must be in (0, 1), got {step}")
        self.confidence_threshold = 1.0 - threshold
        self.step = step

    @property
    def threshold(self) -> float:
        return 1.0 - self.confidence_threshold

    def _cut(self) -> float:
        """The confidence threshold the current sample is compared with."""
        return self.confidence_threshold

    def _decide(self, uncertainty: float, ledger: Ledger) -> bool:
        query = 1.0 - uncertainty < self._cut()
        self.confidence_threshold *= (1.0 - self.step) if query else (1.0 + self.step)
        return query

    def state(self) -> dict[str, Any]:
        return {**super().state(), "confidence_threshold": self.confidence_threshold}


class RandomizedVariableUncertainty(VariableUncertainty):
    """Variable Uncertainty compared against ``theta * eta``, ``eta ~ N(1, delta)``.

    The noise lets samples the model is sure of be queried now and then, which is how
    the paper's randomised variant notices drift in regions the model stopped asking
    about. ``delta`` is the standard deviation of ``eta``.
    """

    name = "randomized-variable-uncertainty"

    def __init__(
        self,
        threshold: float = 0.5,
        step: float = 0.01,
        window: int = 1000,
        delta: float = 1.0,
        seed: int = 42,
        initial_spending: float | None = None,
    ) -> None:
        super().__init__(threshold, step, window, initial_spending)
        if delta <= 0.0:
            raise ValueError(f"delta must be > 0, got {delta}")
        self.delta = delta
        self._rng = derive_rng(seed, self.name)

    def _cut(self) -> float:
        return self.confidence_threshold * self._rng.gauss(1.0, self.delta)
