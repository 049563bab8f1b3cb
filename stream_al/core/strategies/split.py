"""Split strategy: a share of decisions random, the rest Variable Uncertainty."""

from __future__ import annotations

from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.selector import derive_rng
from stream_al.core.strategies.variable_uncertainty import VariableUncertainty
from stream_al.core.types import QueryReason


class Split(VariableUncertainty):
    """With probability ``v`` a decision is random (query with probability ``B``),
    otherwise it is Variable Uncertainty's (Zliobaite et al., 2014).

    The random decisions leave the threshold alone; both kinds sit behind the spending
    gate. Random picks are reported with reason ``"exploration"``.
    """

    name = "split"

    def __init__(
        self,
        threshold: float = 0.5,
        step: float = 0.01,
        window: int = 1000,
        random_share: float = 0.2,
        seed: int = 42,
        initial_spending: float | None = None,
    ) -> None:
        super().__init__(threshold, step, window, initial_spending)
        if not 0.0 <= random_share <= 1.0:
            raise ValueError(f"random_share must be in [0, 1], got {random_share}")
        self.random_share = random_share
        self._rng = derive_rng(seed, self.name)
        self._last_random = False

    def _decide(self, uncertainty: float, ledger: Ledger) -> bool:
        self._last_random = self._rng.random() < self.random_share
        if self._last_random:
            return self._rng.random() < ledger.budget
        return super()._decide(uncertainty, ledger)

    def _reason(self) -> QueryReason:
        return "exploration" if self._last_random else "uncertain"
