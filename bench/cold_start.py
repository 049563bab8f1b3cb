"""Cold start: warm-up labels on the first samples, or on one representative per cluster.

For each stream and budget, the prequential accuracy (and its standard error over the
policy seeds) of the default strategy with its 20 warm-up labels spent on the first 20
samples (``cold_start=first``, the default) and spent on new clusters over the first
``20 / B`` samples (``cold_start=clusters``), with the labels-per-class count of the
warm-up for the first few classes seen. Streams: multi-class streams as they come, and
the same with ``front`` samples of two classes moved to the front (the stream then
opens with two classes only, the case the cold start is for).

Run: ``python bench/cold_start.py [--seeds N] [--datasets ...] [--budgets ...]
[--limit N] [--front N] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paired import mean_se, paired_difference

from stream_al.core.config import ColdStart, LearnerConfig, StrategyConfig
from stream_al.core.learner import Scored
from stream_al.sim.datasets import DATASETS, Example, stream
from stream_al.sim.simulate import simulate


def front_loaded(examples: Sequence[Example], front: int) -> list[Example]:
    """``examples`` with the first ``front`` samples of two classes moved to the front.

    The two classes are the first two labels of the stream; the rest keep their order.
    """
    labels: list[str] = []
    for e in examples:
        if e.label not in labels:
            labels.append(e.label)
        if len(labels) == 2:
            break
    head = [e for e in examples if e.label in labels][:front]
    ids = {e.id for e in head}
    return head + [e for e in examples if e.id not in ids]


def run_cell(
    examples: Sequence[Example], cold_start: ColdStart, budget: float, seeds: list[int]
) -> dict[str, Any]:
    accuracy, rates, warmup_classes, seconds = [], [], [], 0.0
    truth = {e.id: e.label for e in examples}
    for seed in seeds:
        strategy = StrategyConfig(budget=budget, seed=seed, cold_start=cold_start)
        classes: set[str] = set()

        def watch(example: Example, scored: Scored, classes: set[str] = classes) -> None:
            for query in scored.queries:
                if query.reason == "warm-up":
                    classes.add(truth[query.id])

        start = time.process_time()
        result = simulate(examples, LearnerConfig(strategy=strategy), seed=seed, on_scored=watch)
        seconds += time.process_time() - start
        accuracy.append(result.accuracy)
        rates.append(result.query_rate)
        warmup_classes.append(len(classes))
    mean, se = mean_se(accuracy)
    return {
        "accuracy": mean,
        "accuracy_se": se,
        "accuracies": accuracy,
        "rate": statistics.fmean(rates),
        "warmup_classes": statistics.fmean(warmup_classes),
        "us_per_sample": 1e6 * seconds / (len(seeds) * len(examples)),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=sorted(DATASETS),
        default=["image-segments", "led-drift", "rbf-drift"],
    )
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.01, 0.05])
    parser.add_argument("--limit", type=int, default=5000)
    parser.add_argument("--front", type=int, default=300, help="samples of two classes first")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    seeds = list(range(42, 42 + args.seeds))
    rows: list[dict[str, Any]] = []
    print(f"mean of {len(seeds)} seed(s); classes: distinct classes among the warm-up labels")
    print(
        f"  {'stream':<34}{'B':<6}{'first: acc':>16}{'classes':>8}"
        f"{'clusters: acc':>19}{'classes':>8}{'difference':>18}"
    )
    for dataset in args.datasets:
        plain = list(stream(dataset, limit=args.limit))
        variants = [
            (dataset, plain),
            (f"{dataset}, 2 classes first", front_loaded(plain, args.front)),
        ]
        for name, examples in variants:
            for budget in args.budgets:
                first = run_cell(examples, "first", budget, seeds)
                clusters = run_cell(examples, "clusters", budget, seeds)
                row = {"stream": name, "budget": budget, "first": first, "clusters": clusters}
                row["difference"], row["difference_se"] = paired_difference(
                    clusters["accuracies"], first["accuracies"]
                )
                rows.append(row)
                print(
                    f"  {name:<34}{budget:<6g}"
                    f"{first['accuracy']:>9.4f} +-{first['accuracy_se']:.3f}"
                    f"{first['warmup_classes']:>8.1f}"
                    f"{clusters['accuracy']:>12.4f} +-{clusters['accuracy_se']:.3f}"
                    f"{clusters['warmup_classes']:>8.1f}"
                    f"{row['difference']:>+11.4f} +-{row['difference_se']:.3f}"
                    f"  ({first['us_per_sample']:.0f} / {clusters['us_per_sample']:.0f} us)",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
