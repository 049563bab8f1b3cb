"""Drift detection on the labels' errors, and the response, on streams that drift."""

from __future__ import annotations

import pytest

from stream_al.core.challenger import Challenger
from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.drift import DriftWatch, RisingErrors
from stream_al.sim.datasets import stream
from stream_al.sim.simulate import SimulationResult, simulate


def run(
    name: str, budget: float = 0.05, seed: int = 0, **strategy: object
) -> tuple[list[bool], SimulationResult]:
    examples = list(stream(name, seed=seed, limit=20_000))
    flags: list[bool] = []
    config = StrategyConfig(budget=budget, seed=seed, **strategy)  # type: ignore[arg-type]
    result = simulate(
        examples,
        LearnerConfig(strategy=config),
        on_scored=lambda example, scored: flags.append(scored.label == example.label),
    )
    return flags, result


def drifts(result: SimulationResult) -> list[int]:
    return [e["position"] for e in result.events if e["kind"] == "drift"]


def test_the_random_labels_alone_miss_a_label_flip_that_all_labels_reveal() -> None:
    _, random_only = run("sea-flip", drift_detection="errors", drift_labels="random")
    assert drifts(random_only) == []
    _, every = run("sea-flip", drift_detection="errors")
    found = drifts(every)
    assert len(found) == 1 and 10_000 < found[0] < 12_000


def test_the_response_recovers_from_a_label_flip_the_model_alone_does_not() -> None:
    today, _ = run("sea-flip")
    response, result = run("sea-flip", drift_detection="errors")
    assert "fresh model" in result.events[0]["detail"]
    assert [e["kind"] for e in result.events][:2] == ["drift", "model-replaced"]
    after_today = sum(today[10_000:15_000]) / 5000
    after_response = sum(response[10_000:15_000]) / 5000
    assert after_today < 0.65
    assert after_response > 0.75
    assert sum(response[13_000:15_000]) / 2000 > 0.95


@pytest.mark.parametrize("name", ["sea", "phishing"])
def test_a_stationary_stream_raises_no_alarm_and_keeps_its_decisions(name: str) -> None:
    today, plain = run(name, budget=0.1)
    watched, result = run(name, budget=0.1, drift_detection="errors")
    assert drifts(result) == []
    assert watched == today
    assert result.labels == plain.labels


def test_random_labels_only_feed_the_detector_when_asked_to() -> None:
    watch = DriftWatch(errors=True, uncertainty=False, delta=0.001, labels="random")
    assert not any(watch.error(True, random=False) for _ in range(500))
    assert watch.state()["errors"]["seen"] == 0
    assert any(watch.error(i >= 200 or i % 10 == 0, random=True) for i in range(400))


@pytest.mark.parametrize("name", ["ddm", "eddm", "hddm-a", "hddm-w"])
def test_each_binary_detector_sees_a_rise_of_the_error_rate(name: str) -> None:
    detector = RisingErrors(name, delta=0.001)  # type: ignore[arg-type]
    assert not any(detector.update(float(i % 20 == 0)) for i in range(300))
    assert any(detector.update(float(i % 3 != 0)) for i in range(300))
    assert detector.state()["rises"] >= 1


@pytest.mark.parametrize("name", ["ddm", "hddm-a", "hddm-w"])  # EDDM does (see drift.py)
def test_no_binary_detector_calls_a_fall_of_the_error_rate_a_drift(name: str) -> None:
    detector = RisingErrors(name, delta=0.001)  # type: ignore[arg-type]
    assert not any(detector.update(float(i % 2 == 0)) for i in range(300))
    assert not any(detector.update(float(i % 20 == 0)) for i in range(600))


def test_a_challenger_that_does_no_better_is_dropped_and_the_model_kept() -> None:
    class Constant:
        def __init__(self, label: str) -> None:
            self.label = label

        def predict_proba_one(self, x: object) -> dict[str, float]:
            return {self.label: 1.0}

        def learn_one(self, x: object, y: object) -> None:
            pass

    right, wrong = Constant("a"), Constant("b")
    losing = Challenger(wrong, min_labels=2)
    assert [losing.duel(right, {}, "a") for _ in range(40)] == [None] * 39 + [False]
    tied = Challenger(Constant("a"), min_labels=2)
    assert {tied.duel(right, {}, "a") for _ in range(39)} == {None}  # a tie is no win
    winning = Challenger(right, min_labels=2)
    assert [winning.duel(wrong, {}, "a") for _ in range(2)] == [None, True]


def test_the_fresh_model_replaces_the_current_one_only_after_a_won_duel() -> None:
    _, at_once = run("sea-flip", drift_detection="errors", drift_challenger_labels=0)
    assert [e["kind"] for e in at_once.events] == ["drift"]
    _, dueled = run("sea-flip", drift_detection="errors")
    replaced = [e for e in dueled.events if e["kind"] == "model-replaced"]
    assert len(replaced) == 1 and replaced[0]["position"] > drifts(dueled)[0]
