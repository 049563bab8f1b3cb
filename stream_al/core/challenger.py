"""After a drift: a fresh model that replaces the current one only once it does better.

Rebuilding the model at once on every detected drift costs accuracy wherever the old model
was still good: on a gradual drift, after a change the old model weathers, on a false alarm.
A challenger is trained on the labels from the detection on, beside the current model; each
label is first predicted by both. Once it has dueled ``min_labels`` labels and was right
more often than the current model, it replaces it; if it has not after ``20 * min_labels``,
it is dropped and the current model stays.

>>> class Constant:
...     def __init__(self, label): self.label = label
...     def predict_proba_one(self, x): return {self.label: 1.0}
...     def learn_one(self, x, y): pass
>>> duel = Challenger(Constant("b"), min_labels=3)
>>> [duel.duel(Constant("a"), {}, "b") for _ in range(3)]
[None, None, True]
"""

from __future__ import annotations

from typing import Any, Protocol

from stream_al.core.types import ClassLabel, Features


class _Model(Protocol):
    def predict_proba_one(self, x: Any) -> Any: ...

    def learn_one(self, x: Any, y: Any) -> None: ...


def _predicted(model: _Model, features: Features) -> ClassLabel | None:
    proba = model.predict_proba_one(features)
    return max(proba, key=proba.__getitem__) if proba else None


class Challenger:
    """A model dueling the current one on each label (see the module docstring)."""

    def __init__(self, model: Any, min_labels: int) -> None:
        if min_labels < 1:
            raise ValueError(f"a challenger duels at least 1 label, got {min_labels}")
        self.model = model
        self.min_labels = min_labels
        self.labels = 0
        #: Labels each got right since the duel began.
        self.right = 0
        self.current_right = 0

    def duel(self, current: _Model, features: Features, label: ClassLabel) -> bool | None:
        """Predict ``label`` with both, then teach it to the challenger (not ``current``).

        True: the challenger won (it replaces ``current``, and has learned the label);
        False: it lost (drop it); None: the duel goes on.
        """
        self.labels += 1
        self.right += _predicted(self.model, features) == label
        self.current_right += _predicted(current, features) == label
        self.model.learn_one(features, label)
        if self.labels >= self.min_labels and self.right > self.current_right:
            return True
        if self.labels >= 20 * self.min_labels:
            return False
        return None

    def describe(self) -> str:
        return f"{self.right} of {self.labels} labels right, against {self.current_right}"
