"""Streams by name: river's bundled datasets and synthetic drifting generators.

Nothing here downloads: the bundled datasets ship inside river's wheel and the
synthetic streams are generated from a seed.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from river import datasets
from river.datasets import synth

from stream_al.core.types import ClassLabel, Features
from stream_al.schemas import class_label


@dataclass(frozen=True, slots=True)
class Example:
    """One sample of a stream with its true label."""

    id: str
    features: Features
    label: ClassLabel


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    #: Samples in the stream when no limit is given.
    size: int
    #: (seed, size) -> pairs; size matters to synthetic streams, whose drift sits within it.
    make: Callable[[int, int], Iterator[tuple[dict, object]]]


def _sea_drift(seed: int, size: int) -> Iterator[tuple[dict, object]]:
    # An abrupt concept change half way: SEA variant 0 becomes variant 2. (river's
    # ConceptDriftStream overflows for a width of one sample, so the halves are chained.)
    half = size // 2
    return itertools.chain(
        synth.SEA(variant=0, seed=seed).take(half),
        synth.SEA(variant=2, seed=seed + 1).take(size - half),
    )


def _sea_flip(seed: int, size: int) -> Iterator[tuple[dict, object]]:
    # A label flip half way: the same SEA concept, its two classes swapped. The features
    # do not change, so only the errors of labelled samples can reveal this drift.
    half = size // 2
    for index, (x, y) in enumerate(synth.SEA(variant=0, seed=seed).take(size)):
        yield x, (not y) if index >= half else y


def _agrawal_switch(seed: int, size: int) -> Iterator[tuple[dict, object]]:
    # A function switch half way: river's Agrawal loan classification function 1 becomes
    # function 4 (river numbers them from 0); the features keep their distribution.
    half = size // 2
    return itertools.chain(
        synth.Agrawal(classification_function=1, seed=seed).take(half),
        synth.Agrawal(classification_function=4, seed=seed + 1).take(size - half),
    )


def _hyperplane(seed: int, size: int) -> Iterator[tuple[dict, object]]:
    # A rotating hyperplane: a gradual, continuous drift.
    stream = synth.Hyperplane(seed=seed, n_features=10, n_drift_features=5, mag_change=0.001)
    return iter(stream.take(size))


def _led_drift(seed: int, size: int) -> Iterator[tuple[dict, object]]:
    # Seven-segment digits (10 classes) with 10 % noise and 17 irrelevant segments; half
    # way the relevant segments move (3 swapped, then 7), an abrupt drift of the inputs.
    # (river's LEDDrift permutes its drifting features once, at construction.)
    half = size // 2
    first = synth.LEDDrift(seed, noise_percentage=0.1, irrelevant_features=True, n_drift_features=3)
    second = synth.LEDDrift(
        seed + 1, noise_percentage=0.1, irrelevant_features=True, n_drift_features=7
    )
    return itertools.chain(first.take(half), second.take(size - half))


def _rbf_drift(seed: int, size: int) -> Iterator[tuple[dict, object]]:
    # 50 Gaussian centroids over 4 classes in 10 dimensions, all of them moving: a
    # continuous drift that keeps the class regions changing shape.
    stream = synth.RandomRBFDrift(
        seed_model=seed, seed_sample=seed + 1, n_classes=4, change_speed=0.001
    )
    return iter(stream.take(size))


def _sea(seed: int, size: int) -> Iterator[tuple[dict, object]]:
    return iter(synth.SEA(variant=0, seed=seed).take(size))


SYNTHETIC_SIZE = 20_000

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            "phishing",
            "phishing web pages, 9 features, binary (bundled)",
            1250,
            lambda seed, size: iter(datasets.Phishing()),
        ),
        DatasetInfo(
            "image-segments",
            "image regions, 18 features, 7 classes (bundled)",
            2310,
            lambda seed, size: iter(datasets.ImageSegments()),
        ),
        DatasetInfo(
            "bananas",
            "two interleaved banana shapes, 2 features, binary (bundled)",
            5300,
            lambda seed, size: iter(datasets.Bananas()),
        ),
        DatasetInfo(
            "sea-drift",
            "SEA concepts with an abrupt change half way (synthetic)",
            SYNTHETIC_SIZE,
            _sea_drift,
        ),
        DatasetInfo(
            "sea-flip",
            "SEA concept 0 with its class labels swapped half way (synthetic)",
            SYNTHETIC_SIZE,
            _sea_flip,
        ),
        DatasetInfo(
            "agrawal-switch",
            "Agrawal loans, classification function 1 switches to 4 half way (synthetic)",
            SYNTHETIC_SIZE,
            _agrawal_switch,
        ),
        DatasetInfo(
            "hyperplane",
            "rotating hyperplane, gradual drift (synthetic)",
            SYNTHETIC_SIZE,
            _hyperplane,
        ),
        DatasetInfo(
            "led-drift",
            "LED digits, 10 classes, 10 % noise, relevant segments moved half way (synthetic)",
            SYNTHETIC_SIZE,
            _led_drift,
        ),
        DatasetInfo(
            "rbf-drift",
            "random RBF, 4 classes, 50 moving centroids (synthetic)",
            SYNTHETIC_SIZE,
            _rbf_drift,
        ),
        DatasetInfo(
            "sea",
            "SEA concept 0, stationary (synthetic)",
            SYNTHETIC_SIZE,
            _sea,
        ),
    ]
}


#: A stream given by name (a bundled or synthetic dataset), or as examples already read
#: (a file of your own, ``stream_al.sim.files``).
Source = str | Sequence[Example]


def examples_of(source: Source, *, seed: int = 42, limit: int | None = None) -> Iterator[Example]:
    """The examples of ``source``: a dataset's by name, or those given."""
    if isinstance(source, str):
        return stream(source, seed=seed, limit=limit)
    return itertools.islice(source, limit)


