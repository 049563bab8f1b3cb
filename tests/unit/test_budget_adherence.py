"""Budget adherence end to end: the real learner, model and simulator on real streams.

``test_strategies.py`` checks each strategy on synthetic uncertainty streams. Here the
uncertainties come from a logistic regression that learns only the labels its strategy
asked for, so the feedback loop is in play: a model that grows sure offers lower
uncertainties, a drift raises them, and a one-class model is sure of everything.

Streams: ``sea`` (stationary), ``sea-drift`` (abrupt concept change at sample 10 000, so
its limit goes well past it) and ``hyperplane`` (gradual drift). Over 12k-20k samples the
realised query rate must be within 10 % of the budget B.

Which strategies claim to meet the budget, and how:

* ``adaptive``, ``random``, ``quantile`` and ``pool`` are paced by the label ledger, so
  warm-up and exploration labels are repaid: they must hold B with default settings.
* ``fixed``, ``variable-uncertainty``, ``randomized-variable-uncertainty`` and ``split``
  sit behind the windowed spending gate of Zliobaite et al., which forgets what it
  overspent: with the default 20 warm-up labels they end 10-15 % over B at B = 0.01 on
  these streams (about 10 labels too many out of 100-200). They are held to B without
  warm-up, which is the claim their gate makes.
"""

from __future__ import annotations

import functools

import pytest

from stream_al.core.config import LearnerConfig, StrategyConfig, StrategyName
from stream_al.core.learner import ActiveLearner
from stream_al.schemas import LabelMessage, Sample
from stream_al.sim.datasets import Example, stream
from stream_al.sim.simulate import simulate

BUDGETS = (0.01, 0.05, 0.1)
#: Samples replayed per stream.
STREAM_LIMITS = {"sea": 12_000, "sea-drift": 20_000, "hyperplane": 20_000}
LEDGER_PACED: tuple[StrategyName, ...] = ("adaptive", "random", "quantile", "pool")
GATED: tuple[StrategyName, ...] = (
    "fixed",
    "variable-uncertainty",
    "randomized-variable-uncertainty",
    "split",
)
ALL_NAMES: tuple[StrategyName, ...] = LEDGER_PACED + GATED


@functools.cache
def examples(name: str, limit: int | None = None) -> tuple[Example, ...]:
    return tuple(stream(name, seed=42, limit=STREAM_LIMITS[name] if limit is None else limit))


def config(name: StrategyName, budget: float, **strategy: object) -> LearnerConfig:
    """The cheap default model (logreg, margin) with strategy ``name`` at ``budget``."""
    settings = StrategyConfig.model_validate({"name": name, "budget": budget, **strategy})
    return LearnerConfig(strategy=settings)


def test_sea_drift_changes_concept_within_the_replayed_samples() -> None:
    # Guards the stream limit: sea-drift's first half is plain sea, so a limit at or
    # under 10 000 samples would test no drift at all.
    drift, sea = examples("sea-drift"), examples("sea")
    assert [e.features for e in drift[:1000]] == [e.features for e in sea[:1000]]
    assert [e.features for e in drift[10_000:10_100]] != [e.features for e in sea[10_000:10_100]]


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("dataset", sorted(STREAM_LIMITS))
@pytest.mark.parametrize("name", LEDGER_PACED)
def test_ledger_paced_strategies_spend_the_budget_with_default_settings(
    name: StrategyName, dataset: str, budget: float
) -> None:
    result = simulate(examples(dataset), config(name, budget), dataset=dataset)
    assert result.query_rate == pytest.approx(budget, rel=0.1)
    # Warm-up was spent, and repaid rather than merely diluted.
    assert result.queries_by_reason["warm-up"] == StrategyConfig().warmup
    assert result.labels_learned == result.labels


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("dataset", sorted(STREAM_LIMITS))
@pytest.mark.parametrize("name", GATED)
def test_gated_strategies_hold_the_budget_without_warmup(
    name: StrategyName, dataset: str, budget: float
) -> None:
    result = simulate(examples(dataset), config(name, budget, warmup=0), dataset=dataset)
    assert result.query_rate == pytest.approx(budget, rel=0.1)


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("name", LEDGER_PACED)
def test_late_labels_do_not_unsettle_the_budget(name: StrategyName, budget: float) -> None:
    # Labels come back 500 samples late: the model lags, its uncertainties stay high for
    # longer after the drift, and the ledger alone must keep the spending on B.
    result = simulate(
        examples("sea-drift"), config(name, budget), dataset="sea-drift", label_delay=500
    )
    assert result.query_rate == pytest.approx(budget, rel=0.1)
    assert result.labels_learned == result.labels


