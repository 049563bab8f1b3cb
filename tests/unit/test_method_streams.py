"""The bench streams of issue 13: LED and RBF with drift, and injected outliers."""

from __future__ import annotations

import math
import statistics

from river.datasets import synth

from stream_al.sim.datasets import stream, with_outliers


def test_led_drift_has_ten_classes_and_moves_its_segments_half_way() -> None:
    examples = list(stream("led-drift", limit=2000))
    assert {e.label for e in examples} == {str(d) for d in range(10)}
    assert len(examples[0].features) == 24  # 7 segments and 17 irrelevant ones
    # The first half is river's LEDDrift with 3 drifting segments, the second with 7.
    first = [x for x, _ in synth.LEDDrift(42, 0.1, True, 3).take(1000)]
    second = [x for x, _ in synth.LEDDrift(43, 0.1, True, 7).take(1000)]
    assert [e.features for e in examples] == [
        {str(k): v for k, v in x.items()} for x in first + second
    ]


def test_rbf_drift_has_four_classes_and_its_centroids_move() -> None:
    examples = list(stream("rbf-drift", limit=4000))
    assert {e.label for e in examples} == {"0", "1", "2", "3"}
    still = list(stream("rbf-drift", limit=4000))
    assert [e.features for e in still] == [e.features for e in examples]  # fixed by seed

    def mean_of(part: list) -> list[float]:
        return [statistics.fmean(e.features[str(i)] for e in part) for i in range(10)]

    # Moving centroids: class 0 has moved between the first and the last quarter of it.
    zero = [e for e in examples if e.label == "0"]
    early, late = mean_of(zero[: len(zero) // 4]), mean_of(zero[-len(zero) // 4 :])
    assert math.dist(early, late) > 0.05


def test_outliers_are_the_stated_share_far_from_the_data_with_random_labels() -> None:
    clean = list(stream("sea", limit=20_000))
    noisy, outliers = with_outliers(clean, 0.02, distance=10.0, seed=3)
    assert [e.id for e in noisy] == [e.id for e in clean]
    assert abs(len(outliers) / 20_000 - 0.02) < 0.004
    names = sorted(clean[0].features)
    sd = {k: statistics.pstdev(float(e.features[k]) for e in clean) for k in names}
    mean = {k: statistics.fmean(float(e.features[k]) for e in clean) for k in names}

    def z_norm(features: dict) -> float:
        return math.sqrt(sum(((features[k] - mean[k]) / sd[k]) ** 2 for k in names))

    far = [z_norm(e.features) for e in noisy if e.id in outliers]
    near = [z_norm(e.features) for e in noisy if e.id not in outliers]
    assert min(far) > 3 * max(near)
    labels = [e.label for e in noisy if e.id in outliers]
    assert 0.35 < labels.count("true") / len(labels) < 0.65  # drawn at random
    assert with_outliers(clean, 0.02, seed=3)[1] == outliers
    assert with_outliers(clean, 0.02, seed=4)[1] != outliers
