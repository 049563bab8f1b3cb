"""Label efficiency: prequential accuracy against labels spent, for every query strategy.

For each dataset and budget B the table gives the prequential accuracy (every sample is
predicted before anything is learned from it, and every sample counts) and the realised
query rate (labels asked for / samples) of:

* ``all labels``: the same model learning every label, the ceiling;
* ``majority class, all labels``: river's ``PriorClassifier`` learning every label, which
  predicts without the features; where it beats ``all labels`` the model cannot represent
  the concept, and the verdicts say so (on the Agrawal function switch, logistic regression
  with every label is below it);
* ``random`` and every other strategy of ``stream_al`` with its default settings (margin
  measure, ``logreg`` model, 20 warm-up labels, 10 % exploration), replayed by
  ``stream_al.sim.simulate.simulate``, the code path of ``stream-al simulate``;
* river's ``active.EntropySampler`` around ``StandardScaler | LogisticRegression``
  (``OneVsRestClassifier`` beyond two classes), learning only when it asks: once as river
  ships it, once with the same 20 warm-up labels as ours. Its only budget knob is the
  ``discount_factor`` d (a sample is asked about with probability ``H ** d``, H the
  normalised entropy of the prediction), so d is tuned per cell by bisection until the
  realised rate is within ``--tolerance`` (5 %) of B; the table shows the tuned d;
* scikit-activeml 1.0.1's stream strategies as shipped (``bench/skactiveml_anchors.py``:
  VariableUncertainty, RandomVariableUncertainty, Split, StreamProbabilisticAL,
  CognitiveDualQueryStrategy, StreamDensityBasedAL), fed the same river model's
  probabilities, when scikit-activeml is installed (a dev dependency); ``--anchor-seeds``
  of them (1 by default: PAL costs about 4 ms per sample).

``--conditions`` replays each stream with its labels on time, 500 samples late
(``late-500``) or with 10 % of them wrong (``noise-10``), the same for every method.

The rate is printed next to every accuracy because it is not always B: a short stream
cannot repay the warm-up (phishing has 1250 samples, so at B = 0.01 its budget is 12.5
labels and the 20 warm-up labels alone are 1.6 %), and the windowed spending gate of the
textbook family forgets part of what it overspent. A ``+`` marks a rate more than 5 % over B.

Then, per dataset and budget, whether ``adaptive`` is at or above the best other method
among those whose realised rate stayed within 1.2 B (a method that overspent bought its
accuracy; late labels make a cold model ask about everything until the first one
arrives), and the reference points of the issue next to the same figures measured here.

Then, per table and budget, the **labels-saved ratio** of the default strategy: random
sampling is also run at ``RATIO_GRID`` times B, and the ratio is the number of labels
random needs to reach the default's accuracy (interpolated in log labels between the grid
points, over the random runs' mean accuracies) over the labels the default used; 2 is the
seed's "about half the labels". And whether the default is at or above the best anchor
(river's sampler, scikit-activeml's strategies; within 1.2 B) within one standard error
of the paired difference (of the default's mean when the anchor has one seed).

Every accuracy is printed as mean +- standard error over the seeds (the seed count of
each row is given where it is not ``--seeds``).

Run: ``python bench/label_efficiency.py [--seeds N] [--datasets ...] [--budgets ...]
[--strategies ...] [--json FILE]``. Figures are means over N policy seeds (42, 43, ...;
5 by default; the data streams are fixed). It runs on one core: one seed over the four
default datasets took about 30 s on the 2-core development machine before the random
grid of the ratio and the two model-scoring strategies were added, each further seed about
as much again; ``--strategies`` and ``--no-ratio`` cut it down.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, get_args

import skactiveml_anchors as skal
from river import active, dummy, linear_model, multiclass, preprocessing

from stream_al.core.config import LearnerConfig, StrategyConfig, StrategyName
from stream_al.core.types import Features
from stream_al.sim.datasets import DATASETS, Example, stream
from stream_al.sim.simulate import NoisyOracle, simulate

DEFAULT_DATASETS = ("phishing", "image-segments", "sea-drift", "hyperplane")
DEFAULT_BUDGETS = (0.01, 0.05, 0.1)
DEFAULT_SEEDS = 5
#: Multiples of B at which random sampling is run for the labels-saved ratio.
RATIO_GRID = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
RANDOM_AT = "random at {:g} B"
#: Our strategies, in table order: the baseline first, the default last.
STRATEGIES: tuple[StrategyName, ...] = (
    "random",
    *(name for name in get_args(StrategyName) if name not in ("random", "adaptive")),
    "adaptive",
)
#: What the issue calls the textbook strategies: all but the baseline and our default.
TEXTBOOK: tuple[StrategyName, ...] = tuple(s for s in STRATEGIES if s not in ("random", "adaptive"))
assert set(STRATEGIES) == set(get_args(StrategyName)), "a strategy is missing from the bench"


@dataclass(frozen=True, slots=True)
class Condition:
    """How labels come back: ``delay`` samples late, a share ``noise`` of them wrong."""

    name: str
    delay: int = 0
    noise: float = 0.0

    def table(self, dataset: str) -> str:
        """The name of the table of ``dataset`` under this condition."""
        return dataset if self.name == ON_TIME else f"{dataset} [{self.name}]"


ON_TIME = "on-time"
CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in (
        Condition(ON_TIME),
        Condition("late-500", delay=500),
        Condition("noise-10", noise=0.1),
    )
}
ALL_LABELS = "all labels"
#: The constant predictor: the majority class of the labels so far, learning every label.
MAJORITY = "majority class, all labels"
#: Rows that learn every label: one per table, not per budget.
EVERY_LABEL = (ALL_LABELS, MAJORITY)
#: Methods are compared with the default only at a realised rate of at most this times B.
FAIR_RATE = 1.2
RIVER = "river EntropySampler"
RIVER_WARM = "river EntropySampler + warm-up"
#: Warm-up labels given to the second river variant: the same as our default.
WARMUP = StrategyConfig().warmup
FIRST_SEED = 42
#: The strategy the verdicts and the labels-saved ratio are about: the default one.
DEFAULT = StrategyConfig().name

#: Reference points quoted in the issue: (dataset, budget or None for all labels, what, value).
REFERENCES: tuple[tuple[str, float | None, str, float], ...] = (
    ("phishing", None, "all labels", 0.893),
    ("phishing", 0.1, "random", 0.869),
    ("phishing", 0.1, "best textbook", 0.888),
    ("phishing", 0.01, "random", 0.704),
    ("phishing", 0.01, "best textbook", 0.770),
    ("image-segments", None, "all labels", 0.796),
    ("image-segments", 0.1, "random", 0.630),
    ("image-segments", 0.1, "best textbook", 0.706),
    ("sea-drift", 0.1, "best textbook", 0.980),
)


@dataclass
class Cell:
    """One method on one dataset at one budget, over every seed."""

    dataset: str
    method: str
    #: None for the all-labels run.
    budget: float | None
    samples: int
    seeds: list[int]
    accuracy: list[float]
    rate: list[float]
    labels: list[int]
    #: Method-specific figures: queries by reason, the tuned discount factor, notes.
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_accuracy(self) -> float:
        return statistics.fmean(self.accuracy)

    @property
    def mean_rate(self) -> float:
        return statistics.fmean(self.rate)

    @property
    def se_accuracy(self) -> float | None:
        """Standard error of the mean accuracy; None with one seed."""
        if len(self.accuracy) < 2:
            return None
        return statistics.stdev(self.accuracy) / math.sqrt(len(self.accuracy))

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "mean_accuracy": self.mean_accuracy,
            "se_accuracy": self.se_accuracy,
            "mean_rate": self.mean_rate,
        }


# ------------------------------------------------------------------------ our strategies


def run_strategy(
    examples: Sequence[Example],
    dataset: str,
    name: StrategyName,
    budget: float,
    seeds: list[int],
    condition: Condition = CONDITIONS[ON_TIME],
    method: str | None = None,
    cell_budget: float | None = None,
) -> Cell:
    """Default settings of strategy ``name`` at ``budget``, one simulation per policy seed.

    ``method`` and ``cell_budget`` file the cell under another row and column (random
    run at a multiple of B for the labels-saved ratio).
    """
    cell = Cell(
        condition.table(dataset),
        method or name,
        budget if cell_budget is None else cell_budget,
        len(examples),
        seeds,
        [],
        [],
        [],
    )
    reasons: list[dict[str, int]] = []
    cpu: list[float] = []
    for seed in seeds:
        config = LearnerConfig(strategy=StrategyConfig(name=name, budget=budget, seed=seed))
        started = time.process_time()
        result = simulate(
            examples,
            config,
            dataset=dataset,
            seed=seed,
            label_delay=condition.delay,
            label_noise=condition.noise,
        )
        cpu.append(1e6 * (time.process_time() - started) / max(1, len(examples)))
        cell.accuracy.append(result.accuracy)
        cell.rate.append(result.query_rate)
        cell.labels.append(result.labels)
        reasons.append(result.queries_by_reason)
    cell.detail["queries_by_reason"] = reasons
    # Process CPU per sample of the whole replay (model, measure, strategy).
    cell.detail["cpu_us_per_sample"] = cpu
    return cell


def run_all_labels(
    examples: Sequence[Example], dataset: str, condition: Condition = CONDITIONS[ON_TIME]
) -> Cell:
    """The same model and code path learning every label (random sampling at B = 1)."""
    # Without exploration the paced random rate is min(1, 1 + deficit) = 1: every sample.
    strategy = StrategyConfig(name="random", budget=1.0, exploration=0.0, warmup=0)
    result = simulate(
        examples,
        LearnerConfig(strategy=strategy),
        dataset=dataset,
        seed=FIRST_SEED,
        label_delay=condition.delay,
        label_noise=condition.noise,
    )
    if result.labels != result.samples:
        raise RuntimeError(f"all-labels run on {dataset} asked {result.labels}/{result.samples}")
    return Cell(
        condition.table(dataset),
        ALL_LABELS,
        None,
        result.samples,
        [FIRST_SEED],
        [result.accuracy],
        [result.query_rate],
        [result.labels],
    )


def run_majority(
    examples: Sequence[Example], dataset: str, condition: Condition = CONDITIONS[ON_TIME]
) -> Cell:
    """river's ``PriorClassifier`` (the majority class so far) learning every label, late
    and noisy as ``condition`` says: the accuracy of predicting without the features.

    Where it beats ``all labels`` the model cannot represent the concept, and a strategy's
    accuracy there says how close its labels drive the model to this constant.
    """
    model = dummy.PriorClassifier()
    oracle = NoisyOracle(sorted({e.label for e in examples}), condition.noise, FIRST_SEED)
    in_flight: deque[tuple[int, str]] = deque()
    correct = 0
    for step, example in enumerate(examples):
        while in_flight and in_flight[0][0] <= step:
            model.learn_one({}, in_flight.popleft()[1])
        correct += model.predict_one({}) == example.label
        in_flight.append((step + condition.delay + 1, oracle.answer(example.label)))
    n = len(examples)
    return Cell(
        condition.table(dataset), MAJORITY, None, n, [FIRST_SEED], [correct / n], [1.0], [n]
    )


# ------------------------------------------------------------------ river EntropySampler


@dataclass(frozen=True, slots=True)
class SamplerRun:
    accuracy: float
    labels: int
    samples: int
    #: Index of the last sample learned (-1: none), to tell a deadlock from a thin budget.
    last_label_at: int
    #: Samples whose prediction named fewer than two classes: zero entropy, so the sampler
    #: cannot ask about them whatever its discount factor.
    certain: int

    @property
    def rate(self) -> float:
        return self.labels / self.samples


class EntropySamplerRunner:
    """Prequential replay of ``river.active.EntropySampler`` on one dataset.

    The wrapped model is ``StandardScaler | LogisticRegression``; river's logistic
    regression is binary (labels are booleans), so on two classes the larger class label
    (``true``, ``1``) is mapped to True, and beyond two classes the regression goes inside
    river's ``OneVsRestClassifier``.
    """

    def __init__(
        self, examples: Sequence[Example], warmup: int, condition: Condition = CONDITIONS[ON_TIME]
    ) -> None:
        self.examples = examples
        self.warmup = warmup
        self.condition = condition
        classes = sorted({e.label for e in examples})
        self.positive: str | None = classes[-1] if len(classes) == 2 else None

    def _model(self) -> Any:
        classifier: Any = linear_model.LogisticRegression()
        if self.positive is None:
            classifier = multiclass.OneVsRestClassifier(classifier)
        return preprocessing.StandardScaler() | classifier

    def run(self, discount_factor: float, seed: int) -> SamplerRun:
        sampler = active.EntropySampler(self._model(), discount_factor=discount_factor, seed=seed)
        positive = self.positive
        oracle = NoisyOracle([e.label for e in self.examples], self.condition.noise, seed)
        # Labels in flight: (index at which it arrives, features, label), as in simulate.
        in_flight: deque[tuple[int, Features, Any]] = deque()
        correct = labels = certain = 0
        last = -1
        for i, example in enumerate(self.examples):
            while in_flight and in_flight[0][0] <= i:
                _, features, answer = in_flight.popleft()
                sampler.learn_one(features, answer)
            x = example.features
            y: Any = example.label if positive is None else example.label == positive
            # The sampler's own predict_one, spelled out to also see the probabilities.
            proba, ask = sampler.predict_proba_one(x)
            predicted = max(proba, key=proba.__getitem__) if proba else None
            correct += predicted == y
            certain += sum(p > 0.0 for p in proba.values()) < 2
            if ask or i < self.warmup:
                answer: Any = oracle.answer(example.label)
                if positive is not None:
                    answer = answer == positive
                in_flight.append((i + self.condition.delay + 1, x, answer))
                labels += 1
                last = i
        n = len(self.examples)
        return SamplerRun(correct / n if n else 0.0, labels, n, last, certain)


@dataclass
class Tuning:
    factor: float
    runs: list[SamplerRun]
    evaluations: int
    within_tolerance: bool
    #: False when even d = 0 (ask about every sample with non-zero entropy) stays below B.
    reachable: bool


def tune_discount_factor(
    evaluate: Callable[[float], list[SamplerRun]],
    budget: float,
    tolerance: float,
    max_evaluations: int = 40,
) -> Tuning:
    """Bisect ``d`` until the mean realised rate is within ``tolerance`` (relative) of B.

    The rate falls as d grows (``H ** d`` shrinks for every H < 1), though not strictly:
    each d trains a different model. The search brackets B between d = 0 and powers of
    ten, then bisects ``log(1 + d)``, which handles d = 0 and spans many decades. The
    closest d found is returned whether or not it reaches the tolerance.
    """
    tried: dict[float, list[SamplerRun]] = {}

    def rate(d: float) -> float:
        if d not in tried:
            tried[d] = evaluate(d)
        return statistics.fmean(r.rate for r in tried[d])

    def close(d: float) -> bool:
        return abs(rate(d) - budget) <= tolerance * budget

    def result(reachable: bool = True) -> Tuning:
        best = min(tried, key=lambda d: (abs(rate(d) - budget), d))
        return Tuning(best, tried[best], len(tried), close(best), reachable)

    if rate(0.0) < budget and not close(0.0):
        return result(reachable=False)
    low, high = 0.0, 1.0
    while rate(high) > budget and not close(high):
        if high >= 1e12:
            return result()
        low, high = high, high * 10.0
    low_t, high_t = math.log1p(low), math.log1p(high)
    while not close(high) and not close(low) and len(tried) < max_evaluations:
        mid = math.expm1((low_t + high_t) / 2.0)
        if rate(mid) > budget:
            low, low_t = mid, math.log1p(mid)
        else:
            high, high_t = mid, math.log1p(mid)
        if close(mid) or high_t - low_t < 1e-12:
            break
    return result()


def run_entropy_sampler(
    examples: Sequence[Example],
    dataset: str,
    budget: float,
    seeds: list[int],
    warmup: int,
    tolerance: float,
    condition: Condition = CONDITIONS[ON_TIME],
) -> Cell:
    runner = EntropySamplerRunner(examples, warmup, condition)
    tuning = tune_discount_factor(
        lambda d: [runner.run(d, seed) for seed in seeds], budget, tolerance
    )
    runs = tuning.runs
    cell = Cell(
        condition.table(dataset),
        RIVER_WARM if warmup else RIVER,
        budget,
        len(examples),
        seeds,
        [r.accuracy for r in runs],
        [r.rate for r in runs],
        [r.labels for r in runs],
    )
    cell.detail = {
        "discount_factor": tuning.factor,
        "evaluations": tuning.evaluations,
        "within_tolerance": tuning.within_tolerance,
        "reachable": tuning.reachable,
        "warmup": warmup,
        "last_label_at": [r.last_label_at for r in runs],
        "certain_predictions": [r.certain for r in runs],
    }
    return cell


# ------------------------------------------------------------- scikit-activeml anchors


def run_anchor(
    examples: Sequence[Example],
    dataset: str,
    name: str,
    budget: float,
    seeds: list[int],
    condition: Condition = CONDITIONS[ON_TIME],
) -> Cell:
    """scikit-activeml strategy ``name`` as shipped, on the bench's model (see the module)."""
    runs = [
        skal.run_anchor(
            examples, name, budget, seed, label_delay=condition.delay, label_noise=condition.noise
        )
        for seed in seeds
    ]
    cell = Cell(
        condition.table(dataset),
        skal.anchor_name(name),
        budget,
        len(examples),
        seeds,
        [r.accuracy for r in runs],
        [r.rate for r in runs],
        [r.labels for r in runs],
    )
    cell.detail["us_per_sample"] = [1e6 * r.seconds / r.samples for r in runs]
    return cell


