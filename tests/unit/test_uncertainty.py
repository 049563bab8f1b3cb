"""Uncertainty measures: hand-computed values, bounds, cold models, real models, misuse."""

from __future__ import annotations

import math
import pickle
import random
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_al.core.config import MeasureName, ModelConfig, ModelName
from stream_al.core.models import COMMITTEE_MODELS, LINEAR_MODELS, ScoringModel, build_model
from stream_al.core.types import Features
from stream_al.core.uncertainty import (
    COMMITTEE_MEASURES,
    GRADIENT_MEASURES,
    build_measure,
    entropy,
    kl_divergence,
    least_confidence,
    margin,
    squash_gradient_length,
    vote_entropy,
)

ALL_MEASURES: tuple[MeasureName, ...] = get_args(MeasureName)
ALL_MODELS: tuple[ModelName, ...] = get_args(ModelName)
ln = math.log


def compatible(measure: MeasureName, model: ModelName) -> bool:
    if measure in COMMITTEE_MEASURES:
        return model in COMMITTEE_MODELS
    if measure in GRADIENT_MEASURES:
        return model in LINEAR_MODELS
    return True


def two_blobs(n: int, seed: int = 0) -> list[tuple[dict[str, Any], str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        y = rng.choice(["left", "right"])
        cx = -3.0 if y == "left" else 3.0
        out.append(({"u": rng.gauss(cx, 1.0), "w": rng.gauss(0.0, 1.0)}, y))
    return out


def three_blobs(n: int, seed: int = 0) -> list[tuple[dict[str, Any], str]]:
    rng = random.Random(seed)
    centres = {"a": (-3.0, 0.0), "b": (3.0, 0.0), "c": (0.0, 4.0)}
    out = []
    for _ in range(n):
        y = rng.choice(sorted(centres))
        cx, cy = centres[y]
        kind = rng.choice(["aa", "bb"])  # a string feature, unrelated to the label
        out.append(({"u": rng.gauss(cx, 1.5), "w": rng.gauss(cy, 1.5), "kind": kind}, y))
    return out


def trained(name: ModelName, stream: list[tuple[dict[str, Any], str]], **kw: Any) -> ScoringModel:
    model = build_model(ModelConfig(name=name, **kw))
    for x, y in stream:
        model.learn_one(x, y)
    return model


# Hand-computed values.

BINARY = {"a": 0.8, "b": 0.2}
THREE = {"a": 0.6, "b": 0.3, "c": 0.1}


def test_least_confidence_values() -> None:
    assert least_confidence(BINARY) == pytest.approx(0.2 / 0.5)
    assert least_confidence(THREE) == pytest.approx(0.4 / (2 / 3))
    assert least_confidence({"a": 0.5, "b": 0.5}) == pytest.approx(1.0)
    assert least_confidence({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}) == pytest.approx(1.0)
    assert least_confidence({"a": 1.0, "b": 0.0}) == 0.0


def test_margin_values() -> None:
    assert margin(BINARY) == pytest.approx(1 - (0.8 - 0.2))
    assert margin(THREE) == pytest.approx(1 - (0.6 - 0.3))
    assert margin({"a": 0.4, "b": 0.4, "c": 0.2}) == pytest.approx(1.0)
    assert margin({"a": 0.0, "b": 1.0}) == 0.0


def test_entropy_values() -> None:
    assert entropy(BINARY) == pytest.approx(-(0.8 * ln(0.8) + 0.2 * ln(0.2)) / ln(2))
    h3 = -(0.6 * ln(0.6) + 0.3 * ln(0.3) + 0.1 * ln(0.1))
    assert entropy(THREE) == pytest.approx(h3 / ln(3))
    assert entropy({"a": 0.0, "b": 1.0, "c": 0.0}) == 0.0


def test_probabilities_are_renormalised() -> None:
    assert least_confidence({"a": 8.0, "b": 2.0}) == pytest.approx(least_confidence(BINARY))
    assert entropy({"a": 6, "b": 3, "c": 1}) == pytest.approx(entropy(THREE))


def test_vote_entropy_values() -> None:
    # Three members, votes a, a, b over two classes: normalised by log min(3, 2).
    votes = [{"a": 0.9, "b": 0.1}, {"a": 0.6, "b": 0.4}, {"a": 0.3, "b": 0.7}]
    h = -(2 / 3 * ln(2 / 3) + 1 / 3 * ln(1 / 3))
    assert vote_entropy(votes) == pytest.approx(h / ln(2))
    # Four members, votes a, b, c, c over three classes: normalised by log min(4, 3).
    votes3 = [
        {"a": 0.5, "b": 0.3, "c": 0.2},
        {"a": 0.1, "b": 0.8, "c": 0.1},
        {"a": 0.2, "b": 0.2, "c": 0.6},
        {"c": 1.0},
    ]
    h3 = -(2 * 0.25 * ln(0.25) + 0.5 * ln(0.5))
    assert vote_entropy(votes3) == pytest.approx(h3 / ln(3))
    # Unanimous.
    assert vote_entropy([{"a": 0.9, "b": 0.1}, {"a": 0.55, "b": 0.45}]) == 0.0
    # A tie goes to the smallest label: both members vote "a".
    assert vote_entropy([{"b": 0.5, "a": 0.5}, {"a": 0.7, "b": 0.3}]) == 0.0


def test_kl_divergence_of_a_subnormal_probability_is_finite() -> None:
    # Its consensus, 5e-324 / 3, underflowed to 0: the ratio raised ZeroDivisionError.
    tiny = [{"a": 5e-324, "b": 1.0}, {"a": 0.0, "b": 1.0}, {"a": 0.0, "b": 1.0}]
    assert kl_divergence(tiny) == pytest.approx(0.0, abs=1e-300)


def test_kl_divergence_values() -> None:
    p, q = {"a": 0.9, "b": 0.1}, {"a": 0.5, "b": 0.5}
    mean = {"a": 0.7, "b": 0.3}
    kl = sum(d[c] * ln(d[c] / mean[c]) for d in (p, q) for c in d) / 2
    assert kl_divergence([p, q]) == pytest.approx(kl / ln(2))
    # Three classes, two members: normalised by log min(2, 3).
    r, s = {"a": 0.7, "b": 0.2, "c": 0.1}, {"a": 0.1, "b": 0.2, "c": 0.7}
    kl3 = 0.7 * ln(0.7 / 0.4) + 0.2 * ln(0.2 / 0.2) + 0.1 * ln(0.1 / 0.4)
    assert kl_divergence([r, s]) == pytest.approx(kl3 / ln(2))
    # A class a member does not list has probability 0 for it.
    t, u = {"a": 1.0}, {"a": 0.5, "b": 0.5}
    mean_tu = {"a": 0.75, "b": 0.25}
    kl_tu = (ln(1 / 0.75) + 0.5 * ln(0.5 / 0.75) + 0.5 * ln(0.5 / 0.25)) / 2
    assert kl_divergence([t, u]) == pytest.approx(kl_tu / ln(2))
    assert sum(mean_tu.values()) == 1.0
    # Total disagreement is the maximum, agreement the minimum.
    assert kl_divergence([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}]) == pytest.approx(1.0)
    assert kl_divergence([p, dict(p), dict(p)]) == pytest.approx(0.0, abs=1e-12)


def test_squash_gradient_length() -> None:
    assert squash_gradient_length(0.0) == 0.0
    assert squash_gradient_length(1.0) == 0.5
    assert squash_gradient_length(4.0) == pytest.approx(0.8)
    assert squash_gradient_length(math.inf) == 1.0
    assert squash_gradient_length(math.nan) == 1.0


# Bounds.

probability_dicts = st.dictionaries(
    st.text(alphabet="abcdefgh", min_size=1, max_size=2),
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
    max_size=8,
)


@given(probability_dicts)
def test_probability_measures_are_bounded(proba: dict[str, float]) -> None:
    for fn in (least_confidence, margin, entropy):
        assert 0.0 <= fn(proba) <= 1.0


@given(st.lists(probability_dicts, max_size=12))
def test_committee_measures_are_bounded(committee: list[dict[str, float]]) -> None:
    for fn in (vote_entropy, kl_divergence):
        assert 0.0 <= fn(committee) <= 1.0


@given(
    st.floats(min_value=0.0, max_value=1e300),
    st.floats(min_value=0.0, max_value=1e300),
)
def test_squash_is_monotonic_and_bounded(g1: float, g2: float) -> None:
    lo, hi = sorted((g1, g2))
    assert 0.0 <= squash_gradient_length(lo) <= squash_gradient_length(hi) <= 1.0


# Cold and single-class models are maximally uncertain.


@pytest.mark.parametrize("proba", [{}, {"a": 1.0}, {"a": 0.0, "b": 0.0}])
def test_no_information_is_maximal_uncertainty(proba: dict[str, float]) -> None:
    for fn in (least_confidence, margin, entropy):
        assert fn(proba) == 1.0
    for committee in ([proba, proba], [], [{"a": 1.0}, {"a": 1.0}], [{"a": 0.3, "b": 0.7}]):
        assert vote_entropy(committee) == 1.0
        assert kl_divergence(committee) == 1.0


@pytest.mark.parametrize(
    ("name", "model_name"),
    [(m, n) for m in ALL_MEASURES for n in ALL_MODELS if compatible(m, n)],
)
def test_cold_and_single_class_models(name: MeasureName, model_name: ModelName) -> None:
    config = ModelConfig(name=model_name, n_models=3)
    measure = build_measure(name, config)
    model = build_model(config)
    x = {"u": 0.3, "w": -1.0}
    assert measure(model, x, model.predict_proba_one(x)) == 1.0
    for i in range(40):
        model.learn_one({"u": float(i), "w": 1.0}, "only")
    proba = model.predict_proba_one(x)
    assert proba == {"only": 1.0}
    assert measure(model, x, proba) == 1.0


# Real models.


@pytest.mark.parametrize("model_name", sorted(COMMITTEE_MODELS))
def test_committee_measures_on_a_learnt_committee(model_name: ModelName) -> None:
    model = trained(model_name, two_blobs(1500), n_models=7, seed=3)
    far, boundary = {"u": -7.0, "w": 0.0}, {"u": 0.0, "w": 0.0}
    for name, fn in (("vote-entropy", vote_entropy), ("kl-divergence", kl_divergence)):
        measure = build_measure(name, model.config)  # type: ignore[arg-type]
        values = {}
        for label, x in (("far", far), ("boundary", boundary)):
            members = model.committee_probas(x)
            assert members is not None
            value = measure(model, x, model.predict_proba_one(x))
            assert value == fn(members)
            assert 0.0 <= value <= 1.0
            values[label] = value
        assert values["far"] <= values["boundary"]
        if name == "vote-entropy":
            assert values["far"] == 0.0
    kl = build_measure("kl-divergence", model.config)
    assert kl(model, far, model.predict_proba_one(far)) < kl(
        model, boundary, model.predict_proba_one(boundary)
    )


def _log_loss(p: float, positive: bool) -> float:
    return -math.log(p if positive else 1.0 - p)


def _finite_difference_egl(model: ScoringModel, x: dict[str, Any]) -> float:
    """sum_y p(y|x) ||grad loss(x, y)||, the gradient taken numerically on the heads."""
    lr = model.estimator
    z = lr._scale(x)
    heads = lr.heads()
    classes = list(lr.classes)
    proba = model.predict_proba_one(x)

    def loss(params: list[tuple[dict[Any, float], float]], y: str) -> float:
        total = 0.0
        for (c, _, _), (w, b) in zip(heads, params, strict=True):
            raw = b + sum(w.get(f, 0.0) * zf for f, zf in z.items())
            total += _log_loss(1.0 / (1.0 + math.exp(-raw)), c == y)
        return total

    base = [(dict(w), b) for _, w, b in heads]
    h = 1e-6
    expected = 0.0
    for y in classes:
        squared = 0.0
        for i, (w, b) in enumerate(base):
            for f in [*z, None]:  # None stands for the intercept
                plus = [(dict(ww), bb) for ww, bb in base]
                minus = [(dict(ww), bb) for ww, bb in base]
                if f is None:
                    plus[i] = (plus[i][0], b + h)
                    minus[i] = (minus[i][0], b - h)
                else:
                    plus[i][0][f] = w.get(f, 0.0) + h
                    minus[i][0][f] = w.get(f, 0.0) - h
                squared += ((loss(plus, y) - loss(minus, y)) / (2 * h)) ** 2
        expected += proba[y] * math.sqrt(squared)
    return expected


@pytest.mark.parametrize("stream", [two_blobs(400), three_blobs(600)], ids=["binary", "3-class"])
def test_expected_gradient_length_matches_numerical_gradient(stream: Any) -> None:
    model = trained("logreg", stream)
    measure = build_measure("expected-gradient-length", model.config)
    probes: list[Features] = [
        {"u": 0.1, "w": 0.5, "kind": "aa"},
        {"u": -2.5, "w": 3.0, "kind": "zz"},
        {"u": 9.0, "w": -1.0},
    ]
    for x in probes:
        raw = model.expected_gradient_length(x)
        assert raw is not None
        assert raw == pytest.approx(_finite_difference_egl(model, x), rel=1e-5)
        assert measure(model, x, model.predict_proba_one(x)) == pytest.approx(raw / (1 + raw))


def test_expected_gradient_length_is_larger_where_the_model_hesitates() -> None:
    model = trained("logreg", two_blobs(800))
    measure = build_measure("expected-gradient-length", model.config)
    confident, hesitant = {"u": -3.0, "w": 0.0}, {"u": 0.0, "w": 0.0}
    assert measure(model, hesitant, model.predict_proba_one(hesitant)) > measure(
        model, confident, model.predict_proba_one(confident)
    )


@pytest.mark.parametrize("name", ALL_MEASURES)
def test_measures_on_a_learnt_model_are_bounded_and_pickle(name: MeasureName) -> None:
    model_name: ModelName = "bagging-logreg" if name in COMMITTEE_MEASURES else "logreg"
    stream = three_blobs(500, seed=8)
    model = trained(model_name, stream, n_models=5)
    measure = pickle.loads(pickle.dumps(build_measure(name, model.config)))
    values = [measure(model, x, model.predict_proba_one(x)) for x, _ in stream]
    assert all(0.0 <= v <= 1.0 for v in values)
    # It discriminates between samples (hard votes of 5 members take few values).
    assert len(set(values)) > (1 if name == "vote-entropy" else 100)


# Misuse fails fast.


@pytest.mark.parametrize("name", ALL_MEASURES)
@pytest.mark.parametrize("model_name", ALL_MODELS)
def test_incompatible_pairs_fail_fast(name: MeasureName, model_name: ModelName) -> None:
    config = ModelConfig(name=model_name)
    if compatible(name, model_name):
        assert build_measure(name, config).name == name
        return
    with pytest.raises(ValueError, match=rf"measure='{name}'.*model.name='{model_name}'"):
        build_measure(name, config)


def test_unknown_measure() -> None:
    with pytest.raises(ValueError, match="measure='surprise'"):
        build_measure("surprise", ModelConfig())  # type: ignore[arg-type]


def test_measure_called_with_the_wrong_model_fails() -> None:
    committee = build_measure("vote-entropy", ModelConfig(name="bagging-logreg"))
    gradient = build_measure("expected-gradient-length", ModelConfig(name="logreg"))
    tree = trained("hoeffding-tree", two_blobs(300))
    x = {"u": 0.0, "w": 0.0}
    proba = tree.predict_proba_one(x)
    assert len(proba) == 2
    with pytest.raises(ValueError, match="committee"):
        committee(tree, x, proba)
    with pytest.raises(ValueError, match="linear"):
        gradient(tree, x, proba)


def test_binary_margin_is_the_general_one_bit_for_bit() -> None:
    """The two-class shortcut of ``margin`` gives the general loop's bits: a third class
    of probability 0 changes neither the sum nor the two largest, but takes the loop."""
    rng = random.Random(5)
    odd = [0.0, -0.0, 5e-324, 1e-310, 0.5, 1.0, 1e308, math.inf, math.nan, -1.0]
    for _ in range(20_000):
        a = rng.random() if rng.random() < 0.8 else rng.choice(odd)
        b = 1.0 - a if rng.random() < 0.7 else rng.choice([rng.random(), *odd])
        two, general = margin({"a": a, "b": b}), margin({"a": a, "b": b, "c": 0.0})
        assert two.hex() == general.hex(), (a, b)
