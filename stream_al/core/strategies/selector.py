"""The inner contract: a selector picks the *uncertain* samples.

A :class:`Selector` is what distinguishes one strategy from another (a threshold rule,
a quantile filter, a pool). It is driven by
:class:`~stream_al.core.strategies.budgeted.BudgetedPolicy`, which owns everything
shared by all strategies: the ledger, warm-up, exploration and the hard cap. The
selector sees every sample, including those the wrapper has already queried for
warm-up or exploration (``taken``): it must not select those again, but it still
updates its statistics from them, and their labels count against its budget through
the ledger.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stream_al.core.strategies.base import Decision, Selection
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.types import FeatureValue, Proba

if TYPE_CHECKING:
    from stream_al.core.models import ScoringModel


class Selector(ABC):
    """Decides which samples are worth a label because the model is unsure of them."""

    #: Short name used in ``state()`` and logs.
    name: str = "selector"
    #: How many of the most recent samples a selection may refer to.
    lookback: int = 1
    #: Whether the selector's picks ignore the model (then they are random labels too).
    model_free: bool = False

    @abstractmethod
    def offer(self, key: str, uncertainty: float, taken: bool, ledger: Ledger) -> list[Selection]:
        """Take one sample; return the samples selected as uncertain.

        ``ledger.seen`` already counts this sample; when ``taken`` is true the wrapper has
        queried it and ``ledger.queried`` counts that label too. A selector picks nothing
        while ``ledger.selectable`` is false, and no more samples than ``ledger.remaining``
        allows.
        """

    @property
    @abstractmethod
    def threshold(self) -> float | None:
        """The uncertainty cut in force now, if the selector has one."""

    def selection_probability(self) -> float | None:
        """The probability that the last ``offer`` would select its sample, given the past.

        Counterfactual for a sample the wrapper took: what the selector would have done
        had it been offered it untaken. None when the selector cannot tell (the accuracy
        estimate weighted by it is then undefined).
        """
        return None

    def random_pick_probability(self) -> float:
        """The probability that the last ``offer`` would pick its sample by a draw of its
        own that ignores the model (a pick with reason ``"exploration"``), given the past.

        Counterfactual for a taken sample, as :meth:`selection_probability`. Such picks
        are random labels: the accuracy estimate weighs them by it. A model-free selector's
        every pick is one; the others make none unless they say so (``split``).
        """
        if not self.model_free:
            return 0.0
        probability = self.selection_probability()
        return 0.0 if probability is None else probability

    def observe(self, features: Mapping[str, FeatureValue]) -> None:  # noqa: B027 (optional)
        """See the features of the sample about to be offered (only selectors that use them).

        Called just before :meth:`offer`, and only when the caller has the features.
        """

    def answered(self, key: str) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """The label of query ``key`` came back (selectors that track queries in flight)."""

    def model_changed(self, replaced: bool) -> None:  # noqa: B027 (optional hook)
        """The model learned a label (any label, asked for or not), or was ``replaced``.

        Called by the learner between offers; selectors that compare uncertainties
        across samples (``adaptive``) use it to know which model scored which.
        """

    def observe_model(self, model: ScoringModel, proba: Proba) -> None:  # noqa: B027
        """See the model and its probabilities for the sample about to be offered.

        Optional: only selectors that score with the model (expected error reduction) use
        it. Called by the learner just before :meth:`offer`.
        """

    def judged(self, key: str, correct: bool) -> None:  # noqa: B027 (optional hook)
        """Query ``key``'s label came back: was the prediction made when it was asked right?

        Called after :meth:`answered`; selectors that learn from outcomes (ALBL) use it.
        """

    def restart(self) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """Forget the statistics of the past stream (after a detected drift)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot of the selector's own statistics."""


def uncertain(key: str, threshold: float | None) -> Selection:
    """A selection made by a selector."""
    return Selection(key, Decision(True, "uncertain", threshold))


def derive_rng(seed: int, purpose: str) -> random.Random:
    """An independent generator for one purpose, reproducible from one seed.

    String seeds are hashed with SHA-512 by ``random.Random``, so the streams do not
    depend on ``PYTHONHASHSEED``. Separate streams keep, say, the exploration draws
    identical when only the selector changes, which makes comparisons fairer.
    """
    return random.Random(f"stream_al:{purpose}:{seed}")


def check_uncertainty(uncertainty: float) -> float:
    """Reject values outside [0, 1] (and NaN) loudly: a wrong measure should not pass."""
    if not 0.0 <= uncertainty <= 1.0:
        raise ValueError(f"uncertainty must be in [0, 1], got {uncertainty!r}")
    return float(uncertainty)