# ------------------------------------------------------------------------------ report


def _method_order(cells: Sequence[Cell]) -> list[str]:
    order = [*EVERY_LABEL, *STRATEGIES, RIVER, RIVER_WARM, *map(skal.anchor_name, skal.ANCHORS)]
    order += sorted({c.method for c in cells if c.method.startswith("random at")}, key=_multiple)
    present = {c.method for c in cells}
    return [m for m in order if m in present]


def _multiple(method: str) -> float:
    return float(method.split()[2])


def _factor(d: float) -> str:
    return f"{d:.3g}" if d < 1e4 else f"{d:.2e}"


def format_dataset(
    dataset: str, cells: Sequence[Cell], budgets: Sequence[float], seeds: int
) -> list[str]:
    """The accuracy / rate table of one dataset, one column pair per budget."""
    by_key = {(c.method, c.budget): c for c in cells if c.dataset == dataset}
    samples = by_key[(ALL_LABELS, None)].samples
    lines = [
        f"{dataset}: {samples} samples, logreg, margin; mean of {seeds} policy seed(s)",
        f"  {'':<40}" + "".join(f"{'B = ' + format(b, 'g'):>26}   " for b in budgets),
        f"  {'method':<40}" + "".join(f"{'acc +- se':>17}{'rate':>9}   " for _ in budgets),
    ]
    notes: list[str] = []
    for method in _method_order([c for c in cells if c.dataset == dataset]):
        row = f"  {method:<40}"
        for b in budgets:
            cell = by_key.get((method, None if method in EVERY_LABEL else b))
            if cell is None:
                row += f"{'':>26}   "
                continue
            over = method not in EVERY_LABEL and cell.mean_rate > 1.05 * b
            se = cell.se_accuracy
            acc = f"{cell.mean_accuracy:.4f}" + ("" if se is None else f" +- {se:.4f}")
            row += f"{acc:>17}{cell.mean_rate:>9.4f}{'+' if over else ' ':<3}"
        n = {len(c.seeds) for c in cells if c.dataset == dataset and c.method == method}
        if method not in EVERY_LABEL and n != {seeds}:
            row += f" [{'/'.join(map(str, sorted(n)))} seed(s)]"
        lines.append(row.rstrip())
        if method in (RIVER, RIVER_WARM):
            notes.append(_river_note(method, [by_key[(method, b)] for b in budgets]))
    lines.extend(notes)
    return lines


