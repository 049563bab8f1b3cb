"""Offline, prequential evaluation: the service's core replayed on a stream.

Each sample is first predicted (that prediction is what accuracy is measured on), then
offered to the strategy; only queried samples are ever learned, their labels arriving
``label_delay`` samples later and flipped at random with probability ``label_noise``.

With ``annotators`` (a pool, one noise rate each) every query is answered by
``annotators_per_item`` = k distinct annotators of the pool drawn at random (all of them
by default), and the learner learns each sample once, from the aggregate of their
answers (``aggregation``): k answers per query, so k labels of cost.
"""

from __future__ import annotations

import csv
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stream_al.core.aggregation import AggregationConfig, AggregationMethod
from stream_al.core.config import LearnerConfig
from stream_al.core.learner import ActiveLearner, LabelStatus, Scored
from stream_al.core.types import ClassLabel
from stream_al.schemas import LabelMessage, Sample
from stream_al.sim.datasets import Example


class NoisyOracle:
    """Answers with the true label, or with probability ``rate`` a different class at random.

    >>> oracle = NoisyOracle(["a", "b"], rate=1.0, seed=1)
    >>> oracle.answer("a")
    'b'
    """

    def __init__(self, classes: Sequence[ClassLabel], rate: float, seed: int) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"label noise rate must be in [0, 1], got {rate}")
        self.classes = sorted(set(classes))
        self.rate = rate
        self._rng = random.Random(seed)

    def answer(self, true_label: ClassLabel) -> ClassLabel:
        if self.rate == 0.0 or self._rng.random() >= self.rate:
            return true_label
        others = [c for c in self.classes if c != true_label]
        return self._rng.choice(others) if others else true_label


#: Called with each example and what the learner made of it.
OnScored = Callable[[Example, Scored], None]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    samples: int
    labels: int
    accuracy: float
    #: The learner's windowed accuracy estimate at this point (NaN before one exists).
    estimate: float = math.nan
    estimate_low: float = math.nan
    estimate_high: float = math.nan


