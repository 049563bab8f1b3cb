"""The active learner: score a sample, decide whether to ask, learn from labels."""

from __future__ import annotations

import math
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from stream_al.core.config import LearnerConfig
from stream_al.core.estimate import AccuracyEstimate, EstimateKind, EstimateScope
from stream_al.core.models import build_model
from stream_al.core.pending import Lookup, PendingQuery, PendingStore
from stream_al.core.strategies import build_policy
from stream_al.core.types import ClassLabel, Features, Proba
from stream_al.core.uncertainty import build_measure
from stream_al.schemas import LabelMessage, Query, Sample


class ModelError(ValueError):
    """The model gave an answer no decision can be built on (NaN or infinite values)."""


#: Beyond this magnitude a feature's square overflows a float: a running variance (the
#: scaler in front of every linear model) would become infinite and the model NaN for good.
MAX_LEARNABLE_MAGNITUDE = 1e150


def _refuse_overflowing(features: Features) -> None:
    for name, value in features.items():
        if not isinstance(value, bool | str) and abs(value) > MAX_LEARNABLE_MAGNITUDE:
            raise ModelError(
                f"feature {name!r} = {value:g} is beyond +-{MAX_LEARNABLE_MAGNITUDE:g}: "
                "learning it would overflow the model for good"
            )


class LabelStatus(StrEnum):
    """What became of a label (also the ``status`` of the labels metric)."""

    LEARNED = "learned"
    DUPLICATE = "duplicate"
    UNKNOWN_ID = "unknown_id"
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Scored:
    """The outcome of scoring one sample."""

    sample_id: str
    label: ClassLabel | None
    probabilities: Proba
    uncertainty: float
    #: Queries to send now. A stream strategy asks about the sample just scored or about
    #: none; a pool strategy may ask about several recent samples once its window is full.
    queries: tuple[Query, ...]
    #: The sample was asked about before (a replay, or its id came twice): the policy was
    #: not offered it again, so it is neither counted nor asked about twice.
    asked_before: bool = False

    @property
    def queried(self) -> bool:
        return self.asked_before or any(query.id == self.sample_id for query in self.queries)


@dataclass(frozen=True, slots=True)
class Learned:
    """The outcome of one label."""

    status: LabelStatus
    #: Whether the prediction made when the sample was scored was right (None if unknown).
    correct: bool | None = None
    #: When the sample was sent to the oracle (epoch seconds), for label latency.
    asked_at: float | None = None
    #: Why a label was not learned, in words.
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Recent:
    features: Features
    label: ClassLabel | None
    probabilities: Proba
    uncertainty: float


class RollingMean:
    """Mean of the last ``size`` values, updated in O(1).

    >>> mean = RollingMean(3)
    >>> for v in [1, 0, 0, 1]:
    ...     mean.add(v)
    >>> round(mean.value, 3)
    0.333
    """

    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._total = 0.0

    def add(self, value: float) -> None:
        if len(self._values) == self._values.maxlen:
            self._total -= self._values[0]
        self._values.append(value)
        self._total += value

    @property
    def value(self) -> float:
        """The mean, or NaN before the first value."""
        return self._total / len(self._values) if self._values else float("nan")


