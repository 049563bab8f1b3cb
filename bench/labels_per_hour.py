"""A budget people can keep: labels per hour, and following the labelers' queue, against
a fixed share of the stream spending the same total.

The stream's rate alternates tenfold (5 and 0.5 samples a second, half an hour each);
the labelers answer 300 an hour, oldest query first; a label later than 15 minutes has
expired. Figures: queries asked by day and by night, the labelers' backlog (mean and
largest reading), labels expired, prequential accuracy.

    nice -n 10 .venv/bin/python bench/labels_per_hour.py [--dataset hyperplane] [--seeds 2]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.sim.datasets import Example, stream
from stream_al.sim.paced import PacedResult, simulate_paced

CAPACITY = 300.0
TTL_SECONDS = 900.0


def config(seed: int, **strategy: float | int | None) -> LearnerConfig:
    return LearnerConfig(
        strategy=StrategyConfig(seed=seed, **strategy),
        pending_ttl_seconds=TTL_SECONDS,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="hyperplane")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    results: dict[str, list[PacedResult]] = defaultdict(list)
    for seed in range(args.seeds):
        examples = list(stream(args.dataset, seed=seed, limit=args.limit))

        def run(name: str, cfg: LearnerConfig, examples: list[Example] = examples) -> PacedResult:
            result = simulate_paced(examples, cfg, capacity_per_hour=CAPACITY)
            results[name].append(result)
            return result

        paced = run("300 per hour", config(seed, labels_per_hour=CAPACITY))
        run("fixed, same total", config(seed, budget=paced.queries / paced.samples))
        # The team's capacity overestimated twice: the queue followed, at a depth of 10.
        followed = run(
            "600/h + backlog 10",
            config(seed, labels_per_hour=2 * CAPACITY, target_backlog=10),
        )
        run("600 per hour", config(seed, labels_per_hour=2 * CAPACITY))
        run("fixed, same total ", config(seed, budget=followed.queries / followed.samples))

    print(
        f"{args.dataset}: stream 5 and 0.5 samples/s (30 min each), labelers {CAPACITY:.0f} "
        f"labels/h, labels expire after {TTL_SECONDS:.0f} s; {args.seeds} seeds (mean)"
    )
    header = (
        f"{'budget':<20} {'queries':>8} {'by day':>7} {'by night':>8} {'backlog':>8} "
        f"{'max':>5} {'expired':>8} {'accuracy':>9}"
    )
    print(header)
    for name, runs in results.items():

        def mean(field: str, runs: list[PacedResult] = runs) -> float:
            return statistics.fmean(getattr(r, field) for r in runs)

        print(
            f"{name:<20} {mean('queries'):>8.0f} {mean('queries_fast'):>7.0f} "
            f"{mean('queries_slow'):>8.0f} {mean('backlog_mean'):>8.1f} "
            f"{mean('backlog_max'):>5.0f} {mean('labels_expired'):>8.0f} "
            f"{mean('accuracy'):>9.4f}"
        )


if __name__ == "__main__":
    main()