def _river_note(method: str, cells: Sequence[Cell]) -> str:
    parts = []
    for cell in cells:
        d = cell.detail
        budget = cell.budget
        assert budget is not None, "river cells always have a budget"
        text = f"B={budget:g}: d={_factor(d['discount_factor'])}"
        if not d["reachable"]:
            text += " (unreachable: asks less than B even at d=0)"
        elif d["warmup"] > budget * cell.samples * 1.05:
            text += f" (unreachable: the {d['warmup']} warm-up labels alone exceed B)"
        elif not d["within_tolerance"]:
            text += f" (tolerance not met: rate {cell.mean_rate:.4f})"
        certain = min(d["certain_predictions"])
        last = max(d["last_label_at"])
        if certain >= cell.samples // 2:
            # Zero-entropy predictions cannot be asked about at any d: stuck for good.
            text += f" [deadlocked: {certain}/{cell.samples} zero-entropy predictions]"
        elif last < cell.samples // 2:
            text += f" [no label after sample {last}]"
        parts.append(text)
    return f"    {method} tuned: " + "; ".join(parts)


def adaptive_verdicts(
    cells: Sequence[Cell], datasets: Sequence[str], budgets: Sequence[float]
) -> list[dict[str, Any]]:
    """Per dataset and budget: adaptive against the best other budgeted method."""
    verdicts = []
    for dataset in datasets:
        for b in budgets:
            here = [
                c
                for c in cells
                if c.dataset == dataset and c.budget == b and not c.method.startswith("random at")
            ]
            adaptive = next(c for c in here if c.method == DEFAULT)
            # A method that spent more than 1.2 B bought its accuracy: not a fair anchor.
            others = [c for c in here if c.method != DEFAULT and c.mean_rate <= FAIR_RATE * b]
            best = max(others, key=lambda c: c.mean_accuracy)
            # Same seeds on both sides: the paired difference cancels what the seed shares
            # (an anchor run with fewer seeds is compared on the seeds it has).
            diffs = [a - o for a, o in zip(adaptive.accuracy, best.accuracy, strict=False)]
            verdicts.append(
                {
                    "difference": statistics.fmean(diffs),
                    "difference_se": (
                        statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
                    ),
                    "dataset": dataset,
                    "budget": b,
                    "adaptive_accuracy": adaptive.mean_accuracy,
                    "adaptive_rate": adaptive.mean_rate,
                    "best_other": best.method,
                    "best_other_accuracy": best.mean_accuracy,
                    "best_other_rate": best.mean_rate,
                    "at_or_above": adaptive.mean_accuracy >= best.mean_accuracy,
                    **anchor_verdict(adaptive, here, b),
                    **{
                        c.method: c.mean_accuracy
                        for c in cells
                        if c.dataset == dataset and c.method in EVERY_LABEL
                    },
                }
            )
    return verdicts


