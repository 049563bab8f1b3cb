"""Information density: lone samples lose weight, so uncertain outliers stop winning."""

from __future__ import annotations

import pickle
import random

import pytest

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.core.strategies import BudgetedPolicy, ReservoirDensity, build_policy
from stream_al.schemas import Sample


def inlier(rng: random.Random) -> dict[str, float]:
    return {"a": rng.gauss(0.0, 1.0), "b": rng.gauss(5.0, 2.0), "c": rng.gauss(-3.0, 0.5)}


def outlier(rng: random.Random) -> dict[str, float]:
    """About 10 standard deviations out, in a random direction: each one alone."""
    a, b, c = (rng.gauss(0.0, 1.0) for _ in range(3))
    scale = 10.0 / (a * a + b * b + c * c) ** 0.5
    return {"a": a * scale * 1.0, "b": 5.0 + b * scale * 2.0, "c": -3.0 + c * scale * 0.5}


def test_inliers_keep_their_weight_and_outliers_lose_it() -> None:
    rng = random.Random(1)
    density = ReservoirDensity(size=100, neighbours=5)
    weights = [
        (i % 50 == 49, density.weight(outlier(rng) if i % 50 == 49 else inlier(rng)))
        for i in range(1000)
    ]
    inliers = [w for far, w in weights if not far]
    outliers = [w for far, w in weights[200:] if far]
    assert sorted(inliers[200:])[len(inliers[200:]) // 2] == 1.0  # the typical inlier: 1
    assert sum(w > 0.3 for w in inliers[200:]) / 800 > 0.95
    assert max(outliers) < 0.2


def test_density_ignores_strings_and_counts_missing_features_as_their_mean() -> None:
    rng = random.Random(2)
    density = ReservoirDensity(size=50, neighbours=3)
    for _ in range(300):
        density.weight({**inlier(rng), "colour": rng.choice(["red", "blue"])})
    assert density.weight({"a": 0.0, "b": 5.0, "c": -3.0, "colour": "green"}) == 1.0
    assert density.weight({"b": 5.0}) == 1.0  # a and c at their means: the centre


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"size": 1}, "size"), ({"neighbours": 0}, "neighbours"), ({"power": -1.0}, "power")],
)
def test_bad_density_settings_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReservoirDensity(**kwargs)  # type: ignore[arg-type]


def outlier_share(policy: BudgetedPolicy, seed: int = 3) -> tuple[float, int]:
    """Feed 2 % outliers that the model is sure to be unsure of (uncertainty 1.0)."""
    rng = random.Random(seed)
    asked = asked_outliers = 0
    for i in range(6000):
        far = rng.random() < 0.02
        features = outlier(rng) if far else inlier(rng)
        uncertainty = 1.0 if far else rng.random() ** 2
        for selection in policy.offer(str(i), uncertainty, features):
            asked += 1
            asked_outliers += far and selection.key == str(i)
    return asked_outliers / asked, asked


def test_density_stops_spending_on_uncertain_outliers_where_margin_does() -> None:
    plain, plain_asked = outlier_share(build_policy(StrategyConfig(name="adaptive", budget=0.05)))
    dense, dense_asked = outlier_share(build_policy(StrategyConfig(name="density", budget=0.05)))
    # Plain ranking gives every outlier (2 % of the stream, 40 % of a 5 % budget) a label.
    assert plain > 0.3
    # Weighted by density they only get their random (exploration and warm-up) share.
    assert dense < 0.05
    assert abs(dense_asked - plain_asked) <= 10  # the same budget, spent elsewhere


def test_density_power_zero_is_the_adaptive_strategy() -> None:
    config = StrategyConfig(name="density", budget=0.05, density_power=0.0)
    adaptive = outlier_share(build_policy(StrategyConfig(name="adaptive", budget=0.05)))
    assert outlier_share(build_policy(config)) == adaptive


def test_the_learner_hands_features_to_the_strategy_and_state_pickles() -> None:
    strategy = StrategyConfig(name="density", budget=0.1, estimate="weighted")
    learner = ActiveLearner(LearnerConfig(strategy=strategy))
    rng = random.Random(4)
    for i in range(300):
        learner.score(Sample(id=str(i), features=inlier(rng)), now=float(i))
    state = learner.summary()["strategy"]["selector"]
    assert state["name"] == "density" and state["density"]["reservoir"] == 100
    copy = pickle.loads(pickle.dumps(learner))
    for i in range(300, 400):
        sample = Sample(id=str(i), features=outlier(rng) if i % 7 == 0 else inlier(rng))
        assert copy.score(sample, now=float(i)) == learner.score(sample, now=float(i))
