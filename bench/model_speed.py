"""Per-sample cost of the models: the lean logistic path against river's pipeline.

The service targets 5,000 samples/s end to end in one process, i.e. 200 us per sample for
everything (Kafka, decoding, scoring, strategy). Scoring is one ``predict_proba_one`` per
sample; ``learn_one`` only runs for labelled samples (a share ``budget`` of them).

Compares, on river's shipped Phishing (binary, 9 numeric features) and ImageSegments
(7 classes, 18 numeric features) data sets, and on a synthetic mixed-type stream:

* river: ``StandardScaler | OneVsRestClassifier(LogisticRegression())``
* lean: ``build_model(ModelConfig(name="logreg"))`` (``ScaledLogisticRegression``)

and prints microseconds per sample for predict, learn, and predict + learn, the ratio
river / lean, and prequential accuracies. ``--all`` adds every other model kind.

Run: ``python bench/model_speed.py [--all] [--repeats N]``. Timings are the best of
``repeats`` passes over the data, passes interleaved between contenders so that machine
load hits both alike.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, get_args

from river import compose, datasets, linear_model, multiclass, preprocessing

from stream_al.core.config import MeasureName, ModelConfig, ModelName
from stream_al.core.models import build_model
from stream_al.core.uncertainty import build_measure

Stream = list[tuple[dict[str, Any], str]]


def _mixed_stream(n: int, seed: int) -> Stream:
    """Numbers, booleans and strings, with a label depending on all three."""
    rng = random.Random(seed)
    out: Stream = []
    for _ in range(n):
        colour = rng.choice(["red", "green", "blue", "grey"])
        v = rng.gauss(0.0, 1.0)
        flag = rng.random() < 0.5
        score = v + (1.0 if colour == "red" else -0.5) + (0.7 if flag else 0.0)
        label = "hi" if score + rng.gauss(0.0, 0.5) > 0.3 else "lo"
        x = {"v": v, "w": rng.uniform(0, 100), "flag": flag, "colour": colour}
        out.append((x, label))
    return out


def _river_logreg() -> Any:
    num = compose.SelectType(int, float, bool) | preprocessing.StandardScaler()
    cat = compose.SelectType(str) | preprocessing.OneHotEncoder()
    return (num + cat) | multiclass.OneVsRestClassifier(linear_model.LogisticRegression())


def _river_logreg_numeric() -> Any:
    return preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(
        linear_model.LogisticRegression()
    )


def _lean_logreg() -> Any:
    return build_model(ModelConfig(name="logreg"))


def _builder(name: ModelName) -> Callable[[], Any]:
    return lambda: build_model(ModelConfig(name=name))


def _prequential(make: Callable[[], Any], data: Stream) -> tuple[float, float]:
    """(accuracy, seconds) of one predict-then-learn pass on a fresh model."""
    model = make()
    correct = seen = 0
    start = time.perf_counter()
    for x, y in data:
        proba = model.predict_proba_one(x)
        if proba:
            seen += 1
            correct += max(proba, key=proba.get) == y
        model.learn_one(x, y)
    return correct / max(seen, 1), time.perf_counter() - start


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _costs(make: Callable[[], Any], data: Stream) -> dict[str, float]:
    """Seconds for predict-only, learn-only and predict+learn passes over ``data``."""
    acc, both = _prequential(make, data)
    trained = make()
    learn = _timed(lambda: [trained.learn_one(x, y) for x, y in data])
    predict = _timed(lambda: [trained.predict_proba_one(x) for x, _ in data])
    return {"acc": acc, "predict": predict, "learn": learn, "both": both}


def compare(
    name: str, data: Stream, contenders: Mapping[str, Callable[[], Any]], repeats: int
) -> None:
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in contenders}
    for _ in range(repeats):
        for label, make in contenders.items():
            runs[label].append(_costs(make, data))
    n = len(data)
    best = {
        label: {k: min(r[k] for r in rs) * 1e6 / n for k in ("predict", "learn", "both")}
        | {"acc": rs[0]["acc"]}
        for label, rs in runs.items()
    }
    print(f"\n{name}: {n} samples, best of {repeats}")
    print(f"  {'model':<34}{'predict us':>11}{'learn us':>10}{'pred+learn':>11}{'acc':>8}")
    for label, b in best.items():
        print(
            f"  {label:<34}{b['predict']:>11.2f}{b['learn']:>10.2f}{b['both']:>11.2f}"
            f"{b['acc']:>8.4f}"
        )
    labels = list(best)
    if len(labels) == 2:
        river, lean = best[labels[0]], best[labels[1]]
        ratios = "  ".join(f"{k} x{river[k] / lean[k]:.2f}" for k in ("predict", "learn", "both"))
        print(f"  ratio {labels[0]} / {labels[1]}: {ratios}")
        print(
            f"  lean logreg scoring throughput: {1e6 / lean['predict']:,.0f} samples/s "
            f"(predict only); {1e6 / lean['both']:,.0f} samples/s (predict + learn each)"
        )


def measure_cost(data: Stream, repeats: int) -> None:
    """Extra cost of each uncertainty measure on a trained lean logreg / bagging model."""
    print("\nuncertainty measures on ImageSegments (us per sample, on top of predict):")
    plan: list[tuple[ModelName, list[MeasureName]]] = [
        ("logreg", ["least-confidence", "margin", "entropy", "expected-gradient-length"]),
        ("bagging-logreg", ["vote-entropy", "kl-divergence"]),
    ]
    for model_name, measures in plan:
        config = ModelConfig(name=model_name)
        model = build_model(config)
        for x, y in data:
            model.learn_one(x, y)
        probas = [(x, model.predict_proba_one(x)) for x, _ in data]
        for m in measures:
            measure = build_measure(m, config)
            secs = min(_time_measure(measure, model, probas) for _ in range(repeats))
            print(f"  {model_name:<16}{m:<28}{secs * 1e6 / len(probas):>8.2f}")


def _time_measure(measure: Any, model: Any, probas: list[tuple[dict[str, Any], Any]]) -> float:
    start = time.perf_counter()
    for x, p in probas:
        measure(model, x, p)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--all", action="store_true", help="also time every other model kind")
    args = parser.parse_args(argv)

    phishing = [(x, str(y)) for x, y in datasets.Phishing()]
    segments = [(x, str(y)) for x, y in datasets.ImageSegments()]
    mixed = _mixed_stream(3000, seed=7)
    pair = {"river Scaler|OvR(LogReg)": _river_logreg_numeric, "lean logreg": _lean_logreg}
    compare("Phishing (binary)", phishing, pair, args.repeats)
    compare("ImageSegments (7 classes)", segments, pair, args.repeats)
    mixed_pair = {"river (Scaler+OneHot)|OvR(LogReg)": _river_logreg, "lean logreg": _lean_logreg}
    compare("mixed numbers/bools/strings (binary)", mixed, mixed_pair, args.repeats)
    measure_cost(segments, args.repeats)
    if args.all:
        others: dict[str, Callable[[], Any]] = {
            name: _builder(name) for name in get_args(ModelName)
        }
        compare("ImageSegments, every model (n_models=10)", segments, others, 1)


if __name__ == "__main__":
    main()
