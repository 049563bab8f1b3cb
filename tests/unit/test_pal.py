"""Probabilistic active learning: the gain formula, the frequency estimate, budget, seeds."""

from __future__ import annotations

import pytest

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.core.strategies import ProbabilisticActiveLearning, build_policy, build_selector
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.pal import probabilistic_gain
from stream_al.schemas import LabelMessage, Sample
from stream_al.sim.datasets import stream
from stream_al.sim.simulate import simulate

# ------------------------------------------------------------------------- the gain


def test_gain_with_no_labels_and_a_flat_prior_by_hand() -> None:
    # alpha = (1, 1): error now 1/2. One label: either class with chance 1/2, then the
    # decision is that class with posterior mean 2/3: error 1/3, gain 1/6. Two labels:
    # (2, 0) and (0, 2) with chance 1/3 each (error 1/4), (1, 1) with chance 1/3 (error
    # 1/2): expected 1/3, gain (1/2 - 1/3) / 2 = 1/12. The best m is 1.
    assert probabilistic_gain([0.0, 0.0], prior=1.0, m_max=1) == pytest.approx(1 / 6)
    assert probabilistic_gain([0.0, 0.0], prior=1.0, m_max=2) == pytest.approx(1 / 6)


def test_gain_of_skewed_counts_by_hand() -> None:
    # counts (2, 0), prior 1: alpha = (3, 1), A = 4, error now 1 - 3/4 = 1/4.
    # m = 1: class 0 with chance 3/4 -> decision 0, error 1 - 4/5 = 1/5;
    #        class 1 with chance 1/4 -> counts (2, 1), decision 0, error 1 - 3/5 = 2/5.
    #        E_1 = 3/4 * 1/5 + 1/4 * 2/5 = 1/4: no gain from one label.
    assert probabilistic_gain([2.0, 0.0], prior=1.0, m_max=1) == 0.0
    # m = 2: (2, 0) chance 3*4 / (4*5) = 3/5, error 1 - 5/6 = 1/6;
    #        (1, 1) chance 2 * 3 * 1 / 20 = 3/10, counts (3, 1): error 1 - 4/6 = 1/3;
    #        (0, 2) chance 1 * 2 / 20 = 1/10, counts (2, 2): decision 0 (first on ties),
    #        error 1 - 3/6 = 1/2. E_2 = 1/10 + 1/10 + 1/20 = 1/4: no gain either.
    assert probabilistic_gain([2.0, 0.0], prior=1.0, m_max=2) == 0.0
    # counts (1, 0), prior 1: alpha = (2, 1), A = 3, error now 1/3. m = 1: class 0 (2/3)
    # -> error 1 - 3/4 = 1/4; class 1 (1/3) -> counts (1, 1), decision 0, error 1 - 2/4.
    # E_1 = 1/6 + 1/6 = 1/3: nothing. m = 2: (2,0) 2*3/12 = 1/2 -> 1 - 4/5 = 1/5;
    # (1,1) 2*2*1/12 = 1/3 -> counts (2,1) -> 1 - 3/5 = 2/5; (0,2) 1*2/12 = 1/6 ->
    # counts (1,2), decision 1, error 1 - 3/5 = 2/5. E_2 = 1/10 + 2/15 + 1/15 = 3/10,
    # gain (1/3 - 3/10) / 2 = 1/60.
    assert probabilistic_gain([1.0, 0.0], prior=1.0, m_max=2) == pytest.approx(1 / 60)


def test_three_classes_by_hand() -> None:
    # counts 0, prior 1, three classes: alpha = (1, 1, 1), error now 2/3; one label of any
    # class (chance 1/3 each) makes it the decision with posterior mean 2/4: gain 1/6.
    assert probabilistic_gain([0.0, 0.0, 0.0], prior=1.0, m_max=1) == pytest.approx(1 / 6)


def test_gain_falls_with_labels_near_and_with_the_models_certainty() -> None:
    def gain(n: float, p: float) -> float:
        return probabilistic_gain([n * p, n * (1.0 - p)])

    # Few labels near: even a sure posterior is worth asking about ...
    assert gain(0.01, 0.99) > gain(1.0, 0.5) * 0.3
    # ... and the gain falls as labels accumulate, and as the posterior grows sure.
    assert gain(0.1, 0.9) > gain(1.0, 0.9) > gain(10.0, 0.9)
    assert gain(1.0, 0.5) > gain(1.0, 0.7) > gain(1.0, 0.9)
    assert gain(1.0, 0.3) == pytest.approx(gain(1.0, 0.7))


