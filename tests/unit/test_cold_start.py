"""Cold start by clustering: warm-up labels for every region, not only the first one."""

from __future__ import annotations

import pickle
import random

import pytest

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.core.strategies import BudgetedPolicy, ClusterColdStart, build_policy
from stream_al.schemas import Sample

#: Seven well separated clusters in three dimensions.
CENTRES = [(0, 0, 0), (8, 0, 0), (0, 8, 0), (0, 0, 8), (8, 8, 0), (8, 0, 8), (0, 8, 8)]


def point(rng: random.Random, cluster: int) -> dict[str, float]:
    return {name: c + rng.gauss(0.0, 1.0) for name, c in zip("xyz", CENTRES[cluster], strict=True)}


def opening_with_two(rng: random.Random, n: int = 4000, front: int = 300) -> list[int]:
    """Cluster of each sample: the first ``front`` from clusters 0 and 1, then all seven."""
    return [rng.randrange(2) if i < front else rng.randrange(7) for i in range(n)]


def warmup_clusters(policy: BudgetedPolicy, clusters: list[int], seed: int = 5) -> list[int]:
    rng = random.Random(seed)
    picked = []
    for i, cluster in enumerate(clusters):
        for selection in policy.offer(str(i), rng.random(), point(rng, cluster)):
            if selection.decision.reason == "warm-up":
                picked.append(clusters[int(selection.key)])
    return picked


def test_plain_warmup_sees_two_clusters_and_the_cold_start_nearly_all() -> None:
    clusters = opening_with_two(random.Random(1))
    plain = warmup_clusters(build_policy(StrategyConfig(budget=0.05)), clusters)
    config = StrategyConfig(budget=0.05, cold_start="clusters")
    spread = warmup_clusters(build_policy(config), clusters)
    assert len(plain) == 20 and set(plain) == {0, 1}
    assert sorted(spread[:10]) == sorted(plain[:10])  # half at once, like the plain warm-up
    # Then a label for each of the five clusters that open later.
    assert set(spread[10:]) >= {2, 3, 4, 5, 6}


def test_cold_start_keeps_labels_it_finds_no_new_region_for_and_the_budget_holds() -> None:
    config = StrategyConfig(budget=0.05, cold_start="clusters")
    policy = build_policy(config)
    assert isinstance(policy.selector, ClusterColdStart) and policy.warmup == 0
    assert policy.selector.horizon == 400
    rng = random.Random(2)
    when = []
    for i in range(20_000):
        for selection in policy.offer(str(i), rng.random(), point(rng, rng.randrange(7))):
            if selection.decision.reason == "warm-up":
                when.append(i)
    # Half at once; the rest only for regions the first ten missed (none, or nearly).
    assert when[:10] == list(range(10)) and len(when) <= 13 and max(when) < 400
    assert policy.ledger.queried / 20_000 == pytest.approx(0.05, rel=0.05)


def test_without_features_the_cold_start_asks_nothing() -> None:
    policy = build_policy(StrategyConfig(budget=0.05, cold_start="clusters"))
    reasons = [s.decision.reason for i in range(2000) for s in policy.offer(str(i), 0.5)]
    assert "warm-up" not in reasons and reasons  # the uncertainty rule still runs


def test_the_learner_is_deterministic_by_seed_and_pickles_mid_cold_start() -> None:
    strategy = StrategyConfig(budget=0.05, cold_start="clusters", estimate="weighted")
    learners = [ActiveLearner(LearnerConfig(strategy=strategy)) for _ in range(2)]
    rng = random.Random(3)
    samples = [
        Sample(id=str(i), features=point(rng, c)) for i, c in enumerate(opening_with_two(rng, 600))
    ]
    for sample in samples[:350]:
        assert learners[0].score(sample, now=0.0) == learners[1].score(sample, now=0.0)
    copy = pickle.loads(pickle.dumps(learners[0]))
    for sample in samples[350:]:
        assert copy.score(sample, now=0.0) == learners[0].score(sample, now=0.0)
    state = learners[0].summary()["strategy"]["selector"]["cold_start"]
    assert state["representatives"] >= 10 and state["horizon"] == 400
