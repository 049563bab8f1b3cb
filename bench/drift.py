"""Drift response: samples until the accuracy is back after a drift, with and without it.

On each drifting stream (the drift sits at half its length) and budget, mean and spread
over seeds (a benchmark, not a timed test):

* recovery: samples after the drift until the accuracy over the last 500 samples is back
  within 0.02 of its level over the 2,000 before the drift (never back within 5,000:
  counted as 5,000), and the accuracy over the 5,000 samples after the drift;
* for three policies: ``today`` (no detection), ``ADWIN random`` (the first detector:
  ADWIN, delta 0.002, on the random labels' errors, no model reset) and ``response`` (the
  defaults with ``drift_detection=errors``: HDDM-W on every label's errors, delta 0.001,
  exploration raised, window restarted, model reset);
* the detections (mean count) and the first one's delay after the drift.

A second table checks the stationary streams: accuracy with and without the response, and
false alarms (``phishing`` in a shuffled order per seed).

    nice -n 10 python bench/drift.py --seeds 10
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Sequence
from typing import Any

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.sim.datasets import Example, stream
from stream_al.sim.simulate import SimulationResult, simulate

POLICIES: dict[str, dict[str, Any]] = {
    "today": {},
    "ADWIN random": {
        "drift_detection": "errors",
        "drift_detector": "adwin",
        "drift_labels": "random",
        "drift_delta": 0.002,
        "drift_reset_model": False,
    },
    "response": {"drift_detection": "errors"},
}


def mean_sd(values: Sequence[float], digits: int = 3) -> str:
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def run(
    examples: list[Example], budget: float, seed: int, policy: dict[str, Any]
) -> tuple[list[bool], SimulationResult]:
    flags: list[bool] = []
    strategy = StrategyConfig(budget=budget, seed=seed, **policy)
    result = simulate(
        examples,
        LearnerConfig(strategy=strategy),
        on_scored=lambda example, scored: flags.append(scored.label == example.label),
    )
    return flags, result


def recovery(flags: list[bool], drift_at: int, width: int = 500) -> tuple[int | None, float]:
    """Samples after ``drift_at`` until the accuracy over ``width`` is back within 0.02
    of the 2,000 before (None: not within 5,000), and the accuracy over those 5,000."""
    before = sum(flags[drift_at - 2000 : drift_at]) / 2000
    after = flags[drift_at : drift_at + 5000]
    running = 0
    for i, flag in enumerate(after):
        running += flag
        if i >= width:
            running -= after[i - width]
        if i >= width - 1 and running / width >= before - 0.02:
            return i + 1, sum(after) / len(after)
    return None, sum(after) / len(after)


def drifts(result: SimulationResult) -> list[int]:
    return [event["position"] for event in result.events if event["kind"] == "drift"]


def drifting(datasets: list[str], budgets: list[float], seeds: int, limit: int) -> None:
    drift_at = limit // 2
    print(
        "\n## Recovery after a drift at mid-stream (samples until the accuracy over 500 is "
        "back within 0.02 of the 2,000 before; 5,000 = not back)\n"
    )
    names = list(POLICIES)
    print(
        "| dataset | budget | "
        + " | ".join(f"recovery, {n}" for n in names)
        + " | "
        + " | ".join(f"accuracy 5k after, {n}" for n in names)
        + " | detections (response) | first detection after |"
    )
    print("|---|---|" + "---|" * (2 * len(names) + 2))
    for name in datasets:
        for budget in budgets:
            rec: dict[str, list[float]] = {n: [] for n in names}
            acc: dict[str, list[float]] = {n: [] for n in names}
            count: list[float] = []
            delay: list[float] = []
            for seed in range(seeds):
                examples = list(stream(name, seed=seed, limit=limit))
                for policy in names:
                    flags, result = run(examples, budget, seed, POLICIES[policy])
                    back, after = recovery(flags, drift_at)
                    rec[policy].append(5000 if back is None else back)
                    acc[policy].append(after)
                    if policy == "response":
                        found = drifts(result)
                        count.append(len(found))
                        later = [p - drift_at for p in found if p > drift_at]
                        if later:
                            delay.append(later[0])
            print(
                f"| {name} | {budget} | "
                + " | ".join(mean_sd(rec[n], 0) for n in names)
                + " | "
                + " | ".join(mean_sd(acc[n]) for n in names)
                + f" | {mean_sd(count, 1)} | {mean_sd(delay, 0)} ({len(delay)}/{seeds}) |",
                flush=True,
            )


def stationary(datasets: list[str], budgets: list[float], seeds: int, limit: int) -> None:
    print("\n## Stationary streams: accuracy with and without the response, false alarms\n")
    print("| dataset | budget | accuracy, today | accuracy, response | false alarms |")
    print("|---|---|---|---|---|")
    for name in datasets:
        for budget in budgets:
            rows: dict[str, list[float]] = {"today": [], "response": [], "alarms": []}
            for seed in range(seeds):
                examples = list(stream(name, seed=seed, limit=limit))
                if name == "phishing":  # a bundled stream: another order per seed
                    random.Random(seed).shuffle(examples)
                for policy in ("today", "response"):
                    _, result = run(examples, budget, seed, POLICIES[policy])
                    rows[policy].append(result.accuracy)
                    if policy == "response":
                        rows["alarms"].append(len(drifts(result)))
            print(
                f"| {name} | {budget} | {mean_sd(rows['today'], 4)} | "
                f"{mean_sd(rows['response'], 4)} | {sum(rows['alarms']):.0f} in {seeds} runs |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--limit", type=int, default=20_000)
    args = parser.parse_args()
    budgets = [0.05, 0.1]
    drifting(["sea-flip", "agrawal-switch", "hyperplane"], budgets, args.seeds, args.limit)
    stationary(["sea", "phishing"], budgets, args.seeds, args.limit)


if __name__ == "__main__":
    main()