def is_anchor(method: str) -> bool:
    """River's sampler and scikit-activeml's strategies: the anchors of the issue's target."""
    return method in (RIVER, RIVER_WARM) or method.startswith("skactiveml")


def anchor_verdict(default: Cell, here: Sequence[Cell], budget: float) -> dict[str, Any]:
    """The default against the best anchor within 1.2 B: at or above within one SE?

    The SE is that of the paired difference over the seeds both have; with one common seed
    (a one-seed anchor) the default's own SE.
    """
    anchors = [c for c in here if is_anchor(c.method) and c.mean_rate <= FAIR_RATE * budget]
    if not anchors:
        return {"best_anchor": None}
    best = max(anchors, key=lambda c: c.mean_accuracy)
    diffs = [a - o for a, o in zip(default.accuracy, best.accuracy, strict=False)]
    diff = default.mean_accuracy - best.mean_accuracy
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
    if se is None:
        se = default.se_accuracy
    if diff >= 0.0:
        mark = "at/above"
    elif se is not None and diff + se >= 0.0:
        mark = "within 1 se"
    else:
        mark = "LOST"
    return {
        "best_anchor": best.method,
        "best_anchor_accuracy": best.mean_accuracy,
        "best_anchor_rate": best.mean_rate,
        "best_anchor_seeds": len(best.seeds),
        "anchor_difference": diff,
        "anchor_difference_se": se,
        "anchor_mark": mark,
    }


