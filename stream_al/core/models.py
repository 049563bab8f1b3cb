"""Incremental classifiers built from a ``ModelConfig``, behind one small interface.

``build_model(config)`` returns a ``ScoringModel``: the learner asks it for class
probabilities, teaches it labels one at a time, and, for the measures that need more than
probabilities, asks it for its committee's votes or for its expected gradient length.

Labels are always strings. Features may be numbers, booleans (treated as 0/1 numbers) or
strings (treated as categories, one indicator per value). Every model below copes with the
three kinds:

* ``logreg`` is ``ScaledLogisticRegression``, a lean own implementation of
  ``StandardScaler | OneVsRestClassifier(LogisticRegression)`` with one-hot encoded strings.
  On two classes it is exactly river's binary ``StandardScaler | LogisticRegression``
  (plain SGD, learning rate 0.01, no regularisation); from the third class on it is
  one-vs-rest. River's own pipeline is several times slower per sample (see
  ``bench/model_speed.py``), and the logistic path is the one the service runs at
  thousands of samples per second.
* ``hoeffding-tree`` and ``adaptive-random-forest`` take strings natively (nominal splits).
* ``naive-bayes`` is ``MixedNaiveBayes``: river's ``GaussianNB`` for the numbers plus a
  Laplace-smoothed categorical likelihood for the strings. (A one-hot encoding in front of
  ``GaussianNB`` would carry no information: a present indicator is always 1, so its
  per-class variance is 0 and the Gaussian density degenerates.)
* ``bagging-logreg`` and ``bagging-hoeffding-tree`` are river's online ``BaggingClassifier``
  over the models above. Together with the forest they are the committees that the
  disagreement measures (vote entropy, KL divergence) need.

Every random choice is seeded from ``config.seed``; the same configuration fed the same
stream gives the same probabilities. Everything pickles.
"""

from __future__ import annotations

import collections
import inspect
import math
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, cast

from river import base, ensemble, forest, naive_bayes, tree, utils

from stream_al.core.config import ModelConfig, ModelName
from stream_al.core.imports import load_object
from stream_al.core.types import ClassLabel, FeatureValue, Proba

__all__ = [
    "COMMITTEE_MODELS",
    "LINEAR_MODELS",
    "MixedNaiveBayes",
    "ScaledLogisticRegression",
    "ScoringModel",
    "build_model",
]

#: Models made of several members whose individual votes can be compared.
COMMITTEE_MODELS: frozenset[ModelName] = frozenset(
    {"adaptive-random-forest", "bagging-logreg", "bagging-hoeffding-tree"}
)
#: Models with a single weight vector per class, for the expected gradient length.
LINEAR_MODELS: frozenset[ModelName] = frozenset({"logreg"})

_INF = math.inf


def _sigmoid(z: float) -> float:
    # Same clamping as river.utils.math.sigmoid, so that both implementations agree.
    if z < -30.0:
        return 0.0
    if z > 30.0:
        return 1.0
    return 1.0 / (1.0 + math.exp(-z))


def _log_loss_gradient(positive: bool, raw: float) -> float:
    """Derivative of the log loss w.r.t. the raw score, as river's ``optim.losses.Log``.

    Equal to ``sigmoid(raw) - positive``; written river's way so that the two
    implementations follow the same floating-point path.
    """
    y = 1.0 if positive else -1.0
    z = raw * y
    if z > 18.0:
        return math.exp(-z) * -y
    if z < -18.0:
        return -y
    return -y / (math.exp(z) + 1.0)


