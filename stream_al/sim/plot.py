"""Learning curves of several runs on one chart."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stream_al.sim.simulate import SimulationResult


def plot_curves(results: Sequence[SimulationResult], path: Path, title: str) -> None:
    """Draw prequential accuracy against labels used, one line per run, into a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # matplotlib is a dev extra, not a service dependency
        raise RuntimeError("--plot needs matplotlib: pip install 'stream_al[dev]'") from exc

    figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
    for result in results:
        labels = [point.labels for point in result.curve]
        accuracy = [point.accuracy for point in result.curve]
        name = "random" if result.strategy == "random" else f"{result.strategy} / {result.measure}"
        axes.plot(labels, accuracy, label=f"{name}: {result.accuracy:.3f}", linewidth=1.4)
    axes.set_xlabel("labels used")
    axes.set_ylabel("prequential accuracy (all samples so far)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
