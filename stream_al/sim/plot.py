"""Learning curves of several runs on one chart."""

from __future__ import annotations

import bisect
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from stream_al.sim.simulate import CurvePoint, SimulationResult


def _name(result: SimulationResult) -> str:
    # Random sampling ignores the measure, so naming one would suggest it matters.
    return "random" if result.strategy == "random" else f"{result.strategy} / {result.measure}"


def require_matplotlib() -> None:
    """Raise a ``ValueError`` saying what to install when matplotlib is missing."""
    # matplotlib is an extra, not a service dependency.
    if importlib.util.find_spec("matplotlib") is None:
        raise ValueError("--plot needs matplotlib: pip install 'stream_al[plot]'")


def recent_accuracy(curve: Sequence[CurvePoint], width: int) -> tuple[list[int], list[float]]:
    """Accuracy over the last ``width`` samples at each curve point, from the running one.

    A running (prequential) accuracy hides a drift once many samples are behind it; the
    difference of the correct counts at two points ``width`` samples apart does not. Points
    fewer than ``width`` samples into the stream are left out.

    >>> curve = [CurvePoint(10 * i, i, a) for i, a in [(1, 0.5), (2, 0.5), (3, 2 / 3)]]
    >>> recent_accuracy(curve, 10)
    ([20, 30], [0.5, 1.0])
    """
    samples = [p.samples for p in curve]
    correct = [p.accuracy * p.samples for p in curve]
    xs: list[int] = []
    ys: list[float] = []
    for k, n in enumerate(samples):
        m = bisect.bisect_right(samples, n - width) - 1
        if m < 0 or n - samples[m] < width:
            continue
        xs.append(n)
        ys.append((correct[k] - correct[m]) / (n - samples[m]))
    return xs, ys


def _y_range(results: Sequence[SimulationResult]) -> tuple[float, float] | None:
    """Y limits that show every run from the end of its first tenth of the stream on."""
    settled = [p.accuracy for r in results for p in r.curve if p.samples >= max(r.samples // 10, 1)]
    if not settled:
        return None
    low, high = min(settled), max(settled)
    pad = 0.08 * max(high - low, 0.01)
    return max(0.0, low - pad), min(1.0 + pad / 4, high + pad)


def plot_curves(results: Sequence[SimulationResult], path: Path, title: str) -> None:
    """Draw the runs' learning curves into a PNG, two panels side by side.

    Left, the main comparison: prequential accuracy (all samples so far) against labels
    used, so runs are compared at equal labeling cost even when one spends its budget
    sooner. The y axis spans the runs from the end of the first tenth of the stream on;
    the noisy start below it is cut. Right: accuracy over the most recent samples against
    samples seen, where a drift and the recovery from it show.

    Random sampling, the baseline every strategy has to beat, is drawn dashed in black.
    The legend, below the panels, lists the runs from the most to the least accurate with
    their final accuracy and the labels they used, so a run that spent less (or more)
    than the others shows it.
    """
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = max((r.samples for r in results), default=0)
    width = max(200, samples // 40)
    figure, (by_labels, by_samples) = plt.subplots(
        1, 2, figsize=(12, 5), dpi=110, gridspec_kw={"width_ratios": [3, 2]}
    )
    ranked = sorted(results, key=lambda r: r.accuracy, reverse=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, result in enumerate(ranked):
        style: dict[str, object] = {"color": colours[i % len(colours)], "linewidth": 1.4}
        if result.strategy == "random":
            style = {"color": "black", "linestyle": "--", "linewidth": 1.6}
        by_labels.plot(
            [p.labels for p in result.curve],
            [p.accuracy for p in result.curve],
            label=f"{_name(result)}: {result.accuracy:.3f} ({result.labels})",
            **style,
        )
        by_samples.plot(*recent_accuracy(result.curve, width), **style | {"linewidth": 1.0})

    y_range = _y_range(results)
    if y_range is not None:
        by_labels.set_ylim(*y_range)
    by_labels.set_xlabel("labels used")
    by_labels.set_ylabel("prequential accuracy (all samples so far)")
    by_labels.set_title(title)
    by_samples.set_xlabel(f"samples seen (of {samples})")
    by_samples.set_ylabel(f"accuracy over the last {width} samples")
    by_samples.set_title("recent accuracy (a drift shows here)")
    for axes in (by_labels, by_samples):
        axes.grid(alpha=0.3)
    # Below both panels, so that it hides no curve.
    rows = (len(results) + 2) // 3
    figure.legend(
        *by_labels.get_legend_handles_labels(),
        loc="lower center",
        ncol=3,
        fontsize=8,
        title="final prequential accuracy (labels used)",
        title_fontsize=8,
        frameon=False,
    )
    figure.tight_layout(rect=(0.0, 0.04 + 0.045 * rows, 1.0, 1.0))
    figure.savefig(path)
    plt.close(figure)
