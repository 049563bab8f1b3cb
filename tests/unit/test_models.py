"""Models built from a ModelConfig: contract, feature types, accuracy, determinism."""

from __future__ import annotations

import math
import pickle
import random
from typing import Any, get_args

import pytest
from river import datasets, linear_model, multiclass, preprocessing

from stream_al.core.config import ModelConfig, ModelName
from stream_al.core.models import (
    COMMITTEE_MODELS,
    LINEAR_MODELS,
    ScaledLogisticRegression,
    ScoringModel,
    build_model,
)

ALL_MODELS: tuple[ModelName, ...] = get_args(ModelName)
Stream = list[tuple[dict[str, Any], str]]


def mixed_stream(n: int, seed: int = 0) -> Stream:
    """Numbers, booleans and strings; the label depends on a number and on a string.

    P("hi") rises with ``v`` and is much higher for colour "red" than for "blue", so a
    model that ignores either feature kind cannot order the probes below correctly.
    """
    rng = random.Random(seed)
    out: Stream = []
    for _ in range(n):
        colour = rng.choice(["red", "green", "blue"])
        v = rng.gauss(0.0, 1.0)
        shift = {"red": 2.0, "green": 0.0, "blue": -2.0}[colour]
        label = "hi" if v + shift + rng.gauss(0.0, 0.3) > 0 else "lo"
        x = {"v": v, "noise": rng.uniform(0.0, 10.0), "flag": rng.random() < 0.5, "colour": colour}
        out.append((x, label))
    return out


def blobs(n: int, centres: dict[str, tuple[float, float]], seed: int = 0) -> Stream:
    rng = random.Random(seed)
    labels = list(centres)
    out: Stream = []
    for _ in range(n):
        y = rng.choice(labels)
        cx, cy = centres[y]
        out.append(({"f1": rng.gauss(cx, 1.0), "f2": rng.gauss(cy, 1.0)}, y))
    return out


def trained(name: ModelName, stream: Stream, **config: Any) -> ScoringModel:
    model = build_model(ModelConfig(name=name, **config))
    for x, y in stream:
        model.learn_one(x, y)
    return model


def prequential_accuracy(model: Any, stream: Stream) -> float:
    correct = seen = 0
    for x, y in stream:
        proba = model.predict_proba_one(x)
        if proba:
            seen += 1
            correct += max(proba, key=proba.get) == y
        model.learn_one(x, y)
    return correct / seen


@pytest.mark.parametrize("name", ALL_MODELS)
def test_cold_model_predicts_nothing(name: ModelName) -> None:
    model = build_model(ModelConfig(name=name, n_models=3))
    assert model.predict_proba_one({"v": 1.0, "colour": "red"}) == {}
    assert model.n_learned == 0
    assert model.classes == frozenset()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_probabilities_on_mixed_features(name: ModelName) -> None:
    stream = mixed_stream(3000)
    model = trained(name, stream, n_models=5)
    assert model.classes == {"hi", "lo"}
    assert model.n_learned == len(stream)
    for x, _ in stream[:50]:
        proba = model.predict_proba_one(x)
        assert set(proba) <= {"hi", "lo"}
        assert all(isinstance(c, str) and 0.0 <= p <= 1.0 for c, p in proba.items())
        assert math.isclose(sum(proba.values()), 1.0)

    def p_hi(v: float, colour: str) -> float:
        return model.predict_proba_one({"v": v, "noise": 5.0, "flag": True, "colour": colour}).get(
            "hi", 0.0
        )

    # The string feature is used: same number, different colour.
    assert p_hi(0.0, "red") > p_hi(0.0, "blue")
    # The numeric feature is used: same colour, different number.
    assert p_hi(2.0, "green") > p_hi(-2.0, "green")


@pytest.mark.parametrize("name", ALL_MODELS)
def test_single_class_so_far(name: ModelName) -> None:
    model = build_model(ModelConfig(name=name, n_models=3))
    for i in range(30):
        model.learn_one({"v": float(i)}, "only")
    proba = model.predict_proba_one({"v": 3.0})
    assert proba == {"only": 1.0}


