"""The label ledger: how many samples were seen, how many were queried, and why.

Every strategy spends one budget ``B``, the share of samples sent to the oracle over the
long run. The ledger is the single account of that spending: the wrapper
(:class:`~stream_al.core.strategies.budgeted.BudgetedPolicy`) records warm-up,
exploration and uncertainty queries in it, and the selectors read their deficit from it,
so labels spent by warm-up and exploration are paid for by the uncertainty part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream_al.core.types import QueryReason

REASONS: tuple[QueryReason, ...] = ("uncertain", "exploration", "warm-up")


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(REASONS, 0)


@dataclass(slots=True)
class Ledger:
    """Samples seen and labels asked for, against a budget and an optional hard cap.

    ``seen`` counts the sample being decided on as soon as it is offered, so during a
    decision ``deficit`` is the number of labels the policy is allowed to ask for now
    and still be on budget.
    """

    budget: float
    #: Share of all queries reserved for random exploration.
    exploration: float = 0.0
    max_labels: int | None = None
    seen: int = 0
    queried: int = 0
    by_reason: dict[str, int] = field(default_factory=_zero_counts)
    #: Set by the wrapper while only it may query (warm-up): selectors watch but do not pick.
    held: bool = False
    #: Set by the wrapper while a stopping rule holds: selectors watch but do not pick.
    paused: bool = False
    #: Labels of the budget left unspent while paused; not owed, so never repaid.
    saved: float = 0.0
    #: What ``set_budget`` changes carried over, so that ``budget * seen + allowance_offset``
    #: is the labels allowed so far: a budget applies from the sample it is set on.
    allowance_offset: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.budget <= 1.0:
            raise ValueError(f"budget must be in (0, 1], got {self.budget}")
        if not 0.0 <= self.exploration <= 1.0:
            raise ValueError(f"exploration must be in [0, 1], got {self.exploration}")
        if self.max_labels is not None and self.max_labels < 0:
            raise ValueError(f"max_labels must be >= 0, got {self.max_labels}")

    @property
    def deficit(self) -> float:
        """Labels behind budget (``B * seen - queried - saved``); negative when ahead of it."""
        return self.budget * self.seen + self.allowance_offset - self.queried - self.saved

    def set_budget(self, budget: float) -> None:
        """Change the share from the next sample on; what was allowed so far stays."""
        if not 0.0 < budget <= 1.0:
            raise ValueError(f"budget must be in (0, 1], got {budget}")
        self.allowance_offset += (self.budget - budget) * self.seen
        self.budget = budget

    def rebudget(self, budget: float, exploration: float, max_labels: int | None) -> None:
        """Apply a new configuration's budget, exploration and cap from now on.

        >>> ledger = Ledger(budget=0.1, seen=1000, queried=100)
        >>> ledger.rebudget(0.2, 0.0, None)
        >>> ledger.deficit, ledger.budget
        (0.0, 0.2)
        """
        self.set_budget(budget)
        self.exploration, self.max_labels = exploration, max_labels

    @property
    def uncertain_budget(self) -> float:
        """The share of samples the uncertainty part should query: ``B (1 - exploration)``."""
        return self.budget * (1.0 - self.exploration)

    @property
    def remaining(self) -> int | None:
        """Labels left under the hard cap; None without a cap."""
        if self.max_labels is None:
            return None
        return max(0, self.max_labels - self.queried)

    @property
    def can_query(self) -> bool:
        """Whether one more label may be asked for without breaking the hard cap."""
        remaining = self.remaining
        return remaining is None or remaining > 0

    @property
    def selectable(self) -> bool:
        """Whether a selector may pick a sample now: not held, and under the cap."""
        return not self.held and not self.paused and self.can_query

    def see(self) -> None:
        """Count one more offered sample."""
        self.seen += 1

    def record(self, reason: QueryReason) -> None:
        """Count one query; the caller has checked ``can_query``."""
        if not self.can_query:
            raise RuntimeError("hard label cap exceeded")
        self.queried += 1
        self.by_reason[reason] += 1

    def recover(self, reason: QueryReason, seen: int) -> None:
        """Count a query made after the state restored, ``seen`` samples into the stream.

        Unlike :meth:`record` the cap is not checked: the label was asked for already.
        """
        self.queried += 1
        self.by_reason[reason] += 1
        self.seen = max(self.seen, seen)

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot."""
        return {
            "budget": self.budget,
            "seen": self.seen,
            "queried": self.queried,
            "rate": self.queried / self.seen if self.seen else 0.0,
            "deficit": self.deficit,
            "by_reason": dict(self.by_reason),
            "max_labels": self.max_labels,
            "labels_remaining": self.remaining,
            "paused": self.paused,
            "saved": self.saved,
        }