class ActiveLearner:
    """A river model, an uncertainty measure and a query strategy, one sample at a time.

    The learner knows nothing about Kafka: the service, the simulator and the tests drive
    it the same way, so the same samples and labels in the same order give the same
    decisions. ``now`` (epoch seconds) is a parameter so that callers own the clock.

    >>> from stream_al.core.config import LearnerConfig, StrategyConfig
    >>> learner = ActiveLearner(LearnerConfig(strategy=StrategyConfig(budget=0.1, warmup=2)))
    >>> scored = learner.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    >>> scored.label, scored.uncertainty, scored.queried  # a cold model knows nothing: it asks
    (None, 1.0, True)
    >>> learner.learn(LabelMessage(id="a", label="yes"), now=1.0).status
    <LabelStatus.LEARNED: 'learned'>
    >>> learner.learn(LabelMessage(id="a", label="yes"), now=2.0).status
    <LabelStatus.DUPLICATE: 'duplicate'>
    """

    def __init__(self, config: LearnerConfig) -> None:
        self.config = config
        self.model = build_model(config.model)
        self.measure = build_measure(config.measure, config.model)
        self.policy = build_policy(config.strategy)
        self.pending = PendingStore(config.pending_max, config.pending_ttl_seconds)
        self.samples_seen = 0
        self.labels_learned = 0
        self.labels_by_status: Counter[str] = Counter()
        #: Accuracy on the *queried* samples: the hardest by construction, so biased low
        #: (the "hard-sample accuracy"); see ``accuracy_estimate`` for the whole stream.
        self.recent_accuracy = RollingMean(config.accuracy_window)
        self.policy.monitor.open_max = config.pending_max
        self.recent_query_rate = RollingMean(config.strategy.window)
        self._recent: OrderedDict[str, _Recent] = OrderedDict()
        # Ids already learned, so a second label for one is not learned twice; bounded
        # like the pending store, which is where the ids come from.
        self._learned_ids: OrderedDict[str, None] = OrderedDict()
        self._learned_ids_max = max(config.pending_max, 1) * 2

    def score(self, sample: Sample, now: float | None = None) -> Scored:
        """Predict ``sample``, measure its uncertainty and decide whether to ask.

        Raises ``ModelError`` (and changes nothing) when the model's probabilities or
        the uncertainty are not finite numbers: such a sample gets no decision.
        """
        now = time.time() if now is None else now
        x = sample.features
        proba = self.model.predict_proba_one(x)
        label = max(proba, key=proba.__getitem__) if proba else None
        uncertainty = self.measure(self.model, x, proba)
        if not (math.isfinite(uncertainty) and all(map(math.isfinite, proba.values()))):
            raise ModelError(
                f"the model gave non-finite values (probabilities {proba}, uncertainty "
                f"{uncertainty}) for these features"
            )
        if self.knows(sample.id):
            return Scored(sample.id, label, proba, uncertainty, (), asked_before=True)
        self.samples_seen += 1

        self._recent[sample.id] = _Recent(x, label, proba, uncertainty)
        self._recent.move_to_end(sample.id)
        while len(self._recent) > self.policy.lookback:
            self._recent.popitem(last=False)

        queries = []
        for selection in self.policy.offer(sample.id, uncertainty, x):
            picked = self._recent[selection.key]
            decision = selection.decision
            assert decision.reason is not None
            queries.append(
                Query(
                    id=selection.key,
                    features=picked.features,
                    predicted_label=picked.label,
                    probabilities=picked.probabilities,
                    uncertainty=picked.uncertainty,
                    strategy=self.config.strategy.name,
                    reason=decision.reason,
                    threshold=decision.threshold,
                    created_at=datetime.fromtimestamp(now, UTC),
                )
            )
            self.pending.add(selection.key, PendingQuery(picked.features, picked.label, now), now)
        scored = Scored(sample.id, label, proba, uncertainty, tuple(queries))
        self.recent_query_rate.add(len(queries))
        return scored

    def knows(self, sample_id: str) -> bool:
        """Whether ``sample_id`` was asked about (its label pending) or already learned."""
        return sample_id in self.pending or sample_id in self._learned_ids

    def recover_query(self, query: Query, samples_seen: int, charge: bool) -> bool:
        """Take in a query read back from the oracle log; returns whether it was new here.

        A query already known (pending, or its label learned) changes nothing, so the log
        may be read twice. Otherwise its sample is pending again, with its features, and
        its label can be learned even if it carries none. ``charge`` counts it in the
        strategy's account too: for this replica's own queries made after the checkpoint
        this learner was restored from, so that a restart spends warm-up and budget once.
        ``samples_seen`` is how many samples the replica had seen when it asked.
        """
        if self.knows(query.id):
            return False
        asked_at = query.created_at.timestamp()
        pending = PendingQuery(query.features, query.predicted_label, asked_at)
        self.pending.add(query.id, pending, asked_at)
        if charge:
            self.policy.recover(query.reason, samples_seen)
            self.samples_seen = max(self.samples_seen, samples_seen)
        return True

    def withdraw(self, sample_id: str) -> None:
        """Forget that ``sample_id`` was asked about: its query could not be delivered."""
        self.pending.discard(sample_id)

    @property
    def queries_by_reason(self) -> dict[str, int]:
        """Queries sent so far, by reason (the strategy's own account)."""
        return self.policy.queries_by_reason

    def learn(self, label: LabelMessage, now: float | None = None) -> Learned:
        """Learn from ``label``, joined with the features kept when its sample was queried.

        A label that carries its own features is learned even when its sample was never
        queried (or has expired); otherwise such a label is reported, not learned.
        """
        now = time.time() if now is None else now
        classes = self.config.classes
        if classes is not None and label.label not in classes:
            detail = f"label {label.label!r} is not one of the classes {', '.join(classes)}"
            return self._outcome(Learned(LabelStatus.INVALID, detail=detail))
        if label.id in self._learned_ids:
            return self._outcome(Learned(LabelStatus.DUPLICATE, detail="already learned"))
        lookup, pending = self.pending.pop(label.id, now)
        if pending is not None:
            features, predicted, asked_at = pending.features, pending.predicted, pending.asked_at
        elif label.features is not None:
            features, predicted, asked_at = label.features, None, None
        elif lookup is Lookup.EXPIRED:
            detail = "its query expired from the pending store and it carries no features"
            return self._outcome(Learned(LabelStatus.EXPIRED, detail=detail))
        else:
            detail = "never queried here and it carries no features"
            return self._outcome(Learned(LabelStatus.UNKNOWN_ID, detail=detail))

        _refuse_overflowing(features)
        if self.policy.model_reset_requested:  # a detected drift asked for a fresh model
            self.policy.model_reset_requested = False
            self.model = build_model(self.config.model)
        self.model.learn_one(features, label.label)
        self.labels_learned += 1
        self._learned_ids[label.id] = None
        if len(self._learned_ids) > self._learned_ids_max:
            self._learned_ids.popitem(last=False)
        correct = None if pending is None else predicted == label.label
        if correct is not None:
            self.recent_accuracy.add(float(correct))
            self.policy.labelled(label.id, correct)
        return self._outcome(Learned(LabelStatus.LEARNED, correct, asked_at))

    def accuracy_estimate(
        self, kind: EstimateKind | None = None, scope: EstimateScope = "window"
    ) -> AccuracyEstimate:
        """An unbiased estimate of the accuracy of *all* predictions, with its interval.

        ``kind`` ``random`` rests on the warm-up and exploration labels, ``weighted`` on
        every label by its probability of being asked (None: the configured one);
        ``scope`` ``window`` covers the last ``strategy.estimate_window`` samples,
        ``total`` the whole stream (see :mod:`stream_al.core.estimate`).
        """
        return self.policy.accuracy_estimate(kind, scope)

    def _outcome(self, learned: Learned) -> Learned:
        self.labels_by_status[learned.status] += 1
        return learned

    def summary(self) -> dict[str, Any]:
        """A JSON-able account of the learner, for logs and ``checkpoint inspect``."""
        return {
            "samples_seen": self.samples_seen,
            "labels_learned": self.labels_learned,
            "queries_by_reason": self.queries_by_reason,
            "labels_by_status": dict(self.labels_by_status),
            "pending_queries": len(self.pending),
            "pending_evicted": self.pending.evicted,
            "recent_accuracy": self.recent_accuracy.value,
            "accuracy_estimate": self.accuracy_estimate().as_dict(),
            "strategy": self.policy.state(),
            "model": self.model.describe(),
            "config": self.config.model_dump(mode="json"),
        }
