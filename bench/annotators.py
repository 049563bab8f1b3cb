"""Several annotators per item, offline: k = 1 against k = 3 at equal labeling cost, and
the reliability-weighted vote against majority; checked against crowd-kit's batch
Dawid-Skene on the same answers when crowd-kit is installed (``pip install crowd-kit``).

A pool of annotators with their own noise rates; a query goes to k of them drawn at
random. Equal cost: k = 3 gets a third of k = 1's budget, so both pay for as many answers.

    nice -n 10 .venv/bin/python bench/annotators.py [--seeds 3] [--limit N]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.schemas import LabelMessage
from stream_al.sim.datasets import stream
from stream_al.sim.simulate import simulate

POOL = (0.05, 0.25, 0.35)


def crowd_kit_accuracy(answers: list[LabelMessage], truth: dict[str, str]) -> float | None:
    """Share of items crowd-kit's Dawid-Skene labels truly, on the same answers."""
    try:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene
    except ImportError:
        return None
    frame = pd.DataFrame([{"worker": a.annotator, "task": a.id, "label": a.label} for a in answers])
    labels = DawidSkene(n_iter=100).fit_predict(frame)
    return statistics.fmean(labels[task] == truth[task] for task in labels.index)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="phishing")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--budget", type=float, default=0.3, help="k = 1's share")
    args = parser.parse_args()

    rows: dict[str, list[tuple[float, float, int, float | None]]] = defaultdict(list)
    for seed in range(args.seeds):
        examples = list(stream(args.dataset, seed=seed, limit=args.limit))
        truth = {e.id: e.label for e in examples}
        runs = [
            ("k=1", 1, "majority", args.budget),
            ("k=3 majority", 3, "majority", args.budget / 3),
            ("k=3 weighted", 3, "weighted", args.budget / 3),
        ]
        for name, k, method, budget in runs:
            config = LearnerConfig(strategy=StrategyConfig(budget=budget, seed=seed, warmup=10))
            answers: list[LabelMessage] = []
            result = simulate(
                examples,
                config,
                dataset=args.dataset,
                seed=seed,
                annotators=POOL,
                annotators_per_item=k,
                aggregation=method,  # type: ignore[arg-type]
                on_answer=answers.append,
            )
            reference = crowd_kit_accuracy(answers, truth) if method == "weighted" else None
            rows[name].append(
                (result.accuracy, result.label_accuracy or 0.0, result.answers, reference)
            )

    print(
        f"{args.dataset}, annotator pool noise {list(POOL)}, k = 1 budget {args.budget}, "
        f"{args.seeds} seeds (mean)"
    )
    print(f"{'run':<14} {'accuracy':>9} {'labels true':>12} {'answers':>8} {'crowd-kit DS':>13}")
    for name, values in rows.items():
        accuracy = statistics.fmean(v[0] for v in values)
        true = statistics.fmean(v[1] for v in values)
        cost = statistics.fmean(v[2] for v in values)
        references = [v[3] for v in values if v[3] is not None]
        ref = f"{statistics.fmean(references):.4f}" if references else "-"
        print(f"{name:<14} {accuracy:>9.4f} {true:>12.4f} {cost:>8.0f} {ref:>13}")


if __name__ == "__main__":
    main()