@pytest.mark.parametrize("name", ALL_MODELS)
def test_any_two_strings_are_a_binary_problem(name: ModelName) -> None:
    stream = [
        (x, {"hi": "yes please", "lo": "no thanks"}[y]) for x, y in mixed_stream(1500, seed=3)
    ]
    model = trained(name, stream, n_models=3)
    assert model.classes == {"yes please", "no thanks"}
    proba = model.predict_proba_one({"v": 3.0, "noise": 1.0, "flag": False, "colour": "red"})
    assert max(proba, key=proba.__getitem__) == "yes please"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_same_seed_same_model_and_pickles(name: ModelName) -> None:
    stream = mixed_stream(600, seed=5)
    first = trained(name, stream[:400], n_models=3, seed=11)
    second = trained(name, stream[:400], n_models=3, seed=11)
    clone = pickle.loads(pickle.dumps(first))
    for x, y in stream[400:]:
        expected = first.predict_proba_one(x)
        assert second.predict_proba_one(x) == expected
        assert clone.predict_proba_one(x) == expected
        first.learn_one(x, y)
        second.learn_one(x, y)
        clone.learn_one(x, y)
    assert clone.describe() == first.describe()


@pytest.mark.parametrize("name", sorted(COMMITTEE_MODELS))
def test_seed_changes_committees(name: ModelName) -> None:
    stream = mixed_stream(600, seed=5)
    a = trained(name, stream, n_models=3, seed=1)
    b = trained(name, stream, n_models=3, seed=2)
    probes = [x for x, _ in stream[:50]]
    assert [a.committee_probas(x) for x in probes] != [b.committee_probas(x) for x in probes]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_committee_probas(name: ModelName) -> None:
    model = trained(name, mixed_stream(500), n_models=4)
    members = model.committee_probas({"v": 0.1, "noise": 3.0, "flag": True, "colour": "green"})
    if name not in COMMITTEE_MODELS:
        assert members is None
        return
    assert members is not None
    assert len(members) == 4
    for member in members:
        assert set(member) <= {"hi", "lo"}
        assert not member or math.isclose(sum(member.values()), 1.0)
    assert sum(bool(m) for m in members) >= 2


def test_cold_forest_has_no_members_yet() -> None:
    model = build_model(ModelConfig(name="adaptive-random-forest", n_models=3))
    assert model.committee_probas({"v": 1.0}) == []


@pytest.mark.parametrize("name", ALL_MODELS)
def test_expected_gradient_length_only_for_linear(name: ModelName) -> None:
    model = trained(name, mixed_stream(300), n_models=3)
    egl = model.expected_gradient_length({"v": 0.5, "noise": 1.0, "flag": True, "colour": "red"})
    if name in LINEAR_MODELS:
        assert egl is not None
        assert math.isfinite(egl)
        assert egl > 0.0
    else:
        assert egl is None


def test_labels_must_be_strings() -> None:
    model = build_model(ModelConfig())
    with pytest.raises(TypeError, match="strings"):
        model.learn_one({"v": 1.0}, True)  # type: ignore[arg-type]


def test_describe_tells_model_and_progress() -> None:
    model = trained("bagging-hoeffding-tree", mixed_stream(20), n_models=3, seed=9)
    text = model.describe()
    assert "Bagging(3 x HoeffdingTreeClassifier)" in text
    assert "seed=9" in text
    assert "classes=2" in text
    assert "learned=20" in text
    assert "OneVsRest(LogisticRegression)" in build_model(ModelConfig()).describe()


# The lean logistic regression against river.


def _river_binary_logreg() -> Any:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def test_logreg_is_river_binary_logistic_regression_on_two_classes() -> None:
    """Same probabilities as StandardScaler | LogisticRegression, sample after sample."""
    lean = build_model(ModelConfig(name="logreg"))
    river_model = _river_binary_logreg()
    worst = 0.0
    compared = 0
    for x, y in datasets.Phishing():
        proba = lean.predict_proba_one(x)
        # Before both classes are known, the lean model can only name the one it has seen.
        if len(proba) == 2:
            expected = river_model.predict_proba_one(x)[True]
            worst = max(worst, abs(proba["True"] - expected))
            compared += 1
        lean.learn_one(x, str(y))
        river_model.learn_one(x, y)
    assert compared > 1200
    assert worst < 1e-9


def test_logreg_reference_accuracy_phishing() -> None:
    # Reference: 0.893 for StandardScaler | LogisticRegression, prequential, all labels.
    accuracy = prequential_accuracy(
        build_model(ModelConfig()), [(x, str(y)) for x, y in datasets.Phishing()]
    )
    assert accuracy >= 0.8925


def test_logreg_reference_accuracy_image_segments() -> None:
    # Reference: 0.796 for StandardScaler | OneVsRestClassifier(LogisticRegression).
    stream = [(x, str(y)) for x, y in datasets.ImageSegments()]
    river_ovr = preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(
        linear_model.LogisticRegression()
    )
    river_accuracy = prequential_accuracy(river_ovr, stream)
    accuracy = prequential_accuracy(build_model(ModelConfig()), stream)
    assert accuracy >= 0.7955
    assert accuracy >= river_accuracy - 0.002


