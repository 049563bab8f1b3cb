"""Expected error reduction, approximated in closed form and pre-filtered by margin.

Roy and McCallum's expected error reduction asks, for a candidate ``x``: if its label
were ``y`` (each ``y`` weighted by the model's ``p(y | x)``), how much would the model's
loss over the unlabelled data fall? Retraining once per class per candidate is out of the
question at stream rates, so here:

* the unlabelled data is a seeded reservoir of recent samples (``size`` of them);
* the loss is the entropy of the predictions on it (the log-loss proxy of Roy and
  McCallum, continuous where the 0/1 error would not move after one step);
* "retrained" is one SGD step of the scaled logistic regression on ``(x, y)``, in closed
  form: a head with weights ``w`` moves by ``-lr * g * z`` (``g = sigmoid(w.z + b) - [y
  is its class]``), so its raw score on a reservoir sample ``z_r`` moves by ``-lr * g *
  (z . z_r) - intercept_lr * g``; no copy of the model is made;
* only candidates whose margin uncertainty ranks in the top ``prefilter`` share of the
  recent ones are scored, so the cost per sample is bounded by ``prefilter`` times one
  score (about ``size`` dot products and a few NumPy operations on ``size x classes``).

The scores feed the default strategy's rule (:class:`AdaptiveQuantile`): a candidate
that passes the pre-filter ranks above every one that does not, and among those that pass
the larger expected reduction ranks higher; pacing, head start and the selection
probability (so the weighted accuracy estimate) are the adaptive strategy's. Models other
than ``logreg`` (and a model that knows fewer than two classes) have no closed form here:
a candidate that passes the pre-filter is then ranked by its margin.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np

from stream_al.core.models import ScaledLogisticRegression, ScoringModel
from stream_al.core.strategies.adaptive import AdaptiveQuantile
from stream_al.core.strategies.base import Selection
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.selector import derive_rng
from stream_al.core.strategies.window import SlidingWindow
from stream_al.core.types import FeatureValue, Proba

#: Margin values below which a window is too short to rank against (then all pass).
_MIN_RANKED = 10


def _entropies(sig: np.ndarray, binary: bool) -> np.ndarray:
    """Prediction entropy per row of head sigmoids ``sig`` (last axis: heads)."""
    eps = 1e-12
    if binary:
        p = np.clip(sig[..., 0], eps, 1.0 - eps)
        return -(p * np.log(p) + (1.0 - p) * np.log(1.0 - p))
    total = sig.sum(axis=-1, keepdims=True)
    p = np.clip(sig / np.maximum(total, eps), eps, 1.0)
    return -(p * np.log(p)).sum(axis=-1)


class LogisticOneStep:
    """Expected entropy reduction over a reservoir after one SGD step, for ``logreg``.

    >>> model = ScaledLogisticRegression()
    >>> for i in range(200):
    ...     model.learn_one({"x": i % 10 / 10, "y": i % 7 / 7}, "a" if i % 10 < 5 else "b")
    >>> reservoir = [{"x": i / 20, "y": 0.5} for i in range(20)]
    >>> eer = LogisticOneStep()
    >>> def reduction(x):
    ...     return eer.reduction(model, x, model.predict_proba_one(x), reservoir)
    >>> near, far = reduction({"x": 0.45, "y": 0.5}), reduction({"x": 3.0, "y": 0.5})
    >>> near > far  # a label at the boundary moves the uncertain reservoir samples most
    True
    """

    def __init__(self) -> None:
        self._version: tuple[int, tuple[float, ...], int] | None = None
        self._z: list[dict[Any, float]] = []
        self._raw: np.ndarray = np.zeros((0, 0))

    def _cache(
        self, model: ScaledLogisticRegression, reservoir: list[dict[str, Any]], version: int
    ) -> None:
        """Scaled reservoir features and head scores, recomputed when model or reservoir change."""
        heads, intercepts = model.linear_heads()
        key = (id(model), intercepts, version)
        if key == self._version:
            return
        # The lean model's own scaling and heads: the closed form needs its weights.
        self._z = [model.scale(x) for x in reservoir]
        self._raw = np.array(
            [[h.dot(z) + b for h, b in zip(heads, intercepts, strict=True)] for z in self._z]
        )
        self._version = key

    def reduction(
        self,
        model: ScaledLogisticRegression,
        x: Mapping[str, FeatureValue],
        proba: Proba,
        reservoir: list[dict[str, Any]],
        version: int = -1,
    ) -> float | None:
        """Expected fall of the reservoir's total entropy if ``x`` were labelled; None: no form."""
        classes = model.classes
        if len(classes) < 2 or not reservoir:
            return None
        if version < 0:  # the caller does not track changes: recompute
            self._version = None
        self._cache(model, reservoir, version)
        z = model.scale(x)
        heads, intercepts = model.linear_heads()
        binary = len(classes) == 2
        a = np.array([h.dot(z) + b for h, b in zip(heads, intercepts, strict=True)])
        s = 1.0 / (1.0 + np.exp(-np.clip(a, -30.0, 30.0)))
        # Dot product of the candidate with each reservoir sample (string indicators too).
        dots = np.array([sum(v * zr.get(k, 0.0) for k, v in z.items()) for zr in self._z])
        # g[y, h]: the log-loss gradient of head h were the label class y.
        n_heads = len(heads)
        target = np.zeros((len(classes), n_heads))
        for i in range(min(len(classes), n_heads)):
            target[i, i] = 1.0
        g = s[None, :] - target  # binary: class 0 is the head's class, class 1 is not
        weights = np.array([proba.get(c, 0.0) for c in classes])
        weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(classes), 0.5)
        raw = self._raw  # (R, H)
        moved = (
            raw[None, :, :]
            - model.lr * g[:, None, :] * dots[None, :, None]
            - model.intercept_lr * g[:, None, :]
        )  # (Y, R, H)
        before = _entropies(1.0 / (1.0 + np.exp(-np.clip(raw, -30.0, 30.0))), binary).sum()
        after = _entropies(1.0 / (1.0 + np.exp(-np.clip(moved, -30.0, 30.0))), binary).sum(axis=1)
        return float(before - weights @ after)