def labels_saved(cells: Sequence[Cell], table: str, budget: float) -> dict[str, Any] | None:
    """Labels random needs to reach the default's accuracy, over the labels it used."""
    default = next(
        (c for c in cells if c.dataset == table and c.budget == budget and c.method == DEFAULT),
        None,
    )
    grid = sorted(
        (
            (statistics.fmean(c.labels), c.mean_accuracy)
            for c in cells
            if c.dataset == table and c.budget == budget and c.method.startswith("random at")
        ),
    )
    if default is None or not grid:
        return None
    used = statistics.fmean(default.labels)
    target = default.mean_accuracy
    needed: float | None = None
    if grid[0][1] >= target:
        needed = grid[0][0]
    for (l0, a0), (l1, a1) in itertools.pairwise(grid):
        if needed is None and a0 < target <= a1:
            t = (target - a0) / (a1 - a0)
            needed = math.exp(math.log(l0) + t * (math.log(l1) - math.log(l0)))
    return {
        "dataset": table,
        "budget": budget,
        "default_accuracy": target,
        "default_labels": used,
        "random_labels_needed": needed,
        "ratio": None if needed is None else needed / used,
        "ratio_at_least": grid[-1][0] / used if needed is None else None,
    }


def format_labels_saved(rows: Sequence[dict[str, Any] | None]) -> list[str]:
    lines = [
        f"labels-saved ratio of {DEFAULT} (labels random needs for its accuracy / its labels):"
    ]
    for r in rows:
        if r is None:
            continue
        if r["ratio"] is None:
            ratio = f"> {r['ratio_at_least']:.2f} (random never reaches it on the grid)"
        else:
            ratio = f"{r['ratio']:.2f}" + ("  (>= 2: bar met)" if r["ratio"] >= 2 else "")
        lines.append(
            f"  {r['dataset']:<26} B={r['budget']:<5g} {DEFAULT} {r['default_accuracy']:.4f} "
            f"with {r['default_labels']:.1f} labels; ratio {ratio}"
        )
    return lines


