"""The prequential simulator and the ``stream-al simulate`` command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from river.datasets import synth

from stream_al.cli import main
from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.schemas import class_label
from stream_al.sim.datasets import DATASETS, stream
from stream_al.sim.simulate import NoisyOracle, simulate


def learner(budget: float, name: str = "adaptive") -> LearnerConfig:
    return LearnerConfig(strategy=StrategyConfig(budget=budget, name=name))  # type: ignore[arg-type]


def test_every_dataset_streams_labelled_examples_without_downloading() -> None:
    for name in DATASETS:
        examples = list(stream(name, limit=50))
        assert len(examples) == 50
        assert all(isinstance(e.label, str) and e.features for e in examples)
        assert len({e.id for e in examples}) == 50


def test_an_unknown_dataset_is_named() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        next(stream("mnist"))


def test_only_queried_samples_are_learned_and_accuracy_counts_every_sample() -> None:
    examples = list(stream("phishing"))
    result = simulate(examples, learner(0.1), dataset="phishing")
    assert result.samples == len(examples)
    assert result.labels == result.labels_learned
    assert 0 < result.labels < len(examples)
    assert result.query_rate == pytest.approx(result.labels / len(examples))
    everything = simulate(examples, learner(1.0, "random"), dataset="phishing")
    assert everything.labels == len(examples)
    # All labels: the reference prequential accuracy of scaled logistic regression.
    assert everything.accuracy == pytest.approx(0.893, abs=0.005)
    assert result.accuracy < everything.accuracy


def test_late_labels_are_still_all_learned_and_cost_accuracy() -> None:
    examples = list(stream("phishing"))
    prompt = simulate(examples, learner(0.2), label_delay=0)
    late = simulate(examples, learner(0.2), label_delay=200)
    assert late.labels_learned == late.labels
    assert late.accuracy < prompt.accuracy


def test_label_noise_flips_the_stated_share() -> None:
    oracle = NoisyOracle(["a", "b", "c"], rate=0.3, seed=7)
    answers = [oracle.answer("a") for _ in range(10_000)]
    assert sum(a != "a" for a in answers) / 10_000 == pytest.approx(0.3, abs=0.02)
    assert set(answers) == {"a", "b", "c"}


def test_simulate_command_prints_a_summary_and_a_json_last_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    curve = tmp_path / "curve.csv"
    code = main(
        ["simulate", "--dataset", "phishing", "--budget", "0.1", "--json", "--curve", str(curve)]
    )
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert any("accuracy" in line for line in out[:-1])
    summary = json.loads(out[-1])
    for key in ("dataset", "strategy", "budget", "samples", "labels", "query_rate", "accuracy"):
        assert key in summary
    assert summary["dataset"] == "phishing" and summary["samples"] == 1250
    rows = list(csv.DictReader(curve.open()))
    assert rows[-1]["samples"] == "1250"
    assert int(rows[-1]["labels"]) == summary["labels"]
    assert float(rows[-1]["accuracy"]) == pytest.approx(summary["accuracy"], abs=1e-6)


def test_simulate_command_refuses_a_bad_budget(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--dataset", "phishing", "--budget", "1.5"]) == 2
    assert "budget" in capsys.readouterr().err


def test_simulate_plot_draws_a_png(tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    assert main(["simulate", "--dataset", "phishing", "--budget", "0.1", "--plot", str(chart)]) == 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_json_has_the_accuracy_estimate_beside_the_true_accuracy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["simulate", "--dataset", "image-segments", "--budget", "0.1", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    low, high = summary["accuracy_estimate_low"], summary["accuracy_estimate_high"]
    assert low < summary["accuracy_estimate"] < high
    # The interval holds the true accuracy; the accuracy on queried samples is far below it.
    assert low <= summary["accuracy"] <= high
    assert summary["hard_sample_accuracy"] < summary["accuracy"] - 0.2
    weighted = summary["accuracy_estimate_weighted"]
    assert summary["accuracy_estimate_weighted_low"] <= weighted
    assert weighted <= summary["accuracy_estimate_weighted_high"]
    assert summary["labels_saved"] == 0.0 and summary["events"] == []


def test_the_curve_carries_the_windowed_estimate() -> None:
    result = simulate(stream("phishing"), learner(0.1), dataset="phishing")
    last = result.curve[-1]
    assert last.estimate_low <= last.estimate <= last.estimate_high
    assert last.estimate_low > 0.0 and last.estimate_high <= 1.0


def test_sea_flip_swaps_the_labels_of_sea_at_half_the_size_asked_for() -> None:
    sea, flip = list(stream("sea", seed=3, limit=400)), list(stream("sea-flip", seed=3, limit=400))
    assert [e.features for e in flip] == [e.features for e in sea]
    same = [f.label == s.label for f, s in zip(flip, sea, strict=True)]
    assert same == [True] * 200 + [False] * 200
    assert [e.label for e in stream("sea-flip", seed=3, limit=400)] == [e.label for e in flip]


def test_agrawal_switch_changes_the_classification_function_at_half_the_size() -> None:

    switch = list(stream("agrawal-switch", seed=5, limit=600))
    assert switch == list(stream("agrawal-switch", seed=5, limit=600))
    assert switch != list(stream("agrawal-switch", seed=6, limit=600))
    # The first half is function 1; the second half follows function 4, not function 1.
    first = [class_label(y) for _, y in synth.Agrawal(classification_function=1, seed=5).take(300)]
    assert [e.label for e in switch[:300]] == first
    second = synth.Agrawal(classification_function=4, seed=6).take(300)
    assert [e.label for e in switch[300:]] == [class_label(y) for _, y in second]
    old_rule = synth.Agrawal(classification_function=1, seed=6).take(300)
    assert [e.label for e in switch[300:]] != [class_label(y) for _, y in old_rule]
