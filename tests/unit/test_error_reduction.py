"""Expected error reduction: the closed form is one SGD step, the pre-filter bounds the cost."""

from __future__ import annotations

import copy
import math
import random

import pytest

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.core.models import ScaledLogisticRegression
from stream_al.core.strategies.error_reduction import LogisticOneStep
from stream_al.schemas import LabelMessage, Sample
from stream_al.sim.datasets import stream


def _entropy(proba: dict[str, float]) -> float:
    return -sum(p * math.log(p) for p in proba.values() if p > 0.0)


def _trained(classes: int, n: int = 2000, seed: int = 3) -> ScaledLogisticRegression:
    rng = random.Random(seed)
    model = ScaledLogisticRegression()
    for _ in range(n):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "c": rng.gauss(0, 1)}
        label = min(classes - 1, int((x["a"] + 1.5) * classes / 3.0) if x["a"] > -1.5 else 0)
        model.learn_one(x, f"k{label}")
    return model


@pytest.mark.parametrize("classes", [2, 4])
def test_closed_form_matches_learning_one_step_on_a_copy(classes: int) -> None:
    """Against the brute force: copy the model, learn (x, y) on it, sum the entropies."""
    model = _trained(classes)
    rng = random.Random(7)
    reservoir = [{"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "c": 0.5} for _ in range(25)]
    for x in ({"a": 0.1, "b": -0.3, "c": 0.2}, {"a": 2.5, "b": 1.0, "c": -1.0}):
        proba = model.predict_proba_one(x)
        before = sum(_entropy(model.predict_proba_one(r)) for r in reservoir)
        expected_after = 0.0
        for y, p in proba.items():
            moved = copy.deepcopy(model)
            # One SGD step of the weights, the scaler held (the closed form's definition:
            # the scaler's own shift is the same whatever the label).
            moved._learn_scaler = lambda _: None  # type: ignore[method-assign]
            moved.learn_one(x, y)
            expected_after += p * sum(_entropy(moved.predict_proba_one(r)) for r in reservoir)
        brute = before - expected_after
        closed = LogisticOneStep().reduction(model, x, proba, reservoir)
        assert closed is not None
        assert closed == pytest.approx(brute, rel=1e-6, abs=1e-9)


def test_a_model_of_one_class_has_no_closed_form() -> None:
    model = ScaledLogisticRegression()
    model.learn_one({"a": 1.0}, "only")
    assert LogisticOneStep().reduction(model, {"a": 0.0}, {"only": 1.0}, [{"a": 1.0}]) is None


def _replay(strategy: StrategyConfig, name: str, limit: int) -> ActiveLearner:
    """The learner on ``name``'s first ``limit`` samples, every label answered at once."""
    learner = ActiveLearner(LearnerConfig(strategy=strategy))
    for step, example in enumerate(stream(name, seed=42, limit=limit)):
        scored = learner.score(Sample(id=example.id, features=example.features), now=step)
        for query in scored.queries:
            learner.learn(LabelMessage(id=query.id, label=example.label), now=step)
    return learner


def test_only_the_prefiltered_share_is_scored_and_the_budget_holds() -> None:
    strategy = StrategyConfig(name="error-reduction", budget=0.05, eer_prefilter=0.2)
    learner = _replay(strategy, "sea", 4000)
    state = learner.policy.selector.state()
    # The pre-filter's share is scored (the head start's higher query rate lets a few
    # more through while it lasts): the cost per sample is bounded by it.
    assert 0.15 < state["scored_share"] < 0.25
    assert state["reservoir"] == strategy.eer_reservoir
    assert learner.policy.queries / learner.samples_seen == pytest.approx(0.05, rel=0.1)


def test_with_another_model_it_ranks_by_margin() -> None:
    """No closed form for naive Bayes: nothing is scored, the rule still spends B."""
    strategy = StrategyConfig(name="error-reduction", budget=0.05)
    learner = ActiveLearner(LearnerConfig(model=ModelConfig(name="naive-bayes"), strategy=strategy))
    for step, example in enumerate(stream("sea", seed=42, limit=2000)):
        scored = learner.score(Sample(id=example.id, features=example.features), now=step)
        for query in scored.queries:
            learner.learn(LabelMessage(id=query.id, label=example.label), now=step)
    assert learner.policy.selector.state()["scored_share"] == 0.0
    assert learner.policy.queries / learner.samples_seen == pytest.approx(0.05, rel=0.15)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        StrategyConfig(name="error-reduction", eer_reservoir=1)
    with pytest.raises(ValueError):
        StrategyConfig(name="error-reduction", eer_prefilter=0.0)
    with pytest.raises(ValueError):
        StrategyConfig(name="albl", albl_arms=("adaptive", "adaptive"))
    with pytest.raises(ValueError):
        StrategyConfig(name="albl", albl_arms=("adaptive",))
