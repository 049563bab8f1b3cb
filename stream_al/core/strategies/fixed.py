"""Fixed uncertainty threshold."""

from __future__ import annotations

from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.spending import GatedSelector


class FixedThreshold(GatedSelector):
    """Query when ``uncertainty > threshold``, while the spending gate is open.

    The baseline of Zliobaite et al. (2014): it spends nothing when the model is sure of
    everything and hits the gate when it is unsure of much.
    """

    name = "fixed"

    def __init__(
        self, threshold: float = 0.5, window: int = 1000, initial_spending: float | None = None
    ) -> None:
        super().__init__(window, initial_spending)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self._threshold = threshold

    @property
    def threshold(self) -> float:
        return self._threshold

    def _decide(self, uncertainty: float, ledger: Ledger) -> bool:
        return uncertainty > self._threshold