def source_name(source: Source) -> str:
    return source if isinstance(source, str) else "the given examples"


def with_outliers(
    examples: Sequence[Example], share: float, *, distance: float = 10.0, seed: int = 0
) -> tuple[list[Example], set[str]]:
    """``examples`` with a share of them replaced by outliers far from the data.

    Each sample becomes an outlier with probability ``share``: its numeric features are
    redrawn in a random direction from their means, each feature on average ``distance``
    standard deviations out, and its label is a class drawn at random, so that its label
    teaches nothing. Ids are kept; the outliers' ids are returned beside the stream.

    >>> examples = list(stream("sea", limit=1000))
    >>> noisy, outliers = with_outliers(examples, 0.02, seed=1)
    >>> len(noisy), 10 <= len(outliers) <= 35
    (1000, True)
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"outlier share must be in [0, 1], got {share}")
    rng = random.Random(seed)
    numeric = sorted(
        {k for e in examples for k, v in e.features.items() if not isinstance(v, str | bool)}
    )
    values = {k: [float(e.features[k]) for e in examples if k in e.features] for k in numeric}
    mean = {k: statistics.fmean(v) for k, v in values.items()}
    sd = {k: statistics.pstdev(v) or 1.0 for k, v in values.items()}
    classes = sorted({e.label for e in examples})
    out: list[Example] = []
    outliers: set[str] = set()
    for example in examples:
        if rng.random() >= share:
            out.append(example)
            continue
        direction = [rng.gauss(0.0, 1.0) for _ in numeric]
        norm = math.sqrt(sum(d * d for d in direction)) or 1.0
        features = dict(example.features)
        for k, d in zip(numeric, direction, strict=True):
            features[k] = mean[k] + sd[k] * distance * d / norm * math.sqrt(len(numeric))
        out.append(Example(example.id, features, rng.choice(classes)))
        outliers.add(example.id)
    return out, outliers


def stream(name: str, *, seed: int = 42, limit: int | None = None) -> Iterator[Example]:
    """The examples of dataset ``name`` with ids ``<name>-<index>`` and string labels.

    ``limit`` cuts a bundled dataset short; a synthetic one is generated at that length
    (and may then be longer than its default size).

    >>> first = next(stream("phishing"))
    >>> first.id, first.label
    ('phishing-0', 'true')
    """
    try:
        info = DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None
    # A synthetic stream is generated at the length asked for, so its drift stays mid-way.
    pairs = info.make(seed, limit if limit is not None else info.size)
    if limit is not None:
        pairs = itertools.islice(pairs, limit)
    for index, (x, y) in enumerate(pairs):
        yield Example(f"{name}-{index}", {str(k): v for k, v in x.items()}, class_label(y))
