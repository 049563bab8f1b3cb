"""The query policy every strategy runs in: warm-up, exploration, hard cap, one ledger."""

from __future__ import annotations

from typing import Any

from stream_al.core.strategies.base import Decision, QueryPolicy, Selection
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.selector import Selector, check_uncertainty, derive_rng
from stream_al.core.types import QueryReason


class BudgetedPolicy(QueryPolicy):
    """Runs a :class:`Selector` within a budget, with warm-up, exploration and a cap.

    For each offered sample, in this order:

    1. *Warm-up*: the first ``warmup`` samples are queried (reason ``"warm-up"``) and the
       selector only watches. A cold model has no useful uncertainty (it may even be sure
       of everything after one label), so the first labels come from the stream, not
       from the model. They are charged to the ledger like any other label and repaid
       from the budget of the following ``warmup / B`` samples; only a stream shorter
       than that ends over budget, by at most ``warmup`` labels.
    2. *Exploration*: afterwards each sample is queried at random with probability
       ``exploration * B`` (reason ``"exploration"``), so a share ``exploration`` of all
       queries lands where the model is sure, which is where drift hides.
    3. The selector decides (reason ``"uncertain"``). It sees every sample, and the
       labels spent in 1 and 2 are in the ledger it reads, so the whole policy spends
       ``B`` over the long run.

    The hard cap ``max_labels`` is never exceeded: once reached nothing is queried.
    """

    def __init__(
        self,
        selector: Selector,
        budget: float,
        *,
        exploration: float = 0.0,
        warmup: int = 0,
        max_labels: int | None = None,
        seed: int = 42,
    ) -> None:
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self.selector = selector
        self.ledger = Ledger(budget=budget, exploration=exploration, max_labels=max_labels)
        self.warmup = warmup
        self.lookback = selector.lookback
        self._rng = derive_rng(seed, "budgeted")

    @property
    def in_warmup(self) -> bool:
        """Whether warm-up labels are still being collected."""
        return self.ledger.by_reason["warm-up"] < self.warmup

    def _wrapper_reason(self) -> QueryReason | None:
        """The wrapper's own decision on the current sample, if it queries it."""
        ledger = self.ledger
        if self.in_warmup:
            return "warm-up"
        # Draw on every sample after warm-up so the draws do not depend on the selector.
        if self._rng.random() < ledger.exploration * ledger.budget:
            return "exploration"
        return None

    def offer(self, key: str, uncertainty: float) -> list[Selection]:
        uncertainty = check_uncertainty(uncertainty)
        ledger = self.ledger
        ledger.see()
        ledger.held = self.in_warmup
        reason = self._wrapper_reason() if ledger.can_query else None
        selections: list[Selection] = []
        if reason is not None:
            ledger.record(reason)
            selections.append(Selection(key, Decision(True, reason, self.selector.threshold)))
        for picked in self.selector.offer(key, uncertainty, reason is not None, ledger):
            if not ledger.can_query:  # a selector that ignores the cap cannot break it
                break
            assert picked.decision.reason is not None
            ledger.record(picked.decision.reason)
            selections.append(picked)
        ledger.held = False
        return selections

    def recover(self, reason: QueryReason, samples_seen: int) -> None:
        self.ledger.recover(reason, samples_seen)

    @property
    def threshold(self) -> float | None:
        return self.selector.threshold

    @property
    def queries(self) -> int:
        return self.ledger.queried

    @property
    def queries_by_reason(self) -> dict[str, int]:
        return {reason: n for reason, n in self.ledger.by_reason.items() if n}

    @property
    def labels_remaining(self) -> int | None:
        return self.ledger.remaining

    def state(self) -> dict[str, Any]:
        return {
            "strategy": self.selector.name,
            **self.ledger.state(),
            "warmup": self.warmup,
            "in_warmup": self.in_warmup,
            "exploration": self.ledger.exploration,
            "selector": self.selector.state(),
        }