def test_logreg_grows_from_binary_to_one_vs_rest() -> None:
    centres = {"a": (-4.0, 0.0), "b": (4.0, 0.0), "c": (0.0, 6.0)}
    model = build_model(ModelConfig())
    for x, y in blobs(400, {"a": centres["a"], "b": centres["b"]}, seed=1):
        model.learn_one(x, y)
    assert len(model.estimator.heads()) == 1
    for x, y in blobs(1500, centres, seed=2):
        model.learn_one(x, y)
    assert [c for c, _, _ in model.estimator.heads()] == ["a", "b", "c"]
    for label, (cx, cy) in centres.items():
        proba = model.predict_proba_one({"f1": cx, "f2": cy})
        assert set(proba) == {"a", "b", "c"}
        assert math.isclose(sum(proba.values()), 1.0)
        assert max(proba, key=proba.__getitem__) == label


def test_third_class_keeps_the_binary_odds() -> None:
    """Splitting the binary head into two one-vs-rest heads changes no odds between them."""
    lr = ScaledLogisticRegression(lr=0.0, intercept_lr=0.0)
    # Zero learning rates: learning only updates the scaler and the class list.
    stream = blobs(200, {"a": (-1.0, 0.0), "b": (1.0, 0.0)}, seed=4)
    lr.learn_one(*stream[0])
    lr.learn_one(*stream[1])
    lr._heads[0].update({"f1": 0.7, "f2": -0.2})
    lr._intercepts[0] = 0.3
    probe = {"f1": 0.4, "f2": -1.1}
    before = lr.predict_proba_one(probe)
    lr.learn_one(probe, "c")
    after = lr.predict_proba_one(probe)
    # The scaler moved with the new sample; recompute the binary odds on the new scale.
    z = lr._scale(probe)
    s = 1.0 / (1.0 + math.exp(-(0.7 * z["f1"] - 0.2 * z["f2"] + 0.3)))
    assert math.isclose(after["a"] / after["b"], s / (1.0 - s), rel_tol=1e-12)
    assert after["c"] == pytest.approx(0.5 / (1.0 + 0.5))
    assert set(before) == {"a", "b"}


def test_logreg_ignores_non_finite_numbers() -> None:
    model = build_model(ModelConfig())
    stream = mixed_stream(300)
    for x, y in stream:
        model.learn_one(x, y)
    model.learn_one({"v": math.nan, "noise": math.inf, "colour": "red"}, "hi")
    for x, _ in stream[:20]:
        assert all(math.isfinite(p) for p in model.predict_proba_one(x).values())
    assert all(math.isfinite(p) for p in model.predict_proba_one({"v": math.nan}).values())


def test_binary_fast_path_is_the_reference_form_bit_for_bit() -> None:
    """``predict_proba_one`` on two classes (inlined, its finiteness told by the score)
    gives the bits of the readable form, ``_proba_from_sigmoids(_head_sigmoids(_scale(x)))``,
    also for NaN, infinite, huge, unseen, string and missing features."""
    model = ScaledLogisticRegression()
    for x, y in mixed_stream(300):
        model.learn_one(x, y)
    model.learn_one({"v": 0.5, "zero_weight": 0.0, "noise": 1.0}, "hi")  # a feature of var 0
    rng = random.Random(3)
    odd = [math.nan, math.inf, -math.inf, 1e308, -1e308, 1e-320, 0.0, "red", True]
    probes: list[dict[str, Any]] = [x for x, _ in mixed_stream(50, seed=1)]
    for _ in range(400):
        x: dict[str, Any] = {"v": rng.gauss(0.0, 1.0), "noise": rng.uniform(0.0, 10.0)}
        for name in rng.sample(["v", "noise", "flag", "zero_weight", "unseen"], 2):
            x[name] = rng.choice(odd)
        probes.append(x)
    for x in probes:
        reference = model._proba_from_sigmoids(model._head_sigmoids(model._scale(x)))
        got = model.predict_proba_one(x)
        assert list(got) == list(reference)
        assert [p.hex() for p in got.values()] == [p.hex() for p in reference.values()], x


def test_logreg_scales_numbers_and_one_hot_encodes_strings() -> None:
    lr = ScaledLogisticRegression()
    values = [1.0, 2.0, 4.0, 9.0]
    for v in values:
        lr.learn_one({"v": v, "flag": v > 3, "colour": "red"}, "x")
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    z = lr._scale({"v": 5.0, "flag": True, "colour": "blue", "unseen": 3.0})
    assert z["v"] == pytest.approx((5.0 - mean) / std)
    assert z["flag"] == pytest.approx((1.0 - 0.5) / 0.5)
    assert z[("colour", "blue")] == 1.0
    assert z["unseen"] == 0.0
    assert ("colour", "red") not in z
