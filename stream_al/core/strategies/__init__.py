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
``density``                          :class:`InformationDensity`
``error-reduction``                  :class:`ErrorReduction`
``albl``                             :class:`LearnedAlternation`
``pal``                              :class:`ProbabilisticActiveLearning`
==================================== ==========================================
"""

from __future__ import annotations

import math

from stream_al.core.config import StrategyConfig
from stream_al.core.drift import DriftWatch
from stream_al.core.strategies.adaptive import AdaptiveQuantile
from stream_al.core.strategies.base import Decision, QueryPolicy, Selection
from stream_al.core.strategies.budgeted import BudgetedPolicy
from stream_al.core.strategies.cold_start import ClusterColdStart
from stream_al.core.strategies.density import InformationDensity, ReservoirDensity
from stream_al.core.strategies.error_reduction import ErrorReduction
from stream_al.core.strategies.fixed import FixedThreshold
from stream_al.core.strategies.in_flight import InFlightAware
from stream_al.core.strategies.learned_alternation import LearnedAlternation
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.pal import ProbabilisticActiveLearning
from stream_al.core.strategies.pool import PoolSelector
from stream_al.core.strategies.quantile import BalancedIncrementalQuantileFilter
from stream_al.core.strategies.random_sampling import RandomSampling
from stream_al.core.strategies.selector import Selector
from stream_al.core.strategies.split import Split
from stream_al.core.strategies.stopping import PlateauStopping, StoppingRules, TargetStopping
from stream_al.core.strategies.variable_uncertainty import (
    RandomizedVariableUncertainty,
    VariableUncertainty,
)

__all__ = [
    "AdaptiveQuantile",
    "BalancedIncrementalQuantileFilter",
    "BudgetedPolicy",
    "ClusterColdStart",
    "Decision",
    "ErrorReduction",
    "FixedThreshold",
    "InFlightAware",
    "InformationDensity",
    "LearnedAlternation",
    "Ledger",
    "PoolSelector",
    "ProbabilisticActiveLearning",
    "QueryPolicy",
    "RandomSampling",
    "RandomizedVariableUncertainty",
    "ReservoirDensity",
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
            return AdaptiveQuantile(
                c.window, c.head_start, c.pacing_labels, c.seed, model_horizon=c.model_horizon
            )
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
        case "density":
            density = ReservoirDensity(c.density_reservoir, power=c.density_power)
            return InformationDensity(c.window, c.head_start, c.pacing_labels, c.seed, density)
        case "error-reduction":
            return ErrorReduction(
                c.window, c.head_start, c.pacing_labels, c.seed, c.eer_reservoir, c.eer_prefilter
            )
        case "albl":
            arms = [build_selector(c.model_copy(update={"name": arm})) for arm in c.albl_arms]
            return LearnedAlternation(arms, c.albl_gamma, c.albl_eta, c.seed)
        case "pal":
            return ProbabilisticActiveLearning(
                c.window,
                c.head_start,
                c.pacing_labels,
                c.seed,
                reservoir=c.pal_reservoir,
                horizon=c.pal_horizon,
                prior=c.pal_prior,
                m_max=c.pal_m_max,
                bandwidth=c.pal_bandwidth,
            )
    raise ValueError(f"unknown strategy name {c.name!r}")  # pragma: no cover (Literal)


def build_policy(config: StrategyConfig) -> BudgetedPolicy:
    """The query policy ``config`` describes: its selector inside a :class:`BudgetedPolicy`."""
    c = config
    rules: list[TargetStopping | PlateauStopping] = []
    if c.target_accuracy is not None:
        rules.append(TargetStopping(c.target_accuracy))
    if c.plateau_window is not None:
        rules.append(PlateauStopping(c.plateau_window, c.plateau_tolerance))
    stopping = StoppingRules(rules) if rules else None
    drift = None
    if c.drift_detection != "off":
        drift = DriftWatch(
            errors=c.drift_detection in ("errors", "both"),
            uncertainty=c.drift_detection in ("uncertainty", "both"),
            delta=c.drift_delta,
            detector=c.drift_detector,
            labels=c.drift_labels,
        )
    selector = build_selector(c)
    if c.in_flight:
        selector = InFlightAware(selector)
    warmup = c.warmup
    if c.cold_start == "clusters":
        horizon = max(1, math.ceil(c.warmup / c.budget))
        selector = ClusterColdStart(selector, c.warmup, horizon, c.seed)
        warmup = 0  # the cold start spends the warm-up labels itself
    return BudgetedPolicy(
        selector,
        c.budget,
        exploration=c.exploration,
        warmup=warmup,
        max_labels=c.max_labels,
        seed=c.seed,
        estimate_window=c.estimate_window,
        estimate_confidence=c.estimate_confidence,
        estimate=c.estimate,
        stopping=stopping,
        monitoring_rate=c.monitoring_rate,
        drift=drift,
        drift_exploration=c.drift_exploration,
        drift_duration=c.drift_duration,
        drift_restart=c.drift_restart,
        drift_reset_model=c.drift_reset_model,
    )
