"""Seeded random valid configurations through the simulator: none may raise.

Each combination below is tested somewhere on its own; this sweep crosses them (strategy,
model, measure, warm-up, exploration, cold start, labels in flight, drift reactions,
stopping, caps, late, noisy and several annotators' labels), the way a user's configuration
file does. A run of 1,100 such configurations found three crashes that no single-feature
test had: ALBL arms all sure to pick (a probability of 1 + 2e-16), a selector's random pick
without exploration (a probability of 0), and kl-divergence on a subnormal probability (a
division by zero); each has its own test now (``test_albl``, ``test_estimate``,
``test_uncertainty``). These 60 keep the crossings covered at a few seconds' cost; the
second of those crashes fails seed 37 here.
"""

from __future__ import annotations

import random
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from stream_al.core.config import (
    AlblArm,
    LearnerConfig,
    MeasureName,
    ModelConfig,
    StrategyConfig,
    StrategyName,
)
from stream_al.sim.datasets import stream
from stream_al.sim.simulate import simulate

STRATEGIES = list(get_args(StrategyName))
COMMITTEES = ["bagging-logreg", "adaptive-random-forest", "bagging-hoeffding-tree"]
SINGLE_MODELS = ["logreg", "hoeffding-tree", "naive-bayes"]
DATASETS = ["sea-flip", "image-segments", "agrawal-switch", "led-drift", "phishing", "bananas"]
ARMS = list(get_args(AlblArm))
MEASURES = list(get_args(MeasureName))
SWEEP = 60


def draw(seed: int) -> tuple[dict[str, Any], str, str, dict[str, Any]]:
    """Strategy settings, model, measure and simulator options, all from ``seed``."""
    r = random.Random(seed)
    strategy: dict[str, Any] = {
        "name": r.choice(STRATEGIES),
        "budget": r.choice([0.01, 0.05, 0.1, 0.3, 1.0]),
        "seed": seed,
        "warmup": r.choice([0, 1, 5, 20]),
        "exploration": r.choice([0.0, 0.1, 0.5, 1.0]),
        "head_start": r.choice([0, 500]),
        "model_horizon": r.choice([0, 1, 10]),
        "cold_start": r.choice(["first", "clusters"]),
        "in_flight": r.random() < 0.3,
        "drift_detection": r.choice(["off", "errors", "uncertainty", "both"]),
        "drift_reset_model": r.random() < 0.5,
        "drift_challenger_labels": r.choice([0, 10]),
    }
    if r.random() < 0.3:
        strategy["max_labels"] = r.choice([0, 5, 50])
    if r.random() < 0.3:
        strategy["target_accuracy"] = r.choice([0.5, 0.8, 0.95])
    if r.random() < 0.2:
        strategy["plateau_window"] = 200
    if r.random() < 0.2:
        strategy["estimate"] = "weighted"
    if strategy["name"] == "albl":
        strategy["albl_arms"] = tuple(r.sample(ARMS, r.choice([2, 3, 4])))
    if strategy["name"] == "pool" and r.random() < 0.5:
        strategy["sub_pool_size"] = 10
    measure = r.choice(MEASURES)
    if measure in ("vote-entropy", "kl-divergence"):
        model = r.choice(COMMITTEES)
    elif measure == "expected-gradient-length":
        model = "logreg"
    else:
        model = r.choice(SINGLE_MODELS + COMMITTEES)
    options = {
        "dataset": r.choice(DATASETS),
        "label_delay": r.choice([0, 0, 50, 500]),
        "label_noise": r.choice([0.0, 0.0, 0.2]),
        "annotators": r.choice([(), (), (0.1, 0.3, 0.3)]),
    }
    return strategy, model, measure, options


@pytest.mark.parametrize("seed", range(SWEEP))
def test_a_valid_configuration_runs_to_the_end(seed: int) -> None:
    strategy, model, measure, options = draw(seed)
    try:
        config = LearnerConfig(
            model=ModelConfig(name=model, n_models=3),  # type: ignore[arg-type]
            measure=measure,  # type: ignore[arg-type]
            strategy=StrategyConfig(**strategy),
        )
    except ValidationError:
        pytest.skip("an invalid combination, refused at start as it should be")
    dataset = options.pop("dataset")
    examples = list(stream(dataset, seed=seed, limit=800))
    result = simulate(examples, config, dataset=dataset, seed=seed, **options)
    assert result.samples == len(examples)
    assert result.labels_learned <= result.labels
    if strategy.get("max_labels") is not None:
        assert result.labels <= strategy["max_labels"]
    if not options["label_delay"] and not options["annotators"]:
        assert result.labels_learned == result.labels  # every answer, on time, learned


def test_the_sweep_covers_every_strategy_and_most_are_valid() -> None:
    drawn = [draw(seed) for seed in range(SWEEP)]
    assert {strategy["name"] for strategy, *_ in drawn} == set(STRATEGIES)
    valid = 0
    for strategy, *_ in drawn:
        try:
            StrategyConfig(**strategy)
            valid += 1
        except ValidationError:
            pass
    assert valid >= 0.8 * SWEEP
