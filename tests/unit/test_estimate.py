"""The unbiased accuracy estimates: intervals, windows, the probabilities behind the weights."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.estimate import AccuracyEstimate, AccuracyLog, wilson, z_value
from stream_al.core.learner import ActiveLearner
from stream_al.core.strategies import build_policy
from stream_al.schemas import LabelMessage, Sample
from stream_al.sim.datasets import stream


def test_wilson_matches_the_textbook_values() -> None:
    # Agresti & Coull (1998) / Newcombe (1998): 95 % score interval.
    low, high = wilson(0.5, 100, z_value(0.95))
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    low, high = wilson(0.0, 10, z_value(0.95))
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.2775, abs=1e-4)
    assert all(math.isnan(v) for v in wilson(0.5, 0, 1.96))


def test_equal_weights_give_the_plain_share_and_wilson() -> None:
    log = AccuracyLog(window=100)
    for i in range(40):
        log.add(position=i + 1, correct=i % 4 != 0, probability=0.1)
    estimate = log.estimate(now=40)
    assert estimate.value == pytest.approx(0.75)
    assert estimate.effective_labels == pytest.approx(40)
    assert (estimate.low, estimate.high) == pytest.approx(wilson(0.75, 40, z_value(0.95)))


def test_the_window_holds_samples_by_position_even_when_labels_come_late() -> None:
    log = AccuracyLog(window=10)
    log.add(position=5, correct=False, probability=1.0)
    log.add(position=12, correct=True, probability=1.0)
    log.add(position=3, correct=False, probability=1.0)  # a late label of an old sample
    assert log.estimate(now=12).labels == 3  # positions 3, 5 and 12 are in (2, 12]
    assert log.estimate(now=14).labels == 2  # position 3 left, position 5 still in
    assert log.estimate(now=15).value == 1.0  # only position 12 in (5, 15]
    total = log.estimate(now=15, scope="total")
    assert total.labels == 3 and total.value == pytest.approx(1 / 3)


def test_weights_undo_unequal_probabilities() -> None:
    # Wrong samples asked with pi = 1, right ones with pi = 0.1: one right label stands for
    # ten samples, so 10 asked of each kind estimate 100 right against 10 wrong.
    log = AccuracyLog(window=1000, kind="weighted")
    for i in range(10):
        log.add(2 * i + 1, correct=False, probability=1.0)
        log.add(2 * i + 2, correct=True, probability=0.1, explored=True)
    assert log.estimate(now=20).value == pytest.approx(100 / 110)


def test_a_census_is_exact_and_an_unknown_probability_voids_the_weighted_estimate() -> None:
    log = AccuracyLog(window=100, kind="weighted")
    for i in range(10):
        log.add(i + 1, correct=i < 7, probability=1.0)
    census = log.estimate(now=10)
    assert census.value == census.low == census.high == pytest.approx(0.7)
    log.add(11, correct=True, probability=None)
    assert not log.estimate(now=11).known
    assert not log.estimate(now=11, scope="total").known
    assert log.estimate(now=200).labels == 0  # the unknown one left the window too


def test_probabilities_outside_zero_one_are_refused() -> None:
    log = AccuracyLog(window=10)
    for bad in (0.0, -0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="probability"):
            log.add(1, correct=True, probability=bad)


def run_policy(seed: int, samples: int = 5000) -> dict[str, float]:
    """The adaptive policy on a synthetic stream where the model errs where it is unsure.

    Each sample's uncertainty u is uniform, and its prediction is right with probability
    ``1 - u^3``: the queried (uncertain) samples are the ones most often wrong. B = 0.1 and
    exploration 0.3 give about 150 random labels per run, so that the mean of 30 runs is
    within 0.006 (one standard error) of the truth.
    """
    policy = build_policy(StrategyConfig(budget=0.1, exploration=0.3, seed=seed))
    rng = random.Random(seed)
    right = asked = asked_right = 0
    inverse = 0.0
    for i in range(samples):
        u = rng.random()
        correct = rng.random() >= u**3
        right += correct
        for selection in policy.offer(str(i), u):
            asked += 1
            asked_right += correct
            probability = policy.monitor._open[selection.key].probability
            assert probability is not None
            inverse += 1.0 / probability
            policy.labelled(selection.key, correct)
    random_est = policy.accuracy_estimate("random", "total")
    weighted = policy.accuracy_estimate("weighted", "total")
    return {
        "true": right / samples,
        "hard": asked_right / asked,
        "inverse": inverse,
        "random": random_est.value,
        "random_in": random_est.low <= right / samples <= random_est.high,
        "weighted": weighted.value,
        "weighted_in": weighted.low <= right / samples <= weighted.high,
        "random_width": random_est.high - random_est.low,
        "weighted_width": weighted.high - weighted.low,
    }


def test_the_policy_knows_each_querys_probability() -> None:
    # Horvitz-Thompson: the sum of 1 / pi over the queried samples estimates the number
    # of samples. A wrong pi (say the budget rate for every query) misses by far.
    runs = [run_policy(seed, samples=4000) for seed in range(8)]
    mean = sum(run["inverse"] for run in runs) / len(runs)
    assert mean == pytest.approx(4000, rel=0.1)


def test_both_estimates_cover_the_true_accuracy_where_the_hard_sample_one_fails() -> None:
    runs = [run_policy(seed) for seed in range(30)]
    true = sum(run["true"] for run in runs) / len(runs)
    hard = sum(run["hard"] for run in runs) / len(runs)
    assert hard < true - 0.2  # the queried samples are the hard ones
    for kind in ("random", "weighted"):
        mean = sum(run[kind] for run in runs) / len(runs)
        assert mean == pytest.approx(true, abs=0.02), kind
        coverage = sum(bool(run[f"{kind}_in"]) for run in runs) / len(runs)
        assert coverage >= 0.85, (kind, coverage)
    # Stratified by probability, the weighted estimate is the tighter one.
    random_width = sum(run["random_width"] for run in runs) / len(runs)
    weighted_width = sum(run["weighted_width"] for run in runs) / len(runs)
    assert weighted_width < random_width


def test_no_estimate_is_nan_everywhere() -> None:
    none = AccuracyEstimate.none()
    assert not none.known and math.isnan(none.low) and none.labels == 0


def test_queries_recovered_after_a_restart_count_in_the_estimate() -> None:
    examples = list(stream("phishing", limit=1000))
    truth = {e.id: e.label for e in examples}
    running = ActiveLearner(LearnerConfig(strategy=StrategyConfig(budget=0.2, warmup=20)))
    for example in examples[:300]:
        for query in running.score(Sample(id=example.id, features=example.features), 0.0).queries:
            running.learn(LabelMessage(id=query.id, label=truth[query.id]), now=0.0)
    restarted: ActiveLearner = pickle.loads(pickle.dumps(running))
    logged = []
    for example in examples[300:]:
        scored = running.score(Sample(id=example.id, features=example.features), now=0.0)
        logged += [(query, running.samples_seen) for query in scored.queries]
    assert {q.reason for q, _ in logged} >= {"exploration", "uncertain"}
    for query, seen in logged:  # the restart reads its own queries back from the log
        assert restarted.recover_query(query, seen, charge=True)
    for learner in (running, restarted):
        for query, _ in logged:
            learner.learn(LabelMessage(id=query.id, label=truth[query.id]), now=1.0)
    # Every random label after the checkpoint is in the restarted estimate, at the same
    # probability (no drift boost here), so both estimates agree.
    assert restarted.accuracy_estimate("random") == running.accuracy_estimate("random")
    left_out = sum(query.reason != "warm-up" for query, _ in logged)
    for scope in ("window", "total"):
        after = restarted.accuracy_estimate("weighted", scope)  # type: ignore[arg-type]
        before = running.accuracy_estimate("weighted", scope)  # type: ignore[arg-type]
        assert after.known  # the labels of unknown probability are left out, not voiding it
        assert after.labels == before.labels - left_out


#: Strategies whose selector picks some samples at random itself (reason "exploration").
RANDOM_PICKING = {
    "split": StrategyConfig(name="split", random_share=0.5, budget=0.1),
    "random-behind-cold-start": StrategyConfig(name="random", cold_start="clusters", budget=0.1),
    "albl-random-arm": StrategyConfig(name="albl", albl_arms=("random", "adaptive"), budget=0.1),
}


def random_sample_weights(strategy: StrategyConfig, seed: int, samples: int) -> list[float]:
    """``1 / pi`` of every label of the random estimate, ``pi`` as the policy logged it."""
    policy = build_policy(strategy.model_copy(update={"seed": seed}))
    rng = random.Random(seed)
    weights = []
    for i in range(samples):
        for selection in policy.offer(f"s{i}", rng.random(), {"x": rng.random()}):
            pi = policy.monitor._open[selection.key].random_probability
            if pi is not None:
                weights.append(1.0 / pi)
            policy.labelled(selection.key, rng.random() < 0.8)
    return weights


@pytest.mark.parametrize("name", RANDOM_PICKING)
def test_the_random_estimate_knows_each_random_labels_probability(name: str) -> None:
    # Horvitz-Thompson: each sample is in the random estimate with probability pi (the
    # wrapper's exploration draw q, or else the selector's own random pick rho: q + (1 - q)
    # rho), so the sum of 1 / pi over its labels estimates the number of samples. A
    # selector's own random pick used to be weighed at q alone: 1 / q for each (about 6
    # times the samples here). (With exploration q > 0 every sample has pi > 0.)
    strategy = RANDOM_PICKING[name].model_copy(update={"exploration": 0.1})
    runs = [sum(random_sample_weights(strategy, seed, samples=3000)) for seed in range(8)]
    assert sum(runs) / len(runs) == pytest.approx(3000, rel=0.1)


@pytest.mark.parametrize("name", RANDOM_PICKING)
def test_random_picks_of_a_selector_without_exploration_are_learned(name: str) -> None:
    # A selector's own random pick was weighed as a draw of the wrapper's exploration,
    # whose rate is 0 without it: the random estimate refused probability 0 and learning
    # the label raised. Every such pick is now a label of the random estimate.
    policy = build_policy(RANDOM_PICKING[name].model_copy(update={"exploration": 0.0}))
    rng = random.Random(3)
    explored = 0
    for i in range(3000):
        for selection in policy.offer(f"s{i}", rng.random(), {"x": rng.random()}):
            explored += selection.decision.reason == "exploration"
            policy.labelled(selection.key, rng.random() < 0.8)
    assert explored > 0
    random_labels = policy.monitor.logs["random"].estimate(3000, "total").labels
    assert random_labels == explored + policy.warmup  # and the wrapper's warm-up labels


def test_a_recovered_random_pick_without_exploration_is_learned() -> None:
    policy = build_policy(StrategyConfig(name="split", exploration=0.0, warmup=0))
    policy.recover("exploration", 10, key="s9")
    policy.labelled("s9", True)  # raised: probability 0 for the random estimate
    assert policy.monitor.logs["random"].estimate(10, "total").labels == 0


def test_the_log_stays_bounded_when_no_estimate_is_asked_for() -> None:
    window = 50
    log = AccuracyLog(window=window, kind="weighted")
    for position in range(1, 20_001):
        log.add(position, position % 3 != 0, 0.5 if position % 7 else None)
    assert len(log._heap) + len(log._unknown) <= 2 * window
    # The same estimate as a log that was asked all along.
    asked = AccuracyLog(window=window, kind="weighted")
    for position in range(1, 20_001):
        asked.add(position, position % 3 != 0, 0.5 if position % 7 else None)
        asked.estimate(position)
    # (unknown probabilities void the window, so compare a window without them)
    for position in range(20_001, 20_101):
        log.add(position, True, 0.5)
        asked.add(position, True, 0.5)
    assert log.estimate(20_100) == asked.estimate(20_100)
    assert log.estimate(20_100, "total") == asked.estimate(20_100, "total")
