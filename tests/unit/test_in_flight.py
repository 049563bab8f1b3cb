"""Labels in flight: no second label for a region while the first is on its way."""

from __future__ import annotations

import random

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.core.strategies import InFlightAware, build_policy
from stream_al.schemas import LabelMessage, Sample


def hot_spot_stream(seed: int, n: int = 3000) -> list[tuple[dict[str, float], float]]:
    """A plane of samples; those near (0, 0) are the most uncertain, all alike."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x, y = rng.uniform(-10, 10), rng.uniform(-10, 10)
        out.append(({"x": x, "y": y}, max(0.0, 1.0 - (x * x + y * y) / 200.0)))
    return out


def queried_positions(in_flight: bool, delay: int) -> list[tuple[float, float]]:
    """Where the uncertain queries land when each label comes back ``delay`` samples late."""
    policy = build_policy(StrategyConfig(budget=0.05, in_flight=in_flight))
    asked: list[tuple[int, str]] = []
    where: list[tuple[float, float]] = []
    for i, (features, u) in enumerate(hot_spot_stream(1)):
        while asked and asked[0][0] + delay <= i:
            policy.labelled(asked.pop(0)[1], correct=True)
        for selection in policy.offer(str(i), u, features):
            asked.append((i, selection.key))
            if selection.decision.reason == "uncertain":
                where.append((features["x"], features["y"]))
    return where


def spread(points: list[tuple[float, float]]) -> float:
    return sum((x * x + y * y) ** 0.5 for x, y in points) / len(points)


def test_late_labels_spread_the_queries_instead_of_piling_them_on_one_spot() -> None:
    plain = queried_positions(in_flight=False, delay=500)
    aware = queried_positions(in_flight=True, delay=500)
    assert abs(len(plain) - len(aware)) <= 10  # the same budget
    # Plain ranking asks near the hot spot again and again; knowing what is in flight,
    # the queries move out to the next most uncertain places.
    assert spread(aware) > 1.5 * spread(plain)


def test_answered_queries_stop_counting_as_in_flight() -> None:
    # Labels back before the next sample: nothing is ever in flight, nothing changes.
    assert queried_positions(in_flight=True, delay=1) == queried_positions(False, delay=1)
    policy = build_policy(StrategyConfig(budget=0.5, in_flight=True, warmup=3))
    selector = policy.selector
    assert isinstance(selector, InFlightAware)
    for i in range(3):
        policy.offer(str(i), 0.5, {"x": float(i)})
    assert selector.in_flight == 3
    policy.labelled("1", correct=True)
    assert selector.in_flight == 2


def test_the_learner_reports_its_labels_to_the_strategy() -> None:
    strategy = StrategyConfig(budget=0.2, in_flight=True, estimate="weighted", warmup=5)
    learner = ActiveLearner(LearnerConfig(strategy=strategy))
    for i in range(5):
        learner.score(Sample(id=str(i), features={"x": float(i)}), now=float(i))
    state = learner.summary()["strategy"]["selector"]
    assert state["in_flight"]["queries"] == 5
    learner.learn(LabelMessage(id="2", label="a"), now=6.0)
    assert learner.summary()["strategy"]["selector"]["in_flight"]["queries"] == 4