def format_verdicts(verdicts: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "adaptive against the best other method (random, textbook, river, scikit-activeml) "
        f"at a rate <= {FAIR_RATE:g} B:"
    ]
    for v in verdicts:
        se = v["difference_se"]
        diff = f"{v['difference']:+.4f}" + ("" if se is None else f" +- {se:.4f} se")
        lines.append(
            f"  {v['dataset']:<26} B={v['budget']:<5g} adaptive {v['adaptive_accuracy']:.4f} "
            f"(rate {v['adaptive_rate']:.4f})  best other {v['best_other_accuracy']:.4f} "
            f"{v['best_other']} (rate {v['best_other_rate']:.4f})  "
            f"{'at/above' if v['at_or_above'] else 'BELOW'} ({diff})"
        )
    lines += ["", f"{DEFAULT} against the best anchor (river, scikit-activeml) at a rate <= 1.2 B:"]
    for v in verdicts:
        if v.get("best_anchor") is None:
            lines.append(f"  {v['dataset']:<26} B={v['budget']:<5g} no anchor within 1.2 B")
            continue
        se = v["anchor_difference_se"]
        diff = f"{v['anchor_difference']:+.4f}" + ("" if se is None else f" +- {se:.4f}")
        lines.append(
            f"  {v['dataset']:<26} B={v['budget']:<5g} {v['adaptive_accuracy']:.4f} against "
            f"{v['best_anchor_accuracy']:.4f} {v['best_anchor']} ({v['best_anchor_seeds']} "
            f"seed(s), rate {v['best_anchor_rate']:.4f}): {v['anchor_mark']} ({diff})"
            + _below_majority(v)
        )
    return lines


