"""Honest accuracy: coverage of the estimate and labels saved by stopping.

Prints two tables, mean and spread over seeds (a benchmark, not a timed test); the
recovery after a drift is measured by ``bench/drift.py``:

* coverage: at every ``--every`` samples from ``estimate_window`` on, whether the true
  prequential accuracy of the last ``estimate_window`` samples lies in the windowed
  estimate's interval, for the ``random`` and ``weighted`` estimates; and the interval's
  mean width after 5,000 samples;
* stopping: a stationary stream with a hard cap, with and without the stopping rules
  (``target_accuracy``, the plateau rule, both, and both with more exploration while
  learning and the old rate for monitoring): labels spent, share saved, accuracy given up.

    nice -n 10 python bench/estimate.py --seeds 5
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.sim.datasets import Example, stream
from stream_al.sim.simulate import simulate


def mean_sd(values: Sequence[float], digits: int = 3) -> str:
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def correctness(examples: list[Example], config: LearnerConfig) -> tuple[list[bool], object]:
    flags: list[bool] = []
    result = simulate(
        examples,
        config,
        curve_every=100,
        on_scored=lambda example, scored: flags.append(scored.label == example.label),
    )
    return flags, result


def coverage(datasets: list[str], budgets: list[float], seeds: int, limit: int, every: int) -> None:
    window = 5000
    print("\n## Coverage of the 95 % interval (windowed estimate, window 5,000 samples)\n")
    print(
        "| dataset | budget | random: coverage | weighted: coverage | random: width at 5k "
        "| weighted: width at 5k |"
    )
    print("|---|---|---|---|---|---|")
    for name in datasets:
        for budget in budgets:
            cover: dict[str, list[float]] = {"random": [], "weighted": []}
            width: dict[str, list[float]] = {"random": [], "weighted": []}
            for seed in range(seeds):
                examples = list(stream(name, seed=seed, limit=limit))
                for kind in ("random", "weighted"):
                    strategy = StrategyConfig(
                        budget=budget, seed=seed, estimate=kind, estimate_window=window
                    )
                    flags, result = correctness(examples, LearnerConfig(strategy=strategy))
                    hits = []
                    for point in result.curve:  # type: ignore[attr-defined]
                        n = point.samples
                        if n < window or n % every:
                            continue
                        true = sum(flags[n - window : n]) / window
                        hits.append(point.estimate_low <= true <= point.estimate_high)
                        if n == window:
                            width[kind].append(point.estimate_high - point.estimate_low)
                    cover[kind].append(sum(hits) / len(hits))
            print(
                f"| {name} | {budget} | {mean_sd(cover['random'])} | "
                f"{mean_sd(cover['weighted'])} | {mean_sd(width['random'])} | "
                f"{mean_sd(width['weighted'])} |",
                flush=True,
            )


#: The stopping rules compared with running to the cap (estimate window 10,000 each).
STOPPING: dict[str, dict[str, object]] = {
    "target 0.9": {"target_accuracy": 0.9},
    "plateau 2,000": {"plateau_window": 2000},
    "target + plateau": {"target_accuracy": 0.9, "plateau_window": 2000},
    "target + plateau, exploration 0.3, monitoring 0.005": {
        "target_accuracy": 0.9,
        "plateau_window": 2000,
        "exploration": 0.3,
        "monitoring_rate": 0.005,
    },
}


def stopping(datasets: list[str], seeds: int, limit: int, cap: int) -> None:
    print(f"\n## Stopping (budget 0.05, cap {cap} labels, estimate window 10,000)\n")
    print(
        "| dataset | rule | labels to the cap | labels with stopping | saved "
        "| accuracy to the cap | accuracy with stopping | given up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in datasets:
        examples = {seed: list(stream(name, seed=seed, limit=limit)) for seed in range(seeds)}
        capped = {seed: StrategyConfig(budget=0.05, max_labels=cap, seed=seed) for seed in examples}
        base = {s: simulate(examples[s], LearnerConfig(strategy=capped[s])) for s in examples}
        for rule, update in STOPPING.items():
            rows: dict[str, list[float]] = {k: [] for k in ("base", "stop", "saved")}
            rows.update({k: [] for k in ("a0", "a1", "d")})
            for seed in examples:
                config = capped[seed].model_copy(update={**update, "estimate_window": 10_000})
                stop = simulate(examples[seed], LearnerConfig(strategy=config))
                rows["base"].append(base[seed].labels)
                rows["stop"].append(stop.labels)
                rows["saved"].append(1.0 - stop.labels / base[seed].labels)
                rows["a0"].append(base[seed].accuracy)
                rows["a1"].append(stop.accuracy)
                rows["d"].append(base[seed].accuracy - stop.accuracy)
            print(
                f"| {name} | {rule} | {mean_sd(rows['base'])} | {mean_sd(rows['stop'])} | "
                f"{mean_sd(rows['saved'])} | {mean_sd(rows['a0'])} | {mean_sd(rows['a1'])} | "
                f"{mean_sd(rows['d'], 4)} |",
                flush=True,
            )


def chart(path: str, name: str = "sea-flip", budget: float = 0.1, seed: int = 0) -> None:
    """The windowed estimate with its band against the true windowed accuracy, with the
    drift response on (the labels flip half way)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = 2000
    examples = list(stream(name, seed=seed, limit=20_000))
    strategy = StrategyConfig(
        budget=budget, seed=seed, estimate_window=window, drift_detection="errors"
    )
    flags, result = correctness(examples, LearnerConfig(strategy=strategy))
    points = [p for p in result.curve if p.samples >= window]  # type: ignore[attr-defined]
    xs = [p.samples for p in points]
    true = [sum(flags[n - window : n]) / window for n in xs]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.fill_between(
        xs,
        [p.estimate_low for p in points],
        [p.estimate_high for p in points],
        alpha=0.25,
        label="95 % interval",
    )
    ax.plot(xs, [p.estimate for p in points], label="estimate (random labels)")
    ax.plot(xs, true, color="black", linewidth=1.2, label="true accuracy")
    ax.axvline(len(examples) // 2, color="grey", linestyle=":", label="labels flip")
    for event in result.events:  # type: ignore[attr-defined]
        if event["kind"] == "drift":
            ax.axvline(event["position"], color="red", linestyle="--", label="drift detected")
    ax.set_xlabel("samples")
    ax.set_ylabel(f"accuracy over the last {window} samples")
    ax.set_title(f"{name}, budget {budget}, drift response on: the estimate against the truth")
    ax.set_ylim(0.0, 1.0)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"chart written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--limit", type=int, default=20_000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--only", choices=["coverage", "stopping"], default=None)
    parser.add_argument("--chart", help="draw the README chart to this PNG and stop")
    args = parser.parse_args()
    if args.chart:
        chart(args.chart)
        return
    if args.only in (None, "coverage"):
        coverage(
            ["sea", "sea-drift", "hyperplane"], [0.05, 0.1], args.seeds, args.limit, args.every
        )
    if args.only in (None, "stopping"):
        stopping(["sea"], args.seeds, args.limit, cap=800)


if __name__ == "__main__":
    main()
