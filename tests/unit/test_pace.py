"""A budget in labels per hour, and the labelers' backlog followed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from stream_al.cli import main
from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.core.pace import MAX_FACTOR, LabelPace
from stream_al.core.strategies.ledger import Ledger
from stream_al.schemas import Sample
from stream_al.sim.datasets import stream
from stream_al.sim.paced import simulate_paced
from stream_al.sim.simulate import simulate


def test_a_changed_budget_applies_from_the_next_sample_and_keeps_what_was_allowed() -> None:
    ledger = Ledger(budget=0.5)
    for _ in range(10):
        ledger.see()
    assert ledger.deficit == 5.0
    ledger.set_budget(0.1)
    assert ledger.deficit == pytest.approx(5.0)
    for _ in range(10):
        ledger.see()
    assert ledger.deficit == pytest.approx(6.0)
    with pytest.raises(ValueError, match="budget must be in"):
        ledger.set_budget(0.0)


def test_the_share_follows_the_measured_rate_of_the_samples_clock() -> None:
    pace = LabelPace(labels_per_hour=360.0, initial_share=0.05)
    assert pace.share() == 0.05  # no rate yet
    for i in range(100):
        pace.observe(i * 0.1)  # ten samples a second
    assert pace.share() == pytest.approx(0.01, rel=0.01)
    for i in range(1000):
        pace.observe(10.0 + i)  # one a second, for long enough to forget the fast part
    assert pace.share() == pytest.approx(0.1, rel=0.01)
    pace = LabelPace(labels_per_hour=36_000.0, initial_share=0.05)
    for i in range(10):
        pace.observe(float(i))
    assert pace.share() == 1.0  # never more than every sample


def test_the_backlog_factor_halves_doubles_and_stays_bounded() -> None:
    pace = LabelPace(None, initial_share=0.01, target_backlog=10)
    pace.observe_backlog(10)
    assert pace.factor == 1.0
    pace.observe_backlog(1000)
    assert pace.factor == 0.5
    for _ in range(20):
        pace.observe_backlog(1000)
    assert pace.factor == 1 / MAX_FACTOR
    for _ in range(40):
        pace.observe_backlog(0)
    assert pace.factor == MAX_FACTOR
    # No wind-up: at a share of 1 already, an idle queue raises nothing.
    saturated = LabelPace(None, initial_share=0.5, target_backlog=10)
    for _ in range(5):
        saturated.observe_backlog(0)
    assert saturated.factor == 2.0 and saturated.share() == 1.0


def test_a_learner_asks_per_hour_whatever_the_stream_rate() -> None:
    config = LearnerConfig(strategy=StrategyConfig(name="random", labels_per_hour=360.0, warmup=0))
    learner = ActiveLearner(config)
    t, asked = 0.0, {"fast": 0, "change": 0, "slow": 0}
    for i in range(6500):
        # 10 samples a second for 500 s, then 1 a second: 500 s to follow, 1000 s steady.
        phase = "fast" if i < 5000 else "change" if i < 5500 else "slow"
        t += 0.1 if phase == "fast" else 1.0
        stamp = datetime.fromtimestamp(t, UTC)
        scored = learner.score(Sample(id=str(i), features={"x": float(i % 7)}, timestamp=stamp))
        asked[phase] += len(scored.queries)
    # 0.1 labels a second: 50 in the fast phase's 500 s, 100 in the slow 1000 s; a share
    # fixed at the fast phase's 1% would ask 10 there.
    assert asked["fast"] == pytest.approx(50, abs=8)
    assert 10 < asked["change"] < 50
    assert asked["slow"] == pytest.approx(100, abs=15)


def test_one_named_annotator_decides_like_the_plain_oracle_and_no_pace_is_built() -> None:
    examples = list(stream("phishing", limit=600))
    plain = LearnerConfig(strategy=StrategyConfig(budget=0.1))
    decisions: list[list[bool]] = [[], []]
    simulate(examples, plain, on_scored=lambda e, s: decisions[0].append(s.queried))
    one = simulate(
        examples,
        plain,
        annotators=(0.0,),
        on_scored=lambda e, s: decisions[1].append(s.queried),
    )
    assert decisions[0] == decisions[1] and one.answers == one.labels
    assert one.label_accuracy == 1.0
    assert ActiveLearner(plain).pace is None


def test_in_the_simulator_a_budget_per_hour_keeps_the_labelers_queue_short() -> None:
    examples = list(stream("hyperplane", seed=0, limit=10_000))

    def config(**strategy: float | int) -> LearnerConfig:
        return LearnerConfig(
            strategy=StrategyConfig(seed=0, **strategy),
            pending_ttl_seconds=900.0,
        )

    per_hour = simulate_paced(examples, config(labels_per_hour=600.0, target_backlog=10))
    fixed = simulate_paced(examples, config(budget=per_hour.queries / per_hour.samples))
    assert abs(per_hour.queries - fixed.queries) < 0.05 * fixed.queries
    assert per_hour.labels_expired == 0 < fixed.labels_expired
    assert per_hour.backlog_max < fixed.backlog_max / 2
    assert per_hour.queries_slow > 3 * fixed.queries_slow


def test_simulate_takes_annotators_and_reports_their_cost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["simulate", "--limit", "300", "--annotators", "0.0,0.4,0.4", "--budget", "0.1"]
    assert main([*argv, "--aggregation", "weighted", "--json"]) == 0
    out = capsys.readouterr().out
    assert "annotators  3 (noise [0.0, 0.4, 0.4]), weighted" in out
    summary = json.loads(out.splitlines()[-1])
    assert summary["answers"] == 3 * summary["labels"]
    assert main([*argv, "--annotators-per-item", "4"]) == 2
    assert "annotators_per_item must be in [1, 3]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--annotators", "0.1,2"])
    assert exit_info.value.code == 2