def _below_majority(verdict: dict[str, Any]) -> str:
    """A note when the model learning every label predicts worse than the majority class."""
    every, majority = verdict.get(ALL_LABELS), verdict.get(MAJORITY)
    if every is None or majority is None or every >= majority:
        return ""
    return (
        f" [the model with every label ({every:.4f}) is below the majority class "
        f"({majority:.4f}): this cell ranks how near a strategy's labels drive it to the constant]"
    )


def format_costs(cells: Sequence[Cell], tables: Sequence[str]) -> list[str]:
    """Process CPU per sample of each stream_al strategy (the whole replay), per table."""
    lines = ["process CPU per sample of the replay (us; model + measure + strategy), mean:"]
    for table in tables:
        by_method: dict[str, list[float]] = {}
        for c in cells:
            own = "cpu_us_per_sample" in c.detail and not c.method.startswith("random at")
            if c.dataset == table and own:
                by_method.setdefault(c.method, []).extend(c.detail["cpu_us_per_sample"])
        parts = [f"{m} {statistics.fmean(v):.0f}" for m, v in by_method.items()]
        lines.append(f"  {table:<26} " + ", ".join(parts))
    return lines


def reference_rows(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """The issue's reference points that this run covers, with the figures measured here."""
    rows = []
    for dataset, budget, what, value in REFERENCES:
        here = [c for c in cells if c.dataset == dataset and c.budget == budget]
        if budget is None:
            here = [c for c in cells if c.dataset == dataset and c.method == ALL_LABELS]
        if not here:
            continue
        if what == "best textbook":
            cell = max((c for c in here if c.method in TEXTBOOK), key=lambda c: c.mean_accuracy)
        else:
            cell = next(c for c in here if c.method == (ALL_LABELS if budget is None else what))
        adaptive = next((c for c in here if c.method == "adaptive"), None)
        rows.append(
            {
                "dataset": dataset,
                "budget": budget,
                "what": what,
                "issue": value,
                "here": cell.mean_accuracy,
                "here_method": cell.method,
                "here_rate": cell.mean_rate,
                "adaptive_here": None if adaptive is None else adaptive.mean_accuracy,
            }
        )
    return rows


def format_references(rows: Sequence[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [
        "reference points of the issue (accuracy) against this run:",
        f"  {'dataset':<15}{'B':<6}{'what':<15}{'issue':>7}{'here':>8}{'rate':>8}"
        f"  {'(which)':<33}{'adaptive':>8}",
    ]
    for r in rows:
        budget = "all" if r["budget"] is None else f"{r['budget']:g}"
        adaptive = "" if r["adaptive_here"] is None else f"{r['adaptive_here']:.4f}"
        lines.append(
            f"  {r['dataset']:<15}{budget:<6}{r['what']:<15}{r['issue']:>7.3f}{r['here']:>8.4f}"
            f"{r['here_rate']:>8.4f}  {r['here_method']:<33}{adaptive:>8}"
        )
    return lines


# -------------------------------------------------------------------------------- main


def run(
    datasets: Sequence[str],
    budgets: Sequence[float],
    seeds: list[int],
    tolerance: float,
    limit: int | None,
    progress: Callable[[str], None] = print,
    conditions: Sequence[Condition] = (CONDITIONS[ON_TIME],),
    anchors: Sequence[str] = (),
    anchor_seeds: int = 1,
    strategies: Sequence[StrategyName] = STRATEGIES,
    ratio: bool = True,
) -> tuple[list[Cell], dict[str, float]]:
    """Every cell of the table, and seconds spent per table (dataset and condition)."""
    cells: list[Cell] = []
    timings: dict[str, float] = {}
    for dataset in datasets:
        examples = list(stream(dataset, seed=FIRST_SEED, limit=limit))
        for condition in conditions:
            start = time.perf_counter()
            cells.append(run_all_labels(examples, dataset, condition))
            cells.append(run_majority(examples, dataset, condition))
            for b in budgets:
                for name in strategies:
                    cells.append(run_strategy(examples, dataset, name, b, seeds, condition))
                if ratio:
                    for k in RATIO_GRID:
                        if k * b <= 1.0:
                            cells.append(
                                run_strategy(
                                    examples,
                                    dataset,
                                    "random",
                                    k * b,
                                    seeds,
                                    condition,
                                    method=RANDOM_AT.format(k),
                                    cell_budget=b,
                                )
                            )
                for warmup in (0, WARMUP):
                    cells.append(
                        run_entropy_sampler(
                            examples, dataset, b, seeds, warmup, tolerance, condition
                        )
                    )
                for anchor in anchors:
                    cells.append(
                        run_anchor(examples, dataset, anchor, b, seeds[:anchor_seeds], condition)
                    )
            table = condition.table(dataset)
            timings[table] = time.perf_counter() - start
            # Each table as soon as it is done: a long run shows its figures as it goes.
            progress("\n".join(format_dataset(table, cells, budgets, len(seeds))))
            progress(f"[{table}: {timings[table]:.1f} s]")
    return cells, timings


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, default=DEFAULT_SEEDS, help="policy seeds to average over"
    )
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=STRATEGIES,
        default=list(STRATEGIES),
        help=f"stream_al strategies to run (random and {DEFAULT} are always run)",
    )
    parser.add_argument(
        "--no-ratio", action="store_true", help="skip the random runs of the labels-saved ratio"
    )
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=DEFAULT_DATASETS)
    parser.add_argument("--budgets", nargs="+", type=float, default=DEFAULT_BUDGETS)
    parser.add_argument("--limit", type=int, default=None, help="first N samples of each stream")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="relative distance to B at which the river discount factor is accepted",
    )
    parser.add_argument(
        "--conditions",
        nargs="+",
        choices=list(CONDITIONS),
        default=[ON_TIME],
        help="how labels come back: on time, 500 samples late, 10 %% of them wrong",
    )
    parser.add_argument(
        "--anchors",
        nargs="*",
        choices=skal.ANCHORS,
        default=None,
        help="scikit-activeml strategies to run (default: all when it is installed)",
    )
    parser.add_argument(
        "--anchor-seeds", type=int, default=1, help="seeds for the (slow) scikit-activeml runs"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    anchors = args.anchors
    if anchors is None:
        anchors = list(skal.ANCHORS) if skal.available() else []
    elif anchors and not skal.available():
        parser.error("--anchors needs scikit-activeml (pip install -e '.[dev]')")
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if not all(0.0 < b <= 1.0 for b in args.budgets):
        parser.error("--budgets must be in (0, 1]")
    if not 0.0 < args.tolerance < 1.0:
        parser.error("--tolerance must be in (0, 1)")
    budgets = sorted(set(args.budgets))
    seeds = list(range(FIRST_SEED, FIRST_SEED + args.seeds))

    start = time.perf_counter()
    conditions = [CONDITIONS[name] for name in args.conditions]
    cells, timings = run(
        args.datasets,
        budgets,
        seeds,
        args.tolerance,
        args.limit,
        conditions=conditions,
        anchors=anchors,
        anchor_seeds=min(args.anchor_seeds, len(seeds)),
        strategies=[s for s in STRATEGIES if s in {*args.strategies, "random", DEFAULT}],
        ratio=not args.no_ratio,
    )
    elapsed = time.perf_counter() - start

    tables = [c.table(d) for d in args.datasets for c in conditions]
    lines: list[str] = []
    for table in tables:
        lines += ["", *format_dataset(table, cells, budgets, len(seeds))]
    lines += ["  acc: prequential accuracy; rate: labels / samples; + rate > 1.05 B", ""]
    verdicts = adaptive_verdicts(cells, tables, budgets)
    lines += format_verdicts(verdicts)
    saved = [labels_saved(cells, t, b) for t in tables for b in budgets]
    if not args.no_ratio:
        lines += ["", *format_labels_saved(saved)]
    lines += ["", *format_costs(cells, tables)]
    references = reference_rows(cells)
    if references:
        lines += ["", *format_references(references)]
    lines += ["", f"wall time {elapsed:.1f} s ({len(seeds)} seed(s))"]
    print("\n".join(lines))

    if args.json:
        report = {
            "datasets": list(args.datasets),
            "budgets": budgets,
            "seeds": seeds,
            "tolerance": args.tolerance,
            "limit": args.limit,
            "conditions": [asdict(c) for c in conditions],
            "anchors": anchors,
            "elapsed_seconds": elapsed,
            "seconds_per_dataset": timings,
            "cells": [c.to_json() for c in cells],
            "adaptive_verdicts": verdicts,
            "labels_saved": [r for r in saved if r is not None],
            "references": references,
        }
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
