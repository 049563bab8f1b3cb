"""Balanced Incremental Quantile Filter (Kottke, Krempl, Spiliopoulou, IDA 2015)."""

from __future__ import annotations

from typing import Any

from stream_al.core.strategies.base import Decision, Selection
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.selector import Selector
from stream_al.core.strategies.window import SlidingWindow


class BalancedIncrementalQuantileFilter(Selector):
    """Query when the uncertainty reaches the budget quantile of the recent ones.

    The cut is the ``1 - B`` quantile of the last ``w`` uncertainties (the current one
    included, linear interpolation), shifted by the label deficit::

        cut = quantile(1 - B) - range * (B * n - q) / w_tol

    and a sample is queried when ``uncertainty >= cut``. A deficit (labels still to
    spend) lowers the cut, a surplus raises it; ``range`` (max - min of the window, as
    in the reference implementation) expresses the shift in the window's own scale. A
    window of identical values has no scale, so the full [0, 1] range is used instead:
    otherwise a model that is equally unsure of everything would be asked about every
    sample forever. ``B`` for the quantile is the uncertainty share of the budget,
    ``B (1 - exploration)``; the deficit is the whole ledger's.
    """

    name = "quantile"

    def __init__(self, window: int = 1000, label_tolerance: float = 50.0) -> None:
        if label_tolerance <= 0.0:
            raise ValueError(f"label_tolerance must be > 0, got {label_tolerance}")
        self.window = SlidingWindow(window)
        self.label_tolerance = label_tolerance
        self._cut: float | None = None

    @property
    def threshold(self) -> float | None:
        return self._cut

    def offer(self, key: str, uncertainty: float, taken: bool, ledger: Ledger) -> list[Selection]:
        self.window.add(uncertainty)
        spread = self.window.high - self.window.low or 1.0
        quantile = self.window.quantile(1.0 - ledger.uncertain_budget)
        self._cut = quantile - spread * ledger.deficit / self.label_tolerance
        if taken or not ledger.selectable or uncertainty < self._cut:
            return []
        return [Selection(key, Decision(True, "uncertain", self._cut))]

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "threshold": self._cut,
            "window": len(self.window),
            "label_tolerance": self.label_tolerance,
        }
