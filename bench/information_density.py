"""Outliers against information density: who spends labels on samples far from the data.

Each stream gets a share (2 %) of its samples replaced by outliers far from the data
(``stream_al.sim.datasets.with_outliers``: every numeric feature about 10 standard
deviations out, a random label). For each strategy the table gives the share of its
labels spent on outliers (the outliers' share of the stream is what a random strategy
spends), the prequential accuracy on the inliers (outliers' labels are random, so no
model predicts them) and the CPU time per sample of the whole learner:

* ``adaptive``: the default, plain margin;
* ``pool`` and ``pool`` with a random sub-pool of 10 out of 100 (the seed's remedy for
  outliers: fewer of them per sub-pool);
* ``density``: margin weighted by the online density of a reservoir of recent samples.

Run: ``python bench/information_density.py [--seeds N] [--datasets ...] [--budgets ...]
[--limit N] [--model NAME] [--json FILE]``; means over N policy seeds (42, 43, ...), streams fixed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from paired import mean_se

from stream_al.core.config import LearnerConfig, ModelConfig, ModelName, StrategyConfig
from stream_al.core.learner import Scored
from stream_al.sim.datasets import DATASETS, Example, stream, with_outliers
from stream_al.sim.simulate import simulate

SHARE = 0.02
#: (label in the table, strategy settings beyond the budget and seed).
METHODS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("adaptive", {"name": "adaptive"}),
    ("pool", {"name": "pool"}),
    ("pool, sub-pool 10", {"name": "pool", "sub_pool_size": 10}),
    ("density", {"name": "density"}),
)


def run_method(
    examples: Sequence[Example],
    outliers: set[str],
    settings: dict[str, Any],
    budget: float,
    seed: int,
    model: ModelName = "logreg",
) -> dict[str, float]:
    config = LearnerConfig(
        model=ModelConfig(name=model),
        strategy=StrategyConfig(budget=budget, seed=seed, **settings),
    )
    inliers_right = inliers = asked = asked_outliers = 0

    def watch(example: Example, scored: Scored) -> None:
        nonlocal inliers_right, inliers, asked, asked_outliers
        if example.id not in outliers:
            inliers += 1
            inliers_right += scored.label == example.label
        for query in scored.queries:
            asked += 1
            asked_outliers += query.id in outliers

    start = time.process_time()
    result = simulate(examples, config, seed=seed, on_scored=watch)
    seconds = time.process_time() - start
    return {
        "inlier_accuracy": inliers_right / inliers,
        "outlier_label_share": asked_outliers / asked if asked else 0.0,
        "rate": result.query_rate,
        "us_per_sample": 1e6 * seconds / result.samples,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--datasets", nargs="+", choices=sorted(DATASETS), default=["sea", "rbf-drift"]
    )
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.01, 0.05])
    parser.add_argument("--limit", type=int, default=5000)
    parser.add_argument("--model", choices=get_args(ModelName), default="logreg")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    seeds = list(range(42, 42 + args.seeds))
    rows: list[dict[str, Any]] = []
    print(f"{SHARE:.0%} outliers; {args.model}, margin; mean of {len(seeds)} seed(s)")
    print(f"  {'dataset':<16}{'B':<6}{'method':<20}{'inlier acc':>11}{'outlier labels':>16}")
    for dataset in args.datasets:
        clean = list(stream(dataset, limit=args.limit))
        examples, outliers = with_outliers(clean, SHARE, seed=7)
        for budget in args.budgets:
            for label, settings in METHODS:
                runs = [
                    run_method(examples, outliers, settings, budget, s, args.model) for s in seeds
                ]
                row: dict[str, Any] = {"dataset": dataset, "budget": budget, "method": label}
                for key in runs[0]:
                    row[key] = statistics.fmean(r[key] for r in runs)
                _, row["inlier_accuracy_se"] = mean_se([r["inlier_accuracy"] for r in runs])
                rows.append(row)
                print(
                    f"  {dataset:<16}{budget:<6g}{label:<20}{row['inlier_accuracy']:>7.4f}"
                    f" +-{row['inlier_accuracy_se']:.3f}{row['outlier_label_share']:>10.1%}"
                    f"  rate {row['rate']:.4f}  {row['us_per_sample']:.0f} us/sample",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