def test_adaptive_spends_the_budget_of_a_short_stream_whose_model_grows_sure() -> None:
    # Agrawal, 3,000 samples, a function switch half way: the logistic model gets surer
    # of every sample with each label, so ranked against a window that older models
    # scored the policy spent 0.042 at B = 0.05 (mean of 10 seeds; 0.033 at worst).
    budget = 0.05
    data = tuple(stream("agrawal-switch", seed=42, limit=3000))
    rates = [
        simulate(data, config("adaptive", budget, seed=seed), seed=seed).query_rate
        for seed in range(42, 52)
    ]
    assert sum(rates) / len(rates) == pytest.approx(budget, rel=0.1)


def replay(learner: ActiveLearner, data: tuple[Example, ...], cap: int) -> list[int]:
    """Score every sample, answer queries at once, check the cap after every step.

    Returns the running number of queries after each sample.
    """
    truth = {e.id: e.label for e in data}
    asked = 0
    running = []
    for step, example in enumerate(data):
        scored = learner.score(Sample(id=example.id, features=example.features), now=step)
        asked += len(scored.queries)
        assert asked <= cap, f"cap {cap} exceeded at sample {step}"
        assert learner.policy.labels_remaining == cap - asked
        for query in scored.queries:
            learner.learn(LabelMessage(id=query.id, label=truth[query.id]), now=step)
        running.append(asked)
    return running


@pytest.mark.parametrize("name", ALL_NAMES)
def test_the_hard_label_cap_is_never_exceeded(name: StrategyName) -> None:
    # B = 0.1 of 3000 samples would be 300 labels; the cap stops it at 37, whatever the
    # strategy and however many samples a pool picks at once.
    cap = 37
    data = examples("sea-drift", limit=3000)
    learner = ActiveLearner(config(name, 0.1, max_labels=cap))
    running = replay(learner, data, cap)
    assert running[-1] == cap
    assert learner.labels_learned == cap
    # Once reached, nothing more is asked for (the remaining samples are most of them).
    assert running.index(cap) < len(data) // 2


@pytest.mark.parametrize("name", ALL_NAMES)
def test_a_cap_below_the_warmup_cuts_the_warmup_short(name: StrategyName) -> None:
    learner = ActiveLearner(config(name, 0.1, max_labels=5, warmup=20))
    running = replay(learner, examples("sea", limit=500), cap=5)
    assert running[:6] == [1, 2, 3, 4, 5, 5]
    assert running[-1] == 5
    assert learner.queries_by_reason == {"warm-up": 5}


@pytest.mark.parametrize("name", ALL_NAMES)
def test_a_cold_model_asks_about_the_first_samples_as_warm_up(name: StrategyName) -> None:
    # Seven classes arriving in stream order: the first labels teach the model one or two
    # classes only, so its uncertainties say little; the warm-up must not depend on them.
    data = tuple(stream("image-segments", limit=60))
    warmup = StrategyConfig().warmup
    learner = ActiveLearner(config(name, 0.01))
    truth = {e.id: e.label for e in data}
    for step, example in enumerate(data):
        scored = learner.score(Sample(id=example.id, features=example.features), now=step)
        if step == 0:
            assert (scored.label, scored.uncertainty) == (None, 1.0)
        if step < warmup:
            assert [(q.id, q.reason) for q in scored.queries] == [(example.id, "warm-up")]
        else:
            assert all(q.reason != "warm-up" for q in scored.queries)
        for query in scored.queries:
            learner.learn(LabelMessage(id=query.id, label=truth[query.id]), now=step)
    assert learner.queries_by_reason["warm-up"] == warmup
    assert learner.labels_learned >= warmup


def test_adaptive_asks_a_cold_model_at_once_even_without_warmup() -> None:
    # The head start lends the budget of the first samples: the first sample is asked
    # about by the selector itself.
    learner = ActiveLearner(config("adaptive", 0.05, warmup=0))
    first = examples("sea", limit=1)[0]
    scored = learner.score(Sample(id=first.id, features=first.features), now=0.0)
    assert [(q.id, q.reason) for q in scored.queries] == [(first.id, "uncertain")]