class ErrorReduction(AdaptiveQuantile):
    """The adaptive rule on expected error reduction, for margin's top ``prefilter`` share.

    The learner hands the model and the sample's probabilities to :meth:`observe_model`
    and its features to :meth:`observe` before :meth:`offer`. The margin uncertainty is
    ranked among the last ``window`` values; a sample below the ``1 - s`` level (``s`` the
    larger of ``prefilter`` and twice the last query rate)
    scores ``level / 2`` (below every sample that passes), one above it
    ``1/2 + r / (2 (r + m))``, ``r >= 0`` its expected entropy reduction and ``m`` the
    running mean of ``r`` over the samples scored. Every sample then enters the reservoir
    of ``size`` (the first ``size`` at once, later each with probability ``size / window``
    in a random slot: a seeded reservoir of the last few windows).
    """

    name = "error-reduction"

    def __init__(
        self,
        window: int = 1000,
        head_start: int = 500,
        pacing_labels: float = 10.0,
        seed: int = 42,
        reservoir: int = 30,
        prefilter: float = 0.25,
    ) -> None:
        # Not measured with the model horizon: it ranks against the whole window.
        super().__init__(window, head_start, pacing_labels, seed, model_horizon=0)
        if reservoir < 2:
            raise ValueError(f"reservoir must be >= 2, got {reservoir}")
        if not 0.0 < prefilter <= 1.0:
            raise ValueError(f"prefilter must be in (0, 1], got {prefilter}")
        # The adaptive strategy's own draws: only the scores differ.
        self._rng = derive_rng(seed, AdaptiveQuantile.name)
        self._reservoir_rng: random.Random = derive_rng(seed, self.name)
        self.reservoir_size = reservoir
        self.prefilter = prefilter
        self.margins = SlidingWindow(window)
        self.reservoir: list[dict[str, Any]] = []
        self._reservoir_version = 0
        self._one_step = LogisticOneStep()
        self._model: ScoringModel | None = None
        self._proba: Proba = {}
        self._features: Mapping[str, FeatureValue] | None = None
        self._mean_reduction = 0.0
        self.scored = 0
        self.offered = 0

    def observe_model(self, model: ScoringModel, proba: Proba) -> None:
        self._model, self._proba = model, proba

    def observe(self, features: Mapping[str, FeatureValue]) -> None:
        self._features = features

    def score(self, uncertainty: float) -> float:
        """The value ranked for the sample just observed (see the class)."""
        below, equal = self.margins.count_below(uncertainty)
        size = len(self.margins)
        self.margins.add(uncertainty)
        level = (below + 0.5 * equal) / size if size >= _MIN_RANKED else 1.0
        # At least twice the query rate passes: else a large budget goes by margin alone.
        share = max(self.prefilter, min(1.0, 2.0 * self.target_rate))
        if level < 1.0 - share:
            return 0.5 * level
        model, features = self._model, self._features
        lean = None if model is None else model.estimator
        reduction = None
        if isinstance(lean, ScaledLogisticRegression) and features is not None:
            reduction = self._one_step.reduction(
                lean, features, self._proba, self.reservoir, self._reservoir_version
            )
        if reduction is None:
            return 0.5 + 0.5 * uncertainty
        self.scored += 1
        r = max(0.0, reduction)
        self._mean_reduction += (r - self._mean_reduction) / min(self.scored, self.margins.size)
        m = self._mean_reduction
        return 0.5 + 0.5 * (r / (r + m) if r + m > 0.0 else 0.0)

    def _remember(self) -> None:
        features, self._features = self._features, None
        self._model = None
        if features is None:
            return
        kept = dict(features)
        if len(self.reservoir) < self.reservoir_size:
            self.reservoir.append(kept)
        elif self._reservoir_rng.random() < self.reservoir_size / self.margins.size:
            self.reservoir[self._reservoir_rng.randrange(self.reservoir_size)] = kept
        else:
            return
        self._reservoir_version += 1

    def offer(self, key: str, uncertainty: float, taken: bool, ledger: Ledger) -> list[Selection]:
        self.offered += 1
        value = self.score(uncertainty)
        self._remember()
        return super().offer(key, value, taken, ledger)

    def state(self) -> dict[str, Any]:
        return super().state() | {
            "name": self.name,
            "reservoir": len(self.reservoir),
            "prefilter": self.prefilter,
            "scored_share": self.scored / self.offered if self.offered else 0.0,
            "mean_reduction": self._mean_reduction,
        }