@dataclass
class SimulationResult:
    dataset: str
    model: str
    measure: str
    strategy: str
    budget: float
    samples: int
    labels: int
    query_rate: float
    accuracy: float
    labels_learned: int
    queries_by_reason: dict[str, int]
    label_delay: int
    label_noise: float
    curve: list[CurvePoint] = field(default_factory=list, repr=False)
    #: The unbiased estimate of ``accuracy`` from the random labels, with its interval,
    #: over the whole stream (None when there were none).
    accuracy_estimate: float | None = None
    accuracy_estimate_low: float | None = None
    accuracy_estimate_high: float | None = None
    #: The same from every label weighted by its probability (None if unknown).
    accuracy_estimate_weighted: float | None = None
    accuracy_estimate_weighted_low: float | None = None
    accuracy_estimate_weighted_high: float | None = None
    #: Accuracy on the queried samples only: the biased figure the estimates replace.
    hard_sample_accuracy: float | None = None
    #: Labels of the budget a stopping rule left unspent.
    labels_saved: float = 0.0
    #: What the policy decided on its own: stopped, resumed, drift (position, kind, detail).
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Several annotators: their noise rates, the aggregation, the answers given (the
    #: labeling cost: ``labels`` times k) and the share of learned labels that were true.
    annotators: list[float] = field(default_factory=list)
    aggregation: str = "majority"
    answers: int = 0
    label_accuracy: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["curve"]
        return data

    def write_curve(self, path: Path) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["samples", "labels", "accuracy", "estimate", "estimate_low", "estimate_high"]
            )
            for point in self.curve:
                writer.writerow(
                    [
                        point.samples,
                        point.labels,
                        f"{point.accuracy:.6f}",
                        *(
                            f"{v:.6f}"
                            for v in (point.estimate, point.estimate_low, point.estimate_high)
                        ),
                    ]
                )


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def simulate(
    examples: Iterable[Example],
    config: LearnerConfig,
    *,
    dataset: str = "custom",
    label_delay: int = 0,
    label_noise: float = 0.0,
    seed: int = 0,
    curve_every: int = 10,
    on_scored: OnScored | None = None,
    annotators: Sequence[float] = (),
    annotators_per_item: int | None = None,
    aggregation: AggregationMethod = "majority",
    on_answer: Callable[[LabelMessage], None] | None = None,
) -> SimulationResult:
    """Replay ``examples`` prequentially through an ``ActiveLearner`` built from ``config``.

    The learner's clock advances one second per sample, so time-to-live settings read as
    samples here. ``on_scored`` sees every decision, for a caller that compares them with
    another run's.
    """
    if label_delay < 0:
        raise ValueError(f"label_delay must be >= 0, got {label_delay}")
    examples = list(examples)
    classes = [e.label for e in examples]
    truth = {e.id: e.label for e in examples}
    if annotators:
        # Annotator i's own seeded draws: adding one annotator leaves the others' alone.
        oracles = [
            (f"annotator-{i}", NoisyOracle(classes, rate, seed + 1000 * (i + 1)))
            for i, rate in enumerate(annotators)
        ]
        k = len(annotators) if annotators_per_item is None else annotators_per_item
        if not 1 <= k <= len(annotators):
            raise ValueError(f"annotators_per_item must be in [1, {len(annotators)}], got {k}")
        aggregate = AggregationConfig(k, aggregation, timeout_seconds=math.inf)
        learner = ActiveLearner(config, aggregate)
    else:
        k = 1
        oracles = [("", NoisyOracle(classes, label_noise, seed))]
        learner = ActiveLearner(config)
    draw = random.Random(seed + 7)
    answers = 0
    #: Labels learned, and how many of them were the true label.
    learned = {"total": 0, "true": 0}
    # Labels in flight: (step at which it arrives, label).
    in_flight: deque[tuple[int, LabelMessage]] = deque()
    correct = 0
    hard_asked = hard_right = 0
    curve: list[CurvePoint] = []

    def deliver(until_step: int) -> None:
        while in_flight and in_flight[0][0] <= until_step:
            _, label = in_flight.popleft()
            outcome = learner.learn(label, now=float(until_step))
            if outcome.status is LabelStatus.LEARNED:
                learned["total"] += 1
                learned["true"] += outcome.label == truth.get(outcome.sample_id)

    for step, example in enumerate(examples):
        deliver(step)
        scored = learner.score(Sample(id=example.id, features=example.features), now=float(step))
        correct += scored.label == example.label
        if on_scored is not None:
            on_scored(example, scored)
        for query in scored.queries:
            hard_asked += 1
            hard_right += query.predicted_label == truth[query.id]
            chosen = oracles if k == len(oracles) else draw.sample(oracles, k)
            for name, oracle in chosen:
                answer = LabelMessage(
                    id=query.id, label=oracle.answer(truth[query.id]), annotator=name or None
                )
                answers += 1
                if on_answer is not None:
                    on_answer(answer)
                in_flight.append((step + label_delay + 1, answer))
        seen = step + 1
        if seen % curve_every == 0 or seen == len(examples):
            est = learner.accuracy_estimate()
            point = CurvePoint(
                seen, learner.policy.queries, correct / seen, est.value, est.low, est.high
            )
            curve.append(point)
    deliver(len(examples) + label_delay + 1)
    random_total = learner.accuracy_estimate("random", "total")
    weighted_total = learner.accuracy_estimate("weighted", "total")

    samples = len(examples)
    queries = learner.policy.queries
    return SimulationResult(
        dataset=dataset,
        model=config.model.name,
        measure=config.measure,
        strategy=config.strategy.name,
        budget=config.strategy.budget,
        samples=samples,
        labels=queries,
        query_rate=queries / samples if samples else 0.0,
        accuracy=correct / samples if samples else 0.0,
        labels_learned=learner.labels_learned,
        queries_by_reason=dict(learner.queries_by_reason),
        label_delay=label_delay,
        label_noise=label_noise,
        curve=curve,
        accuracy_estimate=_finite(random_total.value),
        accuracy_estimate_low=_finite(random_total.low),
        accuracy_estimate_high=_finite(random_total.high),
        accuracy_estimate_weighted=_finite(weighted_total.value),
        accuracy_estimate_weighted_low=_finite(weighted_total.low),
        accuracy_estimate_weighted_high=_finite(weighted_total.high),
        hard_sample_accuracy=hard_right / hard_asked if hard_asked else None,
        labels_saved=learner.policy.ledger.saved,
        events=[event.as_dict() for event in learner.policy.events],
        annotators=list(annotators),
        aggregation=aggregation if annotators else "majority",
        answers=answers,
        label_accuracy=learned["true"] / learned["total"] if learned["total"] else None,
    )
