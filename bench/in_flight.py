"""Labels in flight: does the strategy ask twice about a region whose labels are late?

Labels come back ``--delay`` (500) samples late. For the default strategy and for the
same with ``in_flight=true`` (samples close to unanswered queries discounted), the table
gives the prequential accuracy and the *crowding* of the queries: the mean distance
from each query to the nearest query still in flight when it was made, over the same
mean for every sample of the stream (features standardised over the whole stream). 1
means queries land as far from the unanswered ones as any sample does; below 1, they
crowd where labels are already on their way.

Run: ``python bench/in_flight.py [--seeds N] [--datasets ...] [--budgets ...]
[--limit N] [--delay N] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paired import mean_se, paired_difference

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.learner import Scored
from stream_al.sim.datasets import DATASETS, Example, stream
from stream_al.sim.simulate import simulate


def standardised(examples: Sequence[Example]) -> dict[str, tuple[float, ...]]:
    names = sorted(k for k, v in examples[0].features.items() if not isinstance(v, str))
    columns = [[float(e.features.get(k, 0.0)) for e in examples] for k in names]
    stats = [(statistics.fmean(c), statistics.pstdev(c) or 1.0) for c in columns]
    return {
        e.id: tuple(
            (float(e.features.get(k, 0.0)) - m) / s for k, (m, s) in zip(names, stats, strict=True)
        )
        for e in examples
    }


def run(
    examples: Sequence[Example], in_flight: bool, budget: float, seed: int, delay: int
) -> dict[str, float]:
    points = standardised(examples)
    strategy = StrategyConfig(budget=budget, seed=seed, in_flight=in_flight)
    flying: deque[tuple[int, str]] = deque()
    step = 0
    query_d: list[float] = []
    sample_d: list[float] = []

    def watch(example: Example, scored: Scored) -> None:
        nonlocal step
        while flying and flying[0][0] <= step - delay - 1:
            flying.popleft()
        if flying:
            here = points[example.id]
            d = min(math.dist(here, points[k]) for _, k in flying)
            sample_d.append(d)
            if any(q.id == example.id and q.reason == "uncertain" for q in scored.queries):
                query_d.append(d)
        for query in scored.queries:
            flying.append((step, query.id))
        step += 1

    result = simulate(
        examples, LearnerConfig(strategy=strategy), seed=seed, label_delay=delay, on_scored=watch
    )
    crowding = statistics.fmean(query_d) / statistics.fmean(sample_d) if query_d else math.nan
    return {"accuracy": result.accuracy, "rate": result.query_rate, "crowding": crowding}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=sorted(DATASETS),
        default=["image-segments", "rbf-drift", "sea-flip", "agrawal-switch"],
    )
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.01, 0.05])
    parser.add_argument("--limit", type=int, default=5000)
    parser.add_argument("--delay", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    seeds = list(range(42, 42 + args.seeds))
    rows: list[dict[str, Any]] = []
    print(f"labels {args.delay} samples late; mean of {len(seeds)} seed(s)")
    print(
        f"  {'dataset':<16}{'B':<6}{'adaptive: acc':>18}{'crowding':>9}"
        f"{'in_flight: acc':>20}{'crowding':>9}{'difference':>18}"
    )
    for dataset in args.datasets:
        examples = list(stream(dataset, limit=args.limit))
        for budget in args.budgets:
            cells = {
                flag: [run(examples, flag, budget, s, args.delay) for s in seeds]
                for flag in (False, True)
            }
            difference, se = paired_difference(
                [r["accuracy"] for r in cells[True]], [r["accuracy"] for r in cells[False]]
            )
            row: dict[str, Any] = {"dataset": dataset, "budget": budget}
            text = f"  {dataset:<16}{budget:<6g}"
            for flag, name in ((False, "adaptive"), (True, "in_flight")):
                acc, acc_se = mean_se([r["accuracy"] for r in cells[flag]])
                crowding = statistics.fmean(r["crowding"] for r in cells[flag])
                row[name] = {"accuracy": acc, "se": acc_se, "crowding": crowding}
                row[name]["rate"] = statistics.fmean(r["rate"] for r in cells[flag])
                shown = "n/a" if math.isnan(crowding) else f"{crowding:.2f}"
                text += f"{acc:>11.4f} +-{acc_se:.3f}{shown:>9}"
            row["difference"], row["difference_se"] = difference, se
            rows.append(row)
            print(f"{text}{row['difference']:>+11.4f} +-{se:.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
