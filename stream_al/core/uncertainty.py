"""Uncertainty measures: how much a model would gain from knowing a sample's label.

Every measure returns a number in [0, 1]; 1 is the most uncertain. They come in two
layers:

* small pure functions of a probability dict (or of a committee's dicts), usable on
  their own: ``least_confidence``, ``margin``, ``entropy``, ``vote_entropy``,
  ``kl_divergence``, ``squash_gradient_length``;
* ``build_measure(name, model_config)``, which returns an ``UncertaintyMeasure``, the
  uniform callable the learner uses: ``measure(model, x, proba) -> float``.

Scaling, with K the number of classes in the probability dict (the classes the model
knows; a class listed with probability 0 counts):

* least confidence ``(1 - max p) / (1 - 1/K)``: the largest probability is at least 1/K,
  so dividing by ``1 - 1/K`` maps the uniform distribution to exactly 1;
* margin ``1 - (p1 - p2)``, p1 and p2 the two largest probabilities: in [0, 1] as is;
* entropy ``-sum p log p / log K``;
* vote entropy: the entropy of the members' hard votes divided by ``log min(M, K)``, M
  the number of members that can vote: with M votes over K classes at most
  ``min(M, K)`` classes get a vote, so that is the largest entropy the votes can have;
* KL divergence: the members' mean KL divergence to their consensus (their mean
  distribution), divided by ``log min(M, K)``. The mean KL to the mean equals the
  generalised Jensen-Shannon divergence, the mutual information between "which member"
  and "which class", which is at most ``log M`` and at most ``log K``;
* expected gradient length: the raw expected norm g >= 0 (see
  ``ScaledLogisticRegression.expected_gradient_length``) squashed by ``g / (1 + g)``,
  which is monotonic, 0 at 0 and 1/2 at g = 1.

A model that knows fewer than two classes (an empty or a one-class dict) cannot tell its
classes apart at all: every measure then returns 1.0, the maximum. (A measure that
returned 0 there, as river's ``active.EntropySampler`` effectively does, would never ask
for the label that gets the model out of that state.) Likewise a committee in which
fewer than two members can vote yet is maximally uncertain.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import get_args

from stream_al.core.config import MeasureName, ModelConfig
from stream_al.core.models import COMMITTEE_MODELS, LINEAR_MODELS, ScoringModel
from stream_al.core.types import ClassLabel, FeatureValue, Proba

__all__ = [
    "COMMITTEE_MEASURES",
    "GRADIENT_MEASURES",
    "UncertaintyMeasure",
    "build_measure",
    "entropy",
    "kl_divergence",
    "least_confidence",
    "margin",
    "squash_gradient_length",
    "vote_entropy",
]

#: Measures that compare the votes of a committee's members.
COMMITTEE_MEASURES: frozenset[MeasureName] = frozenset({"vote-entropy", "kl-divergence"})
#: Measures that need the gradient of a linear model.
GRADIENT_MEASURES: frozenset[MeasureName] = frozenset({"expected-gradient-length"})


def _clip(u: float) -> float:
    # Rounding can push a value a hair outside [0, 1]; the contract is the closed interval.
    # "<=" also turns -0.0 (an empty sum negated) into 0.0.
    return 0.0 if u <= 0.0 else 1.0 if u > 1.0 else u


def _normalised(proba: Mapping[ClassLabel, float]) -> list[float] | None:
    """The probabilities rescaled to sum to one; None if they carry no information."""
    total = sum(proba.values())
    if len(proba) < 2 or not total > 0.0:
        return None
    return [p / total for p in proba.values()]


def least_confidence(proba: Mapping[ClassLabel, float]) -> float:
    """One minus the top probability, scaled to [0, 1] by its maximum ``1 - 1/K``.

    >>> round(least_confidence({"a": 0.8, "b": 0.2}), 4)
    0.4
    >>> least_confidence({"a": 0.5, "b": 0.5})
    1.0
    >>> round(least_confidence({"a": 0.6, "b": 0.3, "c": 0.1}), 4)
    0.6
    >>> least_confidence({"a": 1.0})
    1.0

    """
    ps = _normalised(proba)
    if ps is None:
        return 1.0
    k = len(ps)
    return _clip((1.0 - max(ps)) * k / (k - 1))


def margin(proba: Mapping[ClassLabel, float]) -> float:
    """One minus the gap between the two most probable classes.

    >>> round(margin({"a": 0.8, "b": 0.2}), 4)
    0.4
    >>> round(margin({"a": 0.5, "b": 0.3, "c": 0.2}), 4)
    0.8
    >>> margin({})
    1.0

    """
    # _normalised and _clip inlined (the same operations): margin is the default measure,
    # computed once per sample.
    if len(proba) == 2:
        # Two classes, the usual case: the steps below for two positive values, without
        # sum() and the loop (the same bits: ``a + b`` is their sum, and the loop takes the
        # larger share as ``first``). Anything else (a zero, NaN) takes the general path.
        a, b = proba.values()
        if a > 0.0 and b > 0.0:
            total = a + b
            a, b = a / total, b / total
            if a > 0.0 and b > 0.0:
                u = 1.0 - (b - a if b > a else a - b)
                return 0.0 if u <= 0.0 else 1.0 if u > 1.0 else u
    total = sum(proba.values())
    if len(proba) < 2 or not total > 0.0:
        return 1.0
    first = second = 0.0
    for p in proba.values():
        p = p / total
        if p > first:
            first, second = p, first
        elif p > second:
            second = p
    u = 1.0 - (first - second)
    return 0.0 if u <= 0.0 else 1.0 if u > 1.0 else u


def entropy(proba: Mapping[ClassLabel, float]) -> float:
    """Shannon entropy divided by its maximum, ``log K``.

    >>> round(entropy({"a": 0.8, "b": 0.2}), 4)
    0.7219
    >>> round(entropy({"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}), 4)
    1.0
    >>> entropy({"a": 1.0, "b": 0.0})
    0.0

    """
    ps = _normalised(proba)
    if ps is None:
        return 1.0
    h = -sum(p * math.log(p) for p in ps if p > 0.0)
    return _clip(h / math.log(len(ps)))


def _committee(
    members: Sequence[Mapping[ClassLabel, float]],
) -> tuple[list[dict[ClassLabel, float]], int] | None:
    """The members that can vote (normalised), and the number of classes they know.

    None when fewer than two members or fewer than two classes are known.
    """
    voters: list[dict[ClassLabel, float]] = []
    classes: set[ClassLabel] = set()
    for member in members:
        total = sum(member.values())
        if member and total > 0.0:
            voters.append({c: p / total for c, p in member.items()})
            classes.update(member)
    if len(voters) < 2 or len(classes) < 2:
        return None
    return voters, len(classes)


def vote_entropy(committee: Sequence[Mapping[ClassLabel, float]]) -> float:
    """Entropy of the members' hard votes, divided by ``log min(M, K)``.

    Each member votes for its most probable class (ties go to the smallest label);
    members that know no class yet abstain.

    >>> round(vote_entropy([{"a": 0.9, "b": 0.1}, {"a": 0.2, "b": 0.8}]), 4)
    1.0
    >>> vote_entropy([{"a": 0.9, "b": 0.1}, {"a": 0.6, "b": 0.4}])
    0.0
    >>> round(vote_entropy([{"a": 1.0, "b": 0}, {"a": 1.0, "b": 0}, {"b": 1.0, "a": 0}]), 4)
    0.9183
    >>> vote_entropy([{"a": 0.9, "b": 0.1}, {}])
    1.0

    """
    parsed = _committee(committee)
    if parsed is None:
        return 1.0
    voters, k = parsed
    votes: dict[ClassLabel, int] = {}
    for member in voters:
        top = max(sorted(member), key=member.__getitem__)
        votes[top] = votes.get(top, 0) + 1
    m = len(voters)
    h = -sum(v / m * math.log(v / m) for v in votes.values())
    return _clip(h / math.log(min(m, k)))


def kl_divergence(committee: Sequence[Mapping[ClassLabel, float]]) -> float:
    """Members' mean KL divergence to their consensus, divided by ``log min(M, K)``.

    The consensus is the members' mean distribution; a class a member does not list has
    probability 0 for it. Members that know no class yet are left out.

    >>> kl_divergence([{"a": 0.7, "b": 0.3}, {"a": 0.7, "b": 0.3}])
    0.0
    >>> round(kl_divergence([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}]), 4)
    1.0
    >>> round(kl_divergence([{"a": 0.9, "b": 0.1}, {"a": 0.5, "b": 0.5}]), 4)
    0.1468

    """
    parsed = _committee(committee)
    if parsed is None:
        return 1.0
    voters, k = parsed
    m = len(voters)
    # The consensus is ``totals / m``; dividing by ``m`` first made a subnormal p's
    # consensus underflow to 0 (and the ratio a ZeroDivisionError). ``totals[c] >= p``.
    totals: dict[ClassLabel, float] = {}
    for member in voters:
        for c, p in member.items():
            totals[c] = totals.get(c, 0.0) + p
    mean_kl = (
        sum(
            p * math.log(p * m / totals[c]) for member in voters for c, p in member.items() if p > 0
        )
        / m
    )
    return _clip(mean_kl / math.log(min(m, k)))


def squash_gradient_length(length: float) -> float:
    """Map a gradient norm in [0, inf) to [0, 1): ``g / (1 + g)``.

    >>> squash_gradient_length(0.0)
    0.0
    >>> squash_gradient_length(1.0)
    0.5
    >>> squash_gradient_length(3.0)
    0.75

    """
    if length != length:  # NaN: no information, maximally uncertain
        return 1.0
    if length <= 0.0:
        return 0.0
    if length == math.inf:
        return 1.0
    # 1 - 1 / (1 + g) rather than g / (1 + g): every step is monotonic in floating point,
    # where the quotient of two rounded values is not (near g = 6e15 it went 1.0 then below).
    return 1.0 - 1.0 / (1.0 + length)


class UncertaintyMeasure(ABC):
    """How uncertain ``model`` is about ``x``, in [0, 1], given its prediction ``proba``.

    ``proba`` is what ``model.predict_proba_one(x)`` just returned (the learner computes it
    anyway); measures that need more ask the model. Stateless and picklable.
    """

    #: The configuration name of the measure.
    name: MeasureName
    #: The measure as a function of the probabilities alone, when it is one: the learner
    #: calls it directly (one call less per sample). None: call the measure itself.
    of_proba: Callable[[Mapping[ClassLabel, float]], float] | None = None

    @abstractmethod
    def __call__(self, model: ScoringModel, x: Mapping[str, FeatureValue], proba: Proba) -> float:
        """The uncertainty, 1.0 when ``proba`` has fewer than two classes."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class ProbabilityMeasure(UncertaintyMeasure):
    """A measure of the probability dict alone."""

    def __init__(self, name: MeasureName, fn: Callable[[Mapping[ClassLabel, float]], float]):
        self.name = name
        self._fn = fn
        self.of_proba = fn

    def __call__(self, model: ScoringModel, x: Mapping[str, FeatureValue], proba: Proba) -> float:
        return self._fn(proba)


class CommitteeMeasure(UncertaintyMeasure):
    """A measure of the disagreement between a committee's members."""

    def __init__(
        self, name: MeasureName, fn: Callable[[Sequence[Mapping[ClassLabel, float]]], float]
    ):
        self.name = name
        self._fn = fn

    def __call__(self, model: ScoringModel, x: Mapping[str, FeatureValue], proba: Proba) -> float:
        if len(proba) < 2:
            return 1.0
        members = model.committee_probas(x)
        if members is None:
            raise ValueError(
                f"measure {self.name!r} needs a committee model, got {model.describe()}"
            )
        return self._fn(members)


class ExpectedGradientLength(UncertaintyMeasure):
    """Expected gradient length of a linear model, squashed to [0, 1)."""

    name: MeasureName = "expected-gradient-length"

    def __call__(self, model: ScoringModel, x: Mapping[str, FeatureValue], proba: Proba) -> float:
        if len(proba) < 2:
            return 1.0
        length = model.expected_gradient_length(x)
        if length is None:
            raise ValueError(f"measure {self.name!r} needs a linear model, got {model.describe()}")
        return squash_gradient_length(length)


_PROBABILITY_MEASURES: dict[str, Callable[[Mapping[ClassLabel, float]], float]] = {
    "least-confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}
_COMMITTEE_FUNCTIONS: dict[str, Callable[[Sequence[Mapping[ClassLabel, float]]], float]] = {
    "vote-entropy": vote_entropy,
    "kl-divergence": kl_divergence,
}


def build_measure(
    name: MeasureName, model_config: ModelConfig, model: ScoringModel | None = None
) -> UncertaintyMeasure:
    """The measure called ``name``, checked against the model it will be asked about.

    Raises ``ValueError`` naming the ``measure`` setting when the model cannot serve it:
    a committee measure on a single model, expected gradient length on a non-linear one.
    A model from ``model.factory`` is a committee when it is a river ensemble, and never
    linear here; pass the built ``model`` so that it can be told.

    >>> from stream_al.core.config import ModelConfig
    >>> build_measure("entropy", ModelConfig(name="hoeffding-tree"))
    ProbabilityMeasure('entropy')
    >>> build_measure("vote-entropy", ModelConfig(name="logreg"))
    Traceback (most recent call last):
    ...
    ValueError: measure='vote-entropy' needs a committee model (model.name one of \
adaptive-random-forest, bagging-hoeffding-tree, bagging-logreg, or a factory returning a river \
ensemble), not model.name='logreg'

    """
    factory = model_config.factory
    described = f"model.factory={factory!r}" if factory else f"model.name={model_config.name!r}"
    if name in _PROBABILITY_MEASURES:
        return ProbabilityMeasure(name, _PROBABILITY_MEASURES[name])
    if name in _COMMITTEE_FUNCTIONS:
        committee = (
            model.is_committee
            if factory is not None and model is not None
            else factory is None and model_config.name in COMMITTEE_MODELS
        )
        if not committee:
            raise ValueError(
                f"measure={name!r} needs a committee model (model.name one of "
                f"{', '.join(sorted(COMMITTEE_MODELS))}, or a factory returning a river "
                f"ensemble), not {described}"
            )
        return CommitteeMeasure(name, _COMMITTEE_FUNCTIONS[name])
    if name in GRADIENT_MEASURES:
        if factory is not None or model_config.name not in LINEAR_MODELS:
            raise ValueError(
                f"measure={name!r} needs a linear model (model.name one of "
                f"{', '.join(sorted(LINEAR_MODELS))}), not {described}"
            )
        return ExpectedGradientLength()
    raise ValueError(
        f"measure={name!r} is not a known measure; choose one of {', '.join(get_args(MeasureName))}"
    )