class ScaledLogisticRegression(base.Classifier):
    """Standard-scaled logistic regression, one-vs-rest beyond two classes.

    Numeric (and boolean) features are standardised with running means and variances
    (Welford, updated when learning, exactly as ``preprocessing.StandardScaler``); a
    feature with zero variance so far scales to 0. A string feature ``k`` with value ``v``
    becomes the indicator ``(k, v) = 1``, unscaled. Non-finite numbers are ignored, as if
    the feature were missing, so that one NaN cannot poison the weights for good.

    Weights are learnt by plain SGD on the log loss (river's ``LogisticRegression``
    defaults: learning rate 0.01 for weights and intercept, no regularisation).

    Classes are handled in the order they first appear:

    * one class seen: one logistic head is trained (the class is the positive side), and
      the prediction is that class with probability 1 (no alternative is known);
    * two classes: the same head, read as a binary model: ``p(second) = 1 - p(first)``.
      This is exactly ``StandardScaler | LogisticRegression`` with the first class as
      ``True``; unlike river's ``OneVsRestClassifier``, the second class does not start a
      fresh, untrained head when it first shows up;
    * a third class: the binary head is split into two one-vs-rest heads (the second
      class's head is the exact negation of the first's, which is the same binary model),
      and every new class from then on gets a fresh head. Probabilities are the heads'
      sigmoids normalised to sum to one, as in ``OneVsRestClassifier``.

    Examples
    --------

    >>> model = ScaledLogisticRegression()
    >>> model.predict_proba_one({"size": 1.0})
    {}
    >>> for size, label in [(1.0, "small"), (9.0, "big")] * 50:
    ...     model.learn_one({"size": size}, label)
    >>> proba = model.predict_proba_one({"size": 8.0})
    >>> max(proba, key=proba.get)
    'big'

    """

    def __init__(self, lr: float = 0.01, intercept_lr: float = 0.01) -> None:
        self.lr = lr
        self.intercept_lr = intercept_lr
        self._counts: dict[str, int] = {}
        self._means: dict[str, float] = {}
        self._vars: dict[str, float] = {}
        #: 1 / standard deviation, cached at learning time because predictions outnumber
        #: labels by far in active learning; 0.0 while the variance is 0.
        self._inv_stds: dict[str, float] = {}
        self._classes: list[ClassLabel] = []
        #: One weight vector per logistic head (river's Rust-backed dict for fast dots).
        self._heads: list[utils.VectorDict] = []
        self._intercepts: list[float] = []

    @property
    def _multiclass(self) -> bool:
        return True

    @property
    def classes(self) -> tuple[ClassLabel, ...]:
        """The classes learnt so far, in order of first appearance."""
        return tuple(self._classes)

    def heads(self) -> list[tuple[ClassLabel, dict[Hashable, float], float]]:
        """Each logistic head as ``(class, weights, intercept)``, for inspection.

        Up to two classes there is a single head, for the first class; string features
        appear as ``(name, value)`` keys.
        """
        return [
            (c, head.to_dict(), b)
            for c, head, b in zip(self._classes, self._heads, self._intercepts, strict=False)
        ]

    def linear_heads(self) -> tuple[tuple[utils.VectorDict, ...], tuple[float, ...]]:
        """The heads' weight vectors and intercepts, in class order, for closed-form scoring.

        The vectors are the model's own (no copy, so this is cheap per prediction) and must
        be treated as read-only; the intercepts are a snapshot. Features are keyed as in
        :meth:`scale`.

        >>> model = ScaledLogisticRegression()
        >>> model.learn_one({"size": 1.0}, "small")
        >>> heads, intercepts = model.linear_heads()
        >>> len(heads), len(intercepts)
        (1, 1)
        """
        return tuple(self._heads), tuple(self._intercepts)

    def scale(self, x: Mapping[str, Any]) -> dict[Hashable, float]:
        """``x`` as the heads see it: standardised numbers, ``(name, value)`` indicators.

        >>> model = ScaledLogisticRegression()
        >>> for size in (1.0, 3.0):
        ...     model.learn_one({"size": size}, "small")
        >>> model.scale({"size": 3.0})
        {'size': 1.0}
        """
        return self._scale(x)

    # Features

    def _scale(self, x: Mapping[str, Any]) -> dict[Hashable, float]:
        means = self._means
        inv_stds = self._inv_stds
        # Fast path, the usual case: only numbers, all seen before, all finite (a NaN or an
        # infinity makes the sum non-finite). Anything else raises or falls through.
        try:
            z: dict[Hashable, float] = {k: (v - means[k]) * inv_stds[k] for k, v in x.items()}
            if -_INF < sum(z.values()) < _INF:
                return z
        except (KeyError, TypeError):
            pass
        z = {}
        for k, v in x.items():
            if isinstance(v, str):
                z[(k, v)] = 1.0
            elif -_INF < v < _INF:
                z[k] = (v - means.get(k, 0.0)) * inv_stds.get(k, 0.0)
        return z

    def _learn_scaler(self, x: Mapping[str, Any]) -> None:
        counts = self._counts
        means = self._means
        vars_ = self._vars
        inv_stds = self._inv_stds
        for k, v in x.items():
            if isinstance(v, str) or not -_INF < v < _INF:
                continue
            n = counts.get(k, 0) + 1
            counts[k] = n
            old_mean = means.get(k, 0.0)
            mean = old_mean + (v - old_mean) / n
            means[k] = mean
            var = vars_.get(k, 0.0)
            var += ((v - old_mean) * (v - mean) - var) / n
            vars_[k] = var
            inv_stds[k] = 1.0 / var**0.5 if var > 0.0 else 0.0

    # Classes

    def _add_class(self, y: ClassLabel) -> None:
        self._classes.append(y)
        n = len(self._classes)
        if n == 1:
            self._heads.append(utils.VectorDict())
            self._intercepts.append(0.0)
        elif n == 3:
            # Leave binary mode: the second class's head is the binary head negated.
            negated: utils.VectorDict = utils.VectorDict({f: -w for f, w in self._heads[0].items()})
            self._heads.insert(1, negated)
            self._intercepts.insert(1, -self._intercepts[0])
        if n >= 3:
            self._heads.append(utils.VectorDict())
            self._intercepts.append(0.0)

    # Learning and predicting

    def learn_one(self, x: dict[str, Any], y: Any) -> None:  # type: ignore[override]
        if y not in self._classes:
            self._add_class(y)
        self._learn_scaler(x)
        z = self._scale(x)
        z_vector: utils.VectorDict = utils.VectorDict(z, copy=False)
        classes = self._classes
        intercepts = self._intercepts
        for i, head in enumerate(self._heads):
            b = intercepts[i]
            g = _log_loss_gradient(classes[i] == y, head.dot(z) + b)
            head.isub_scaled(z_vector, self.lr * g)
            intercepts[i] = b - self.intercept_lr * g

    def _head_sigmoids(self, z: dict[Hashable, float]) -> list[float]:
        return [_sigmoid(h.dot(z) + b) for h, b in zip(self._heads, self._intercepts, strict=True)]

    def _proba_from_sigmoids(self, sig: list[float]) -> dict[ClassLabel, float]:
        classes = self._classes
        if len(classes) <= 2:
            if len(classes) == 1:
                return {classes[0]: 1.0}
            p = sig[0]
            return {classes[0]: p, classes[1]: 1.0 - p}
        total = sum(sig)
        if total:
            return {c: s / total for c, s in zip(classes, sig, strict=True)}
        return {c: 1.0 / len(classes) for c in classes}

    def predict_proba_one(self, x: Mapping[str, Any]) -> dict[ClassLabel, float]:  # type: ignore[override]
        classes = self._classes
        if len(classes) == 2:
            # The hot path of a binary stream, inlined: the same operations as
            # _head_sigmoids and _proba_from_sigmoids in the same order (so the same bits),
            # without their calls, list and zip.
            means, inv_stds = self._means, self._inv_stds
            head, intercept = self._heads[0], self._intercepts[0]
            try:  # _scale's fast path, inlined: numbers only, all seen before...
                z: dict[Hashable, float] = {k: (v - means[k]) * inv_stds[k] for k, v in x.items()}
            except (KeyError, TypeError):
                raw = head.dot(self._scale(x)) + intercept
            else:
                raw = head.dot(z) + intercept
                # ... and all finite, told by the score rather than by _scale's sum: a NaN or
                # an infinity in ``z`` makes the dot non-finite (a weight of 0, or none,
                # times it is NaN), and when all of ``z`` is finite _scale gives ``z`` again.
                if not -_INF < raw < _INF:
                    raw = head.dot(self._scale(x)) + intercept
            p = 0.0 if raw < -30.0 else 1.0 if raw > 30.0 else 1.0 / (1.0 + math.exp(-raw))
            return {classes[0]: p, classes[1]: 1.0 - p}
        if not classes:
            return {}
        if len(classes) == 1:
            return {classes[0]: 1.0}
        return self._proba_from_sigmoids(self._head_sigmoids(self._scale(x)))

    def expected_gradient_length(self, x: Mapping[str, Any]) -> float:
        """Expected norm of the log-loss gradient if ``x`` were labelled (Settles et al.).

        ``sum_y p(y|x) * ||grad_theta loss(x, y)||`` where theta is every weight and
        intercept of the model and ``p`` its current prediction. For one head with sigmoid
        ``s`` the gradient at label y is ``(s - [y is the head's class]) * (z, 1)``, z the
        scaled features; with several one-vs-rest heads the squared norms add up. Before
        two classes are known the single head is read as binary, with an unnamed other
        class (a cold model has zero weights, s = 0.5).
        """
        z = self._scale(x)
        norm = math.sqrt(1.0 + sum(v * v for v in z.values()))
        if len(self._heads) <= 1:
            s = self._head_sigmoids(z)[0] if self._heads else 0.5
            return 2.0 * s * (1.0 - s) * norm
        sig = self._head_sigmoids(z)
        proba = self._proba_from_sigmoids(sig)
        sum_sq = sum(s * s for s in sig)
        expected = 0.0
        for c, s in zip(self._classes, sig, strict=True):
            # ||sig - onehot(c)||^2 = sum_k s_k^2 - 2 s_c + 1
            expected += proba[c] * math.sqrt(max(sum_sq - 2.0 * s + 1.0, 0.0))
        return expected * norm


