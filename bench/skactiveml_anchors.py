"""scikit-activeml 1.0.1's stream strategies, as shipped, on the bench's model and streams.

Each strategy of ``skactiveml.stream`` decides about one candidate at a time from class
probabilities. Here those probabilities come from the same river model every other
method of the bench uses (``stream_al``'s ``logreg``, ``build_model(ModelConfig())``),
wrapped as a ``SkactivemlClassifier``; the model learns only the labels the strategy
asked for, delayed and noisy as the bench's condition says, exactly like
``stream_al.sim.simulate``. Accuracy is prequential (every sample predicted before any
label of it is learned). Strategies run with their default budget managers and settings;
only ``budget`` and ``random_state`` are given, plus, for ``StreamProbabilisticAL``, the
RBF kernel frequency estimate (``metric="rbf"``) over the labels learned so far, which
that strategy needs to turn probabilities into label counts.

scikit-activeml is a dev dependency (``pip install -e ".[dev]"``), never one of the
service: it is imported only when this module is used.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_al.core.config import ModelConfig
from stream_al.core.models import build_model
from stream_al.sim.datasets import Example
from stream_al.sim.simulate import NoisyOracle

#: The anchors, in table order; each name is ``skactiveml <class name>``.
ANCHORS: tuple[str, ...] = (
    "VariableUncertainty",
    "RandomVariableUncertainty",
    "Split",
    "StreamProbabilisticAL",
    "CognitiveDualQueryStrategy",
    "StreamDensityBasedAL",
)
#: Labelled samples the PAL kernel frequency estimate looks back on (it refits per sample).
PAL_WINDOW = 500


def anchor_name(strategy: str) -> str:
    return f"skactiveml {strategy}"


def available() -> bool:
    """Whether scikit-activeml is installed (it is a dev dependency only)."""
    try:
        import skactiveml  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class AnchorRun:
    accuracy: float
    labels: int
    samples: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.labels / self.samples if self.samples else 0.0


class _Vectoriser:
    """Feature dicts to rows of floats (numeric features; booleans as 0 / 1)."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.names = sorted({name for e in examples for name in e.features})

    def row(self, features: dict[str, Any]) -> list[float]:
        return [float(features.get(name, 0.0)) for name in self.names]


def _river_classifier(classes: list[str], rows: dict[bytes, dict[str, Any]], model: Any) -> Any:
    """A ``SkactivemlClassifier`` whose probabilities are the river model's."""
    from skactiveml.base import SkactivemlClassifier

    class RiverProbabilities(SkactivemlClassifier):  # type: ignore[misc]
        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> RiverProbabilities:
            return self  # the river model learns outside, label by label

        def predict_proba(self, X: Any) -> np.ndarray:
            out = np.empty((len(X), len(classes)))
            uniform = 1.0 / len(classes)
            for i, row in enumerate(np.asarray(X, dtype=float)):
                proba = model.predict_proba_one(rows[row.tobytes()])
                total = sum(proba.get(c, 0.0) for c in classes)
                for j, c in enumerate(classes):
                    out[i, j] = proba.get(c, 0.0) / total if total > 0 else uniform
            return out

    clf = RiverProbabilities(classes=np.array(classes), missing_label=None)
    clf.classes_ = np.array(classes)
    return clf


def _strategy(name: str, budget: float, seed: int) -> Any:
    from skactiveml import stream as sk

    if name == "StreamProbabilisticAL":
        return sk.StreamProbabilisticAL(metric="rbf", budget=budget, random_state=seed)
    return getattr(sk, name)(budget=budget, random_state=seed)


def run_anchor(
    examples: Sequence[Example],
    name: str,
    budget: float,
    seed: int,
    *,
    label_delay: int = 0,
    label_noise: float = 0.0,
) -> AnchorRun:
    """One prequential run of skactiveml strategy ``name`` at ``budget``."""
    start = time.process_time()
    classes = sorted({e.label for e in examples})
    vectoriser = _Vectoriser(examples)
    model = build_model(ModelConfig())
    rows: dict[bytes, dict[str, Any]] = {}
    clf = _river_classifier(classes, rows, model)
    strategy = _strategy(name, budget, seed)
    oracle = NoisyOracle(classes, label_noise, seed)
    in_flight: deque[tuple[int, dict[str, Any], list[float], str]] = deque()
    labelled_x: deque[list[float]] = deque(maxlen=PAL_WINDOW)
    labelled_y: deque[str] = deque(maxlen=PAL_WINDOW)
    pal = name == "StreamProbabilisticAL"
    correct = labels = 0
    for step, example in enumerate(examples):
        while in_flight and in_flight[0][0] <= step:
            _, features, row, label = in_flight.popleft()
            model.learn_one(features, label)
            labelled_x.append(row)
            labelled_y.append(label)
        proba = model.predict_proba_one(example.features)
        predicted = max(proba, key=proba.__getitem__) if proba else None
        correct += predicted == example.label
        row = vectoriser.row(example.features)
        candidate = np.array([row], dtype=float)
        rows.clear()
        rows[candidate[0].tobytes()] = example.features
        kwargs: dict[str, Any] = {}
        if pal:
            # PAL's kernel frequency estimate needs the labelled data (none: all missing).
            if labelled_x:
                kwargs = {"X": np.array(labelled_x), "y": np.array(labelled_y, dtype=object)}
            else:
                kwargs = {"X": candidate, "y": np.array([None], dtype=object)}
        picked, utilities = strategy.query(candidate, clf, return_utilities=True, **kwargs)
        strategy.update(candidate, picked, budget_manager_param_dict={"utilities": utilities})
        if len(picked):
            labels += 1
            answer = oracle.answer(example.label)
            in_flight.append((step + label_delay + 1, example.features, row, answer))
    n = len(examples)
    return AnchorRun(correct / n if n else math.nan, labels, n, time.process_time() - start)
