"""Query strategies: which samples are worth a label, within a budget.

:func:`build_policy` turns a :class:`~stream_al.core.config.StrategyConfig` into a
:class:`~stream_al.core.strategies.base.QueryPolicy`. Every policy is a
:class:`BudgetedPolicy` (warm-up, exploration, hard cap, one label ledger) around a
:class:`Selector` that picks the uncertain samples:

==================================== ==========================================
``adaptive`` (default)               :class:`AdaptiveQuantile`
``random``                           :class:`RandomSampling`
``fixed``                            :class:`FixedThreshold`
``variable-uncertainty``             :class:`VariableUncertainty`
``randomized-variable-uncertainty``  :class:`RandomizedVariableUncertainty`
``split``                            :class:`Split`
``quantile``                         :class:`BalancedIncrementalQuantileFilter`
``pool``                             :class:`PoolSelector`
==================================== ==========================================
"""

from __future__ import annotations

from stream_al.core.config import StrategyConfig
from stream_al.core.strategies.adaptive import AdaptiveQuantile
from stream_al.core.strategies.base import Decision, QueryPolicy, Selection
from stream_al.core.strategies.budgeted import BudgetedPolicy
from stream_al.core.strategies.fixed import FixedThreshold
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.pool import PoolSelector
from stream_al.core.strategies.quantile import BalancedIncrementalQuantileFilter
from stream_al.core.strategies.random_sampling import RandomSampling
from stream_al.core.strategies.selector import Selector
from stream_al.core.strategies.split import Split
from stream_al.core.strategies.variable_uncertainty import (
    RandomizedVariableUncertainty,
    VariableUncertainty,
)

__all__ = [
    "AdaptiveQuantile",
    "BalancedIncrementalQuantileFilter",
    "BudgetedPolicy",
    "Decision",
    "FixedThreshold",
    "Ledger",
    "PoolSelector",
    "QueryPolicy",
    "RandomSampling",
    "RandomizedVariableUncertainty",
    "Selection",
    "Selector",
    "Split",
    "VariableUncertainty",
    "build_policy",
    "build_selector",
]


def build_selector(config: StrategyConfig) -> Selector:
    """The selector named by ``config.name``, with its settings from ``config``."""
    c = config
    match c.name:
        case "adaptive":
            return AdaptiveQuantile(c.window, c.head_start, c.pacing_labels, c.seed)
        case "random":
            return RandomSampling(c.pacing_labels, c.seed)
        case "fixed":
            return FixedThreshold(c.threshold, c.window)
        case "variable-uncertainty":
            return VariableUncertainty(c.threshold, c.step, c.window)
        case "randomized-variable-uncertainty":
            return RandomizedVariableUncertainty(c.threshold, c.step, c.window, c.delta, c.seed)
        case "split":
            return Split(c.threshold, c.step, c.window, c.random_share, c.seed)
        case "quantile":
            return BalancedIncrementalQuantileFilter(c.window, c.label_tolerance)
        case "pool":
            return PoolSelector(c.pool_size, c.sub_pool_size, c.seed)
    raise ValueError(f"unknown strategy name {c.name!r}")  # pragma: no cover (Literal)


def build_policy(config: StrategyConfig) -> QueryPolicy:
    """The query policy ``config`` describes: its selector inside a :class:`BudgetedPolicy`."""
    return BudgetedPolicy(
        build_selector(config),
        config.budget,
        exploration=config.exploration,
        warmup=config.warmup,
        max_labels=config.max_labels,
        seed=config.seed,
    )