class MixedNaiveBayes(base.Classifier):
    """Naive Bayes over numbers (Gaussian) and strings (categorical), as one model.

    Numeric and boolean features go to river's ``GaussianNB``, which also holds the class
    counts. Each string feature ``k`` contributes ``log P(k = v | class)`` estimated with
    Laplace smoothing over the values of ``k`` seen so far, plus one for an unseen value:
    ``(n(class, k, v) + 1) / (n(class, k) + V_k + 1)``.

    Examples
    --------

    >>> model = MixedNaiveBayes()
    >>> for colour, label in [("red", "stop"), ("green", "go")] * 10:
    ...     model.learn_one({"colour": colour, "speed": 1.0}, label)
    >>> proba = model.predict_proba_one({"colour": "green", "speed": 1.0})
    >>> max(proba, key=proba.get)
    'go'

    """

    def __init__(self) -> None:
        self._gaussian = naive_bayes.GaussianNB()
        #: class -> feature -> value -> count
        self._value_counts: dict[Any, dict[str, collections.Counter[str]]] = {}
        #: feature -> values seen, whatever the class
        self._values: dict[str, set[str]] = {}

    @property
    def _multiclass(self) -> bool:
        return True

    @staticmethod
    def _split(x: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        numbers: dict[str, Any] = {}
        strings: dict[str, str] = {}
        for k, v in x.items():
            if isinstance(v, str):
                strings[k] = v
            elif -_INF < v < _INF:
                numbers[k] = v
        return numbers, strings

    def learn_one(self, x: dict[str, Any], y: Any) -> None:  # type: ignore[override]
        numbers, strings = self._split(x)
        self._gaussian.learn_one(numbers, y)
        by_feature = self._value_counts.setdefault(y, {})
        for k, v in strings.items():
            by_feature.setdefault(k, collections.Counter())[v] += 1
            self._values.setdefault(k, set()).add(v)

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:  # type: ignore[override]
        numbers, strings = self._split(x)
        jll = self._gaussian.joint_log_likelihood(numbers)
        if not jll:
            return {}
        for c in jll:
            by_feature = self._value_counts.get(c, {})
            for k, v in strings.items():
                counts = by_feature.get(k)
                n_value = counts[v] if counts else 0
                n_feature = counts.total() if counts else 0
                n_values = len(self._values.get(k, ()))
                jll[c] += math.log((n_value + 1) / (n_feature + n_values + 1))
        top = max(jll.values())
        exp = {c: math.exp(ll - top) for c, ll in jll.items()}
        total = sum(exp.values())
        return {c: e / total for c, e in exp.items()}


def _normalise(proba: Mapping[Any, float]) -> Proba:
    """Class probabilities as a plain ``str -> float`` dict summing to one.

    River ensembles return ``Counter`` objects and may return an all-zero vector; the
    latter carries no information, so it becomes the uniform distribution over the same
    classes.
    """
    if not proba:
        return {}
    total = float(sum(proba.values()))
    if total > 0.0:
        return {str(c): float(p) / total for c, p in proba.items()}
    return {str(c): 1.0 / len(proba) for c in proba}


class ScoringModel:
    """An incremental classifier with class probabilities, as the learner sees it.

    Wraps one river classifier. ``predict_proba_one`` returns an empty dict until the
    model has learnt a label, then probabilities over the classes it knows, summing to
    one (possibly a single class with probability 1 while only one class has been seen).

    ``committee_probas`` and ``expected_gradient_length`` serve the measures that need
    more than the probabilities; they return None on models that cannot answer, which
    ``COMMITTEE_MODELS`` and ``LINEAR_MODELS`` tell in advance.
    """

    def __init__(self, config: ModelConfig, estimator: base.Classifier, spec: str) -> None:
        self.config = config
        #: The river classifier. Typed ``Any`` because river types features as
        #: ``dict[Hashable, Any]``, which ``Features`` is not (dicts are invariant).
        self.estimator: Any = estimator
        self._spec = spec
        self._lean = estimator if isinstance(estimator, ScaledLogisticRegression) else None
        self._committee = (
            isinstance(estimator, base.Ensemble)
            if config.factory is not None
            else config.name in COMMITTEE_MODELS
        )
        self.n_learned = 0
        self._classes: set[ClassLabel] = set()

    @property
    def is_committee(self) -> bool:
        """Whether the committee measures can ask this model's members."""
        return self._committee

    @property
    def classes(self) -> frozenset[ClassLabel]:
        """The labels learnt so far."""
        return frozenset(self._classes)

    def predict_proba_one(self, x: Mapping[str, FeatureValue]) -> Proba:
        """Class probabilities for ``x``; ``{}`` for a model that has learnt nothing."""
        if self._lean is not None:
            # Already a fresh str -> float dict summing to one.
            return self._lean.predict_proba_one(x)
        return _normalise(self.estimator.predict_proba_one(x))

    def learn_one(self, x: Mapping[str, FeatureValue], y: ClassLabel) -> None:
        """Learn that ``x`` belongs to class ``y`` (always a string)."""
        if not isinstance(y, str):
            raise TypeError(f"class labels are strings, got {y!r} ({type(y).__name__})")
        self.estimator.learn_one(x, y)
        self.n_learned += 1
        self._classes.add(y)

    def describe(self) -> str:
        """What the model is and how far it has learnt, for logs and checkpoint inspection."""
        return (
            f"{self._spec} [model={self.config.name}, seed={self.config.seed}, "
            f"classes={len(self._classes)}, learned={self.n_learned}]"
        )

    def committee_probas(self, x: Mapping[str, FeatureValue]) -> list[Proba] | None:
        """Each committee member's probabilities for ``x``; None if not a committee.

        Members that have learnt nothing yet give ``{}``. Members of a forest that has not
        seen any sample yet do not exist: the list is then empty.
        """
        if not self._committee:
            return None
        members: Iterable[Any] = self.estimator
        return [_normalise(member.predict_proba_one(x)) for member in members]

    def expected_gradient_length(self, x: Mapping[str, FeatureValue]) -> float | None:
        """Expected log-loss gradient norm at ``x`` (raw, unbounded); None if not linear.

        See ``ScaledLogisticRegression.expected_gradient_length``.
        """
        if self._lean is None:
            return None
        return self._lean.expected_gradient_length(x)

    def __repr__(self) -> str:
        return f"ScoringModel({self.describe()})"


def _from_factory(path: str, seed: int) -> base.Classifier:
    factory = load_object(path, "model.factory")
    takes_seed = "seed" in inspect.signature(factory).parameters
    estimator = factory(seed=seed) if takes_seed else factory()
    if not all(hasattr(estimator, name) for name in ("learn_one", "predict_proba_one")):
        raise ValueError(
            f"model.factory {path!r} returned {type(estimator).__name__}, not a river "
            "classifier (learn_one and predict_proba_one)"
        )
    return cast(base.Classifier, estimator)


_LOGREG_SPEC = "StandardScaler(numbers) + OneHot(strings) | OneVsRest(LogisticRegression)"
_TREE_SPEC = "HoeffdingTreeClassifier"


def build_model(config: ModelConfig) -> ScoringModel:
    """The untrained model that ``config`` describes.

    >>> from stream_al.core.config import ModelConfig
    >>> model = build_model(ModelConfig(name="bagging-logreg", n_models=3))
    >>> model.predict_proba_one({"x": 1.0})
    {}
    >>> len(model.committee_probas({"x": 1.0}))
    3

    """
    name = config.name
    estimator: base.Classifier
    if config.factory is not None:
        estimator = _from_factory(config.factory, config.seed)
        spec = f"{config.factory}: {estimator!r}".replace("\n", " ")
    elif name == "logreg":
        estimator, spec = ScaledLogisticRegression(), _LOGREG_SPEC
    elif name == "hoeffding-tree":
        estimator, spec = tree.HoeffdingTreeClassifier(), _TREE_SPEC
    elif name == "naive-bayes":
        estimator = MixedNaiveBayes()
        spec = "NaiveBayes(Gaussian(numbers) + Categorical(strings))"
    elif name == "adaptive-random-forest":
        estimator = forest.ARFClassifier(n_models=config.n_models, seed=config.seed)
        spec = f"ARFClassifier({config.n_models} trees)"
    elif name == "bagging-logreg":
        estimator = ensemble.BaggingClassifier(
            ScaledLogisticRegression(), n_models=config.n_models, seed=config.seed
        )
        spec = f"Bagging({config.n_models} x {_LOGREG_SPEC})"
    elif name == "bagging-hoeffding-tree":
        estimator = ensemble.BaggingClassifier(
            tree.HoeffdingTreeClassifier(), n_models=config.n_models, seed=config.seed
        )
        spec = f"Bagging({config.n_models} x {_TREE_SPEC})"
    else:  # pragma: no cover - ModelConfig validation makes this unreachable
        raise ValueError(f"model.name: unknown model {name!r}")
    return ScoringModel(config, estimator, spec)
