"""The adaptive strategy's model horizon: ranking against the whole window, or only against
what the last models scored.

For each stream, budget and label condition, the default strategy with
``model_horizon = 0`` (each sample ranked against the whole window, whatever model scored
it) and with the default horizon (only against the samples scored since the model's last
``k`` labels): realised query rate and prequential accuracy, mean over the policy seeds,
and the paired difference of accuracy with its standard error. Streams are fixed (seed
42); the two sides share every policy seed, so the difference cancels what a seed shares.

Run: ``python bench/model_horizon.py [--seeds N] [--datasets ...] [--budgets ...]
[--limit N] [--horizon K] [--delay N] [--noise P] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paired import paired_difference

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.sim.datasets import DATASETS, Example, stream
from stream_al.sim.simulate import simulate

DEFAULT_DATASETS = [
    "agrawal-switch",
    "bananas",
    "hyperplane",
    "image-segments",
    "led-drift",
    "phishing",
    "rbf-drift",
    "sea",
    "sea-drift",
    "sea-flip",
]


def run_cell(
    examples: Sequence[Example],
    budget: float,
    horizon: int,
    seeds: Sequence[int],
    delay: int,
    noise: float,
) -> dict[str, list[float]]:
    accuracies, rates = [], []
    for seed in seeds:
        strategy = StrategyConfig(budget=budget, seed=seed, model_horizon=horizon)
        result = simulate(
            examples,
            LearnerConfig(strategy=strategy),
            seed=seed,
            label_delay=delay,
            label_noise=noise,
        )
        accuracies.append(result.accuracy)
        rates.append(result.query_rate)
    return {"accuracy": accuracies, "rate": rates}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=DEFAULT_DATASETS)
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.01, 0.05, 0.1])
    parser.add_argument("--limit", type=int, default=3000)
    parser.add_argument("--horizon", type=int, default=StrategyConfig().model_horizon)
    parser.add_argument("--delay", type=int, default=0, help="labels this many samples late")
    parser.add_argument("--noise", type=float, default=0.0, help="share of wrong labels")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    seeds = list(range(42, 42 + args.seeds))
    print(
        f"mean of {len(seeds)} seeds, first {args.limit} samples, labels {args.delay} samples "
        f"late, {args.noise:.0%} wrong; horizon 0 (whole window) against {args.horizon}"
    )
    print(
        f"  {'stream':<16}{'B':<6}{'rate, whole':>12}{'horizon':>9}"
        f"{'accuracy, whole':>17}{'horizon':>9}{'difference':>18}"
    )
    rows: list[dict[str, Any]] = []
    for dataset in args.datasets:
        examples = list(stream(dataset, seed=42, limit=args.limit))
        for budget in args.budgets:
            whole, near = (
                run_cell(examples, budget, horizon, seeds, args.delay, args.noise)
                for horizon in (0, args.horizon)
            )
            difference, se = paired_difference(near["accuracy"], whole["accuracy"])
            row = {"stream": dataset, "budget": budget, "whole": whole, "horizon": near}
            row["difference"], row["difference_se"] = difference, se
            rows.append(row)
            print(
                f"  {dataset:<16}{budget:<6g}"
                f"{statistics.fmean(whole['rate']):>12.4f}{statistics.fmean(near['rate']):>9.4f}"
                f"{statistics.fmean(whole['accuracy']):>17.3f}"
                f"{statistics.fmean(near['accuracy']):>9.3f}"
                f"{row['difference']:>+11.3f} +-{se:.3f}"
            )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
