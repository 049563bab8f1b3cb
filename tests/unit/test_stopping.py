"""Stopping at a target accuracy, and the drift response, in the query policy and the simulator."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.strategies import BudgetedPolicy, build_policy
from stream_al.sim.datasets import stream
from stream_al.sim.simulate import simulate


def drive(
    policy: BudgetedPolicy, samples: int, accuracy: float, rng: random.Random, start: int = 0
) -> dict[str, int]:
    """Offer ``samples`` uniform uncertainties, label every query right with ``accuracy``."""
    counts = {"uncertain": 0, "exploration": 0, "warm-up": 0}
    for i in range(start, start + samples):
        for selection in policy.offer(str(i), rng.random()):
            assert selection.decision.reason is not None
            counts[selection.decision.reason] += 1
            policy.labelled(selection.key, rng.random() < accuracy)
    return counts


def test_the_policy_stops_at_the_target_keeps_monitoring_and_resumes_below_it() -> None:
    config = StrategyConfig(
        budget=0.1, exploration=0.2, target_accuracy=0.8, estimate_window=2000, seed=3
    )
    policy = build_policy(config)
    rng = random.Random(3)
    drive(policy, 3000, accuracy=0.97, rng=rng)
    assert policy.stopped
    assert [e.kind for e in policy.events] == ["stopped"]
    stopped_at = policy.events[0].position
    # Stopped: no uncertain query, random ones at the monitoring rate (exploration * B).
    counts = drive(policy, 5000, accuracy=0.97, rng=rng, start=3000)
    assert counts["uncertain"] == 0
    assert counts["exploration"] / 5000 == pytest.approx(0.02, rel=0.25)
    saved = policy.ledger.saved
    assert saved == pytest.approx((8000 - stopped_at) * (0.1 - 0.02))
    # What was saved is not owed: no burst of queries to repay it.
    assert abs(policy.ledger.deficit) < 10
    # The model gets worse: the estimate falls below the target and the policy resumes.
    drive(policy, 6000, accuracy=0.5, rng=rng, start=8000)
    assert not policy.stopped
    assert [e.kind for e in policy.events][:2] == ["stopped", "resumed"]
    resumed_at = policy.events[1].position
    counts = drive(policy, 1000, accuracy=0.5, rng=rng, start=14_000)
    assert counts["uncertain"] > 0
    assert policy.ledger.saved == pytest.approx(saved + (resumed_at - 8000) * 0.08, abs=1.0)


def test_without_a_target_nothing_is_saved_and_decisions_are_todays() -> None:
    rng_a, rng_b = random.Random(5), random.Random(5)
    plain = build_policy(StrategyConfig(budget=0.05))
    unreachable = build_policy(StrategyConfig(budget=0.05, target_accuracy=1.0))
    us = [rng_a.random() for _ in range(3000)]
    for i, u in enumerate(us):
        a, b = plain.offer(str(i), u), unreachable.offer(str(i), u)
        assert a == b
        for s in a:
            correct = rng_b.random() < 0.9
            plain.labelled(s.key, correct)
            unreachable.labelled(s.key, correct)
    assert plain.ledger.saved == unreachable.ledger.saved == 0.0
    assert not unreachable.events


def test_stopping_saves_labels_under_a_cap_in_the_simulator() -> None:
    # Every policy seed, not one: whether the estimate's lower bound clears the target
    # early turns on whether one of its first few dozen random labels was predicted wrong
    # (at a target of 0.9 on this stream, two seeds of six never stopped).
    examples = list(stream("sea", seed=0, limit=20_000))
    capped = StrategyConfig(budget=0.05, max_labels=800, seed=0)
    assert simulate(examples, LearnerConfig(strategy=capped)).labels == 800
    for seed in range(4):
        stopping = capped.model_copy(
            update={"seed": seed, "target_accuracy": 0.85, "estimate_window": 10_000}
        )
        stopped = simulate(examples, LearnerConfig(strategy=stopping))
        assert stopped.labels < 0.75 * 800, seed
        assert stopped.labels_saved > 0
        assert stopped.events[0]["kind"] == "stopped"
        assert stopped.accuracy > 0.96


def test_stopping_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="monitoring_rate must not exceed budget"):
        StrategyConfig(budget=0.05, monitoring_rate=0.1)
    with pytest.raises(ValidationError, match="estimate 'weighted' needs a strategy"):
        StrategyConfig(name="fixed", estimate="weighted")
    with pytest.raises(ValidationError, match="target_accuracy"):
        StrategyConfig(target_accuracy=1.5)


def test_a_drift_in_the_labels_errors_raises_exploration_for_a_while() -> None:
    config = StrategyConfig(
        budget=0.1,
        exploration=0.2,
        drift_detection="errors",
        drift_exploration=0.6,
        drift_duration=1000,
        seed=1,
    )
    policy = build_policy(config)
    rng = random.Random(1)
    drive(policy, 4000, accuracy=0.95, rng=rng)
    assert not any(e.kind == "drift" for e in policy.events)  # stationary: no alarm
    assert policy.exploration_rate == pytest.approx(0.02)
    drive(policy, 3000, accuracy=0.4, rng=rng, start=4000)
    drifts = [e for e in policy.events if e.kind == "drift"]
    assert drifts and drifts[0].position > 4000
    assert policy.drifts_by_signal["errors"] >= 1
    first = drifts[0].position
    assert "selector window restarted" in drifts[0].detail
    # Raised right after the detection, back to normal once the duration is over.
    policy2 = build_policy(config)
    rng2 = random.Random(1)
    drive(policy2, 4000, accuracy=0.95, rng=rng2)
    drive(policy2, first - 4000, accuracy=0.4, rng=rng2, start=4000)
    assert policy2.exploration_rate == pytest.approx(0.06)
    drive(policy2, 1001, accuracy=0.95, rng=rng2, start=first)
    assert policy2.exploration_rate == pytest.approx(0.02)


def test_a_flat_estimate_stops_the_policy_and_a_fall_resumes_it() -> None:
    config = StrategyConfig(
        budget=0.1, exploration=0.2, plateau_window=2000, estimate_window=2000, seed=4
    )
    policy = build_policy(config)
    rng = random.Random(4)
    # Learning: the accuracy climbs by 0.1 every 1000 samples, so no plateau yet.
    for step, accuracy in enumerate([0.5, 0.6, 0.7, 0.8, 0.9]):
        drive(policy, 1000, accuracy=accuracy, rng=rng, start=step * 1000)
    assert not policy.stopped
    # Flat from here: stopped within a plateau window (and a little for the notes).
    drive(policy, 3000, accuracy=0.9, rng=rng, start=5000)
    assert policy.stopped
    stop = policy.events[-1]
    assert stop.kind == "stopped" and "holding: plateau" in stop.detail
    assert 6000 <= stop.position <= 8000
    counts = drive(policy, 2000, accuracy=0.9, rng=rng, start=8000)
    assert counts["uncertain"] == 0 and policy.ledger.saved > 0
    # Worse for sure: resumed, and uncertainty labels again (a flat estimate at the new
    # level would stop it again, a plateau window later).
    counts = drive(policy, 1500, accuracy=0.6, rng=rng, start=10_000)
    assert [e.kind for e in policy.events] == ["stopped", "resumed"]
    assert counts["uncertain"] > 0


def test_the_plateau_rule_saves_labels_on_a_stationary_stream() -> None:
    examples = list(stream("sea", seed=2, limit=20_000))
    capped = StrategyConfig(budget=0.05, max_labels=800, seed=2)
    base = simulate(examples, LearnerConfig(strategy=capped))
    plateau = capped.model_copy(update={"plateau_window": 2000, "estimate_window": 10_000})
    # (seed 2 stops at sample 10 068; the cap is reached at 16 000)
    stopped = simulate(examples, LearnerConfig(strategy=plateau))
    assert [e["kind"] for e in stopped.events][:1] == ["stopped"]
    assert stopped.labels < 0.8 * base.labels
    assert base.accuracy - stopped.accuracy < 0.01