def test_gain_matches_scikit_activeml_cost_reduction() -> None:
    np = pytest.importorskip("numpy")
    pool = pytest.importorskip("skactiveml.pool")
    import random

    rng = random.Random(3)
    for classes in (2, 3, 5):
        for _ in range(20):
            counts = [rng.random() * rng.choice([0.01, 1.0, 10.0]) for _ in range(classes)]
            counts[rng.randrange(classes)] = counts[0]  # ties too
            for m_max in (1, 2, 3):
                expected = pool.cost_reduction(np.array([counts]), m_max=m_max, prior=1e-3)[0]
                assert probabilistic_gain(counts, 1e-3, m_max) == pytest.approx(expected, abs=1e-9)


def test_one_class_has_no_gain() -> None:
    assert probabilistic_gain([3.0]) == 0.0


def _offer(selector: ProbabilisticActiveLearning, ledger: Ledger, x: float, taken: bool) -> None:
    selector.observe({"x": x})
    selector.observe_model(None, {"a": 0.5, "b": 0.5})  # type: ignore[arg-type]
    ledger.seen += 1
    selector.offer(str(ledger.seen), 0.5, taken, ledger)


def test_queries_are_counted_near_them_and_forgotten_after_the_horizon() -> None:
    selector = ProbabilisticActiveLearning(reservoir=3, horizon=10, bandwidth=1.0)
    ledger = Ledger(budget=0.1, max_labels=0)  # the selector picks nothing itself
    for i in range(5):
        _offer(selector, ledger, float(i), taken=i < 4)
    # The reservoir holds the last 3 queries (samples 2, 3, 4 of the stream: x = 1, 2, 3).
    assert [position for position, _ in selector.labels] == [2, 3, 4]
    near = selector.frequency(selector.labels[-1][1])
    assert near > 1.0  # the query itself counts 1, its neighbours a little more
    far = selector.frequency(tuple(10.0 for _ in selector.labels[-1][1]))
    assert far < 1e-6
    for _ in range(8):
        _offer(selector, ledger, 0.0, taken=False)
    # Sample 13: the queries of samples 2 and 3 are 10 or more samples old.
    assert [position for position, _ in selector.labels] == [4]
    selector.restart()
    assert not selector.labels


def test_a_sample_without_features_is_ranked_by_its_uncertainty() -> None:
    selector = ProbabilisticActiveLearning()
    ledger = Ledger(budget=0.1)
    ledger.seen += 1
    selector.offer("k", 0.7, False, ledger)
    assert selector.last_gain is None
    assert selector.window.values() == [0.7]


# ------------------------------------------------------------ budget and determinism


@pytest.mark.parametrize("budget", [0.01, 0.05])
@pytest.mark.parametrize("dataset", ["sea", "hyperplane"])
def test_pal_spends_the_budget_with_default_settings(dataset: str, budget: float) -> None:
    examples = tuple(stream(dataset, seed=42, limit=12_000))
    config = LearnerConfig(strategy=StrategyConfig(name="pal", budget=budget))
    result = simulate(examples, config, dataset=dataset)
    assert result.query_rate == pytest.approx(budget, rel=0.1)
    assert result.queries_by_reason["warm-up"] == StrategyConfig().warmup
    assert result.queries_by_reason["uncertain"] > 0


def _queries(seed: int, limit: int = 1500) -> list[str]:
    learner = ActiveLearner(
        LearnerConfig(strategy=StrategyConfig(name="pal", budget=0.05, seed=seed))
    )
    asked = []
    for step, example in enumerate(stream("sea-flip", seed=42, limit=limit)):
        scored = learner.score(Sample(id=example.id, features=example.features), now=step)
        for query in scored.queries:
            asked.append(query.id)
            learner.learn(LabelMessage(id=query.id, label=example.label), now=step)
    return asked


def test_same_seed_same_queries_and_seeds_differ() -> None:
    first = _queries(7)
    assert first and first == _queries(7)
    assert first != _queries(8)


def test_settings_reach_the_selector_and_are_validated() -> None:
    strategy = StrategyConfig(
        name="pal", pal_reservoir=7, pal_horizon=300, pal_prior=0.5, pal_m_max=3, pal_bandwidth=2.0
    )
    selector = build_selector(strategy)
    assert isinstance(selector, ProbabilisticActiveLearning)
    assert (selector.reservoir_size, selector.horizon, selector.prior) == (7, 300, 0.5)
    assert (selector.m_max, selector.bandwidth) == (3, 2.0)
    assert build_policy(strategy).state()["selector"]["name"] == "pal"
    for bad in (
        {"pal_reservoir": 0},
        {"pal_horizon": 0},
        {"pal_prior": 0.0},
        {"pal_m_max": 0},
        {"pal_m_max": 6},
        {"pal_bandwidth": 0.0},
    ):
        with pytest.raises(ValueError):
            StrategyConfig.model_validate({"name": "pal", **bad})
