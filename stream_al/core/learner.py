"""The active learner: score a sample, decide whether to ask, learn from labels."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from math import isfinite
from typing import Any

from stream_al.core.aggregation import AggregationConfig, Aggregator, AnswerKind, Verdict
from stream_al.core.challenger import Challenger
from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.estimate import AccuracyEstimate, EstimateKind, EstimateScope
from stream_al.core.models import build_model
from stream_al.core.pace import LabelPace
from stream_al.core.pending import Lookup, PendingQuery, PendingStore
from stream_al.core.strategies import Selection, build_policy
from stream_al.core.types import ClassLabel, Features, Proba
from stream_al.core.uncertainty import build_measure
from stream_al.schemas import (
    LabelMessage,
    MetadataValue,
    Prediction,
    Query,
    Sample,
    encode_prediction,
)


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
    #: A labeler answered "don't know": the sample is no longer waited for.
    SKIPPED = "skipped"
    #: One of k answers, recorded: the sample is learned once the others are in.
    AWAITING = "awaiting"
    #: A correction of a sample decided already: the corrected aggregate is learned too
    #: when it differs from the one decided (the model cannot unlearn the first).
    CORRECTED = "corrected"


@dataclass(slots=True)
class Scored:
    """The outcome of scoring one sample (read-only by contract).

    Not ``frozen``: a frozen dataclass pays ``object.__setattr__`` per field, which was a
    tenth of ``ActiveLearner.score``; nothing assigns to it.
    """

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
        # Read once per sample; most have no query, and building the generator for an
        # empty search cost more than the search.
        return self.asked_before or (
            bool(self.queries) and any(query.id == self.sample_id for query in self.queries)
        )

    def encoded_prediction(self, sample: Sample, model_version: int) -> bytes:
        """``encode(self.prediction(sample, model_version))``, without building the model
        (the service's per-sample path)."""
        return encode_prediction(
            self.sample_id,
            self.label,
            self.probabilities,
            self.uncertainty,
            self.queried,
            model_version,
            sample.timestamp,
            sample.metadata,
        )

    def prediction(self, sample: Sample, model_version: int) -> Prediction:
        """What downstream receives for ``sample``: this outcome, with the sample's own
        time and metadata, from the model that had learned ``model_version`` labels."""
        return Prediction(
            id=self.sample_id,
            label=self.label,
            probabilities=self.probabilities,
            uncertainty=self.uncertainty,
            queried=self.queried,
            model_version=model_version,
            timestamp=sample.timestamp,
            metadata=sample.metadata,
        )


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
    #: The sample whose label this is (differs from the message's for ``settle``), and the
    #: label learned (the aggregate of its answers).
    sample_id: str = ""
    label: ClassLabel | None = None


@dataclass(frozen=True, slots=True)
class _Recent:
    features: Features
    label: ClassLabel | None
    probabilities: Proba
    uncertainty: float
    timestamp: datetime | None
    metadata: dict[str, MetadataValue] | None


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
        values = self._values
        if len(values) == values.maxlen:
            self._total -= values[0]
        values.append(value)
        self._total += value

    @property
    def value(self) -> float:
        """The mean, or NaN before the first value."""
        return self._total / len(self._values) if self._values else float("nan")


class RecentCounts:
    """``RollingMean`` of whole counts that are mostly 0 (queries per sample), for which
    adding a 0 is one increment: only the non-zero counts are kept, with their positions.

    The counts are integers, so the window's total is exact either way, and ``value`` has
    the same bits as ``RollingMean.value`` fed the same counts.

    >>> counts = RecentCounts(3)
    >>> for v in [1, 0, 0, 1]:
    ...     counts.add(v)
    >>> round(counts.value, 3)
    0.333
    """

    def __init__(self, size: int) -> None:
        self.size = size
        #: Counts added so far, zeros included (the learner adds a 0 as ``added += 1``).
        self.added = 0
        #: The non-zero counts among the last ``size``: (position, count), oldest first.
        self._nonzero: deque[tuple[int, int]] = deque()

    def add(self, value: int) -> None:
        if value:
            nonzero = self._nonzero
            start = self.added - self.size + 1  # the oldest position still in the window
            while nonzero and nonzero[0][0] < start:
                nonzero.popleft()
            nonzero.append((self.added, value))
        self.added += 1

    @property
    def value(self) -> float:
        """The mean of the last ``size`` counts, or NaN before the first count."""
        if not self.added:
            return float("nan")
        start = self.added - self.size
        total = sum(count for at, count in self._nonzero if at >= start)
        return total / min(self.added, self.size)

    @classmethod
    def of(cls, mean: RollingMean) -> RecentCounts:
        """The counts of a ``RollingMean`` of counts (a checkpoint from before this class)."""
        values = mean._values
        counts = cls(values.maxlen or len(values))
        for value in values:
            counts.add(int(value))
        return counts


def _pace_settings(strategy: StrategyConfig) -> tuple[float | None, float, int | None]:
    return strategy.labels_per_hour, strategy.budget, strategy.target_backlog


def _pace(strategy: StrategyConfig) -> LabelPace | None:
    if strategy.labels_per_hour is None and strategy.target_backlog is None:
        return None
    return LabelPace(strategy.labels_per_hour, strategy.budget, strategy.target_backlog)


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

    #: A fresh model dueling the current one after a drift (see ``core/challenger.py``).
    _challenger: Challenger | None = None

    def __init__(self, config: LearnerConfig, aggregation: AggregationConfig | None = None) -> None:
        self.config = config
        #: Several annotators per item: answers are gathered here until an item is decided.
        self.aggregator = Aggregator(aggregation or AggregationConfig())
        #: Features of the items decided lately, for a late correction; and of the items
        #: still open whose answer carried them (never queried here).
        self._correctable: OrderedDict[str, Features] = OrderedDict()
        self._carried: OrderedDict[str, Features] = OrderedDict()
        #: Labels per hour and the labelers' backlog turned into the share to spend.
        self.pace = _pace(config.strategy)
        self.model = build_model(config.model)
        self.measure = build_measure(config.measure, config.model, self.model)
        self.policy = build_policy(config.strategy)
        self.pending = PendingStore(config.pending_max, config.pending_ttl_seconds)
        self.samples_seen = 0
        self.labels_learned = 0
        self.labels_by_status: Counter[str] = Counter()
        #: Accuracy on the *queried* samples: the hardest by construction, so biased low
        #: (the "hard-sample accuracy"); see ``accuracy_estimate`` for the whole stream.
        self.recent_accuracy = RollingMean(config.accuracy_window)
        self.policy.monitor.open_max = config.pending_max
        self.recent_query_rate = RecentCounts(config.strategy.window)
        self._recent: OrderedDict[str, _Recent] = OrderedDict()
        # Ids already learned, so a second label for one is not learned twice; bounded
        # like the pending store, which is where the ids come from.
        self._learned_ids: OrderedDict[str, None] = OrderedDict()
        self._learned_ids_max = max(config.pending_max, 1) * 2
        #: Classes learned so far, in order of arrival (what a labeler is offered when
        #: ``config.classes`` is not set).
        self._classes_seen: dict[ClassLabel, None] = {}

    @property
    def classes(self) -> tuple[ClassLabel, ...]:
        """The configured classes, or else those learned so far."""
        return self.config.classes or tuple(self._classes_seen)

    def score(self, sample: Sample, now: float | None = None) -> Scored:
        """Predict ``sample``, measure its uncertainty and decide whether to ask.

        Raises ``ModelError`` (and changes nothing) when the model's probabilities or
        the uncertainty are not finite numbers: such a sample gets no decision.
        """
        # The hot path: per sample only the prediction, the measure and the policy's
        # decision; what a query needs (its message, the pending entry, the clock as a
        # datetime) is built only for the samples asked about.
        x = sample.features
        sample_id = sample.id
        model = self.model
        proba = model.predict_proba_one(x)
        if len(proba) == 2:  # max() by probability, first of equals, without the call
            first, second = proba
            p_first, p_second = proba[first], proba[second]
            label: ClassLabel | None = second if p_second > p_first else first
            # all(map(isfinite, proba.values())) for the two, without the map
            finite = isfinite(p_first) and isfinite(p_second)
        else:
            label = max(proba, key=proba.__getitem__) if proba else None
            finite = all(map(isfinite, proba.values()))
        measure = self.measure
        of_proba = measure.of_proba
        uncertainty = of_proba(proba) if of_proba is not None else measure(model, x, proba)
        if not (finite and isfinite(uncertainty)):
            raise ModelError(
                f"the model gave non-finite values (probabilities {proba}, uncertainty "
                f"{uncertainty}) for these features"
            )
        if sample_id in self.pending._entries or sample_id in self._learned_ids:  # knows()
            return Scored(sample_id, label, proba, uncertainty, (), asked_before=True)
        self.samples_seen += 1
        policy = self.policy
        if policy.lookback > 1:
            # A pool may ask about any of its last ``lookback`` samples: keep them. A
            # stream strategy asks about the sample in hand or none, from the locals.
            recent = self._recent
            recent.pop(sample_id, None)
            recent[sample_id] = _Recent(
                x, label, proba, uncertainty, sample.timestamp, sample.metadata
            )
            while len(recent) > policy.lookback:
                recent.popitem(last=False)
        if self.pace is not None:
            if now is None:
                now = time.time()
            self.pace.observe(sample.timestamp.timestamp() if sample.timestamp else now)
            policy.set_budget(self.pace.share())
        if policy._observes_model:  # the base hook is a no-op: not worth a call per sample
            policy.selector.observe_model(self.model, proba)
        selections = policy.offer(sample_id, uncertainty, x)
        if selections:
            queries = self._queries(sample, label, proba, uncertainty, selections, now)
            self.recent_query_rate.add(len(queries))
            return Scored(sample_id, label, proba, uncertainty, queries)
        self.recent_query_rate.added += 1  # RecentCounts.add(0), inlined
        return Scored(sample_id, label, proba, uncertainty, ())

    def _queries(
        self,
        sample: Sample,
        label: ClassLabel | None,
        proba: Proba,
        uncertainty: float,
        selections: list[Selection],
        now: float | None,
    ) -> tuple[Query, ...]:
        """The queries of ``selections`` (``sample`` the one just scored), now pending."""
        now = time.time() if now is None else now
        created_at = datetime.fromtimestamp(now, UTC)
        queries = []
        for selection in selections:
            decision = selection.decision
            assert decision.reason is not None
            if selection.key == sample.id:
                picked = _Recent(
                    sample.features, label, proba, uncertainty, sample.timestamp, sample.metadata
                )
            else:
                picked = self._recent[selection.key]
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
                    created_at=created_at,
                    classes=self.classes,
                    timestamp=picked.timestamp,
                    metadata=picked.metadata,
                )
            )
            self.pending.add(selection.key, PendingQuery(picked.features, picked.label, now), now)
        return tuple(queries)

    def reconfigure(self, config: LearnerConfig) -> None:
        """Apply a new configuration of everything but the model (a restored learner).

        The strategy is rebuilt and takes over the old one's account (see
        ``BudgetedPolicy.take_over``); the measure, pending limits and windows follow the new
        settings. A different ``model`` or ``classes`` is a different model: ``ValueError``.
        """
        if config.model_identity() != self.config.model_identity():
            raise ValueError("a learner cannot change its model or classes; start a fresh one")
        policy = build_policy(config.strategy)
        policy.take_over(self.policy)
        policy.monitor.open_max = config.pending_max
        self.policy = policy
        self._recent.clear()  # the new policy's selections refer to samples from now on
        if _pace_settings(config.strategy) != _pace_settings(self.config.strategy):
            self.pace = _pace(config.strategy)
        self.measure = build_measure(config.measure, config.model, self.model)
        self.pending.max_size = config.pending_max
        self.pending.ttl_seconds = config.pending_ttl_seconds
        if config.accuracy_window != self.config.accuracy_window:
            self.recent_accuracy = RollingMean(config.accuracy_window)
        if config.strategy.window != self.config.strategy.window:
            self.recent_query_rate = RecentCounts(config.strategy.window)
        self.config = config

    def warm_start(self, labels: Iterable[LabelMessage], now: float | None = None) -> Counter[str]:
        """Learn from labelled history before the first sample: labels carrying features.

        Such labels cost the budget nothing (they were paid for already), so the policy
        is not charged; a model warmed by at least one of them skips the random warm-up.
        Returns the outcomes by status (a label without features is ``unknown_id``).
        """
        outcomes: Counter[str] = Counter()
        for label in labels:
            outcomes[self.learn(label, now).status] += 1
        if outcomes[LabelStatus.LEARNED]:
            self.policy.warmup = 0
        return outcomes

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
            self.policy.recover(query.reason, samples_seen, key=query.id)
            self.samples_seen = max(self.samples_seen, samples_seen)
        return True

    def observe_backlog(self, backlog: int) -> None:
        """Take a reading of the labelers' backlog (for ``strategy.target_backlog``)."""
        if self.pace is not None:
            self.pace.observe_backlog(backlog)

    def withdraw(self, sample_id: str) -> None:
        """Forget that ``sample_id`` was asked about: its query could not be delivered."""
        self.pending.discard(sample_id)

    @property
    def queries_by_reason(self) -> dict[str, int]:
        """Queries sent so far, by reason (the strategy's own account)."""
        return self.policy.queries_by_reason

    def learn(self, label: LabelMessage, now: float | None = None) -> Learned:
        """Take one answer; learn the sample once its answers are decided.

        With ``annotators_per_item`` k = 1 (the default) an answer decides its sample at
        once: a label is learned, joined with the features kept when its sample was
        queried, a skip ends the wait. With k > 1 it is recorded (``AWAITING``) until k
        distinct annotators answered, then the aggregate is learned (see
        :mod:`stream_al.core.aggregation`). A label that carries its own features is
        learned even when its sample was never queried (or has expired); otherwise such a
        label is reported, not learned.
        """
        now = time.time() if now is None else now
        classes = self.config.classes
        if label.label is not None and classes is not None and label.label not in classes:
            detail = f"label {label.label!r} is not one of the classes {', '.join(classes)}"
            return self._outcome(Learned(LabelStatus.INVALID, detail=detail))
        if label.corrects and label.id in self._correctable:
            return self._late_correction(label)
        if label.id in self._learned_ids:
            return self._outcome(Learned(LabelStatus.DUPLICATE, detail="already learned"))
        lookup, pending = self.pending.get(label.id, now)
        if pending is None and label.features is None and label.id not in self._carried:
            self.aggregator.discard(label.id)
            if label.label is None:
                if lookup is Lookup.EXPIRED:
                    return self._outcome(Learned(LabelStatus.SKIPPED))
                detail = "a skip for a sample never queried here"
                return self._outcome(Learned(LabelStatus.UNKNOWN_ID, detail=detail))
            if lookup is Lookup.EXPIRED:
                detail = "its query expired from the pending store and it carries no features"
                return self._outcome(Learned(LabelStatus.EXPIRED, detail=detail))
            detail = "never queried here and it carries no features"
            return self._outcome(Learned(LabelStatus.UNKNOWN_ID, detail=detail))
        if pending is None and label.features is not None:
            self._carried[label.id] = label.features
            self._carried.move_to_end(label.id)
            while len(self._carried) > self.config.pending_max:
                self._carried.popitem(last=False)
        opened_at = pending.asked_at if pending is not None else now
        outcome = self.aggregator.answer(
            label.id, label.annotator, label.label, corrects=label.corrects, opened_at=opened_at
        )
        if outcome.kind is AnswerKind.DUPLICATE:
            detail = "this annotator answered this sample already"
            return self._outcome(Learned(LabelStatus.DUPLICATE, detail=detail))
        if outcome.kind is AnswerKind.WAITING:
            return self._outcome(Learned(LabelStatus.AWAITING, sample_id=label.id))
        assert outcome.verdict is not None
        return self._apply(outcome.verdict, now)

    def settle(self, now: float | None = None) -> list[Learned]:
        """Decide the samples short of k answers whose ``timeout_seconds`` have passed."""
        now = time.time() if now is None else now
        return [self._apply(verdict, now) for verdict in self.aggregator.settle(now)]

    def _apply(self, verdict: Verdict, now: float) -> Learned:
        """Learn (or skip) a decided sample, joined with its features."""
        sample_id = verdict.item_id
        carried = self._carried.pop(sample_id, None)
        _, pending = self.pending.pop(sample_id, now)
        if verdict.label is None:
            asked_at = None if pending is None else pending.asked_at
            features = pending.features if pending is not None else carried
            if features is not None:  # a skip taken back later is learned then
                self._keep_correctable(sample_id, features)
            return self._outcome(Learned(LabelStatus.SKIPPED, asked_at=asked_at))
        if pending is not None:
            features, predicted, asked_at = pending.features, pending.predicted, pending.asked_at
        elif carried is not None:
            features, predicted, asked_at = carried, None, None
        else:
            detail = "its query expired from the pending store while its answers came in"
            return self._outcome(Learned(LabelStatus.EXPIRED, detail=detail))

        _refuse_overflowing(features)
        if self.policy.model_reset_requested:  # a detected drift asked for a fresh model
            self.policy.model_reset_requested = False
            self._start_challenger()
        self._learn_one(sample_id, features, verdict.label)
        correct = None if pending is None else predicted == verdict.label
        if correct is not None:
            self.recent_accuracy.add(float(correct))
            self.policy.labelled(sample_id, correct)
        learned = Learned(
            LabelStatus.LEARNED, correct, asked_at, sample_id=sample_id, label=verdict.label
        )
        return self._outcome(learned)

    def _learn_one(self, sample_id: str, features: Features, label: ClassLabel) -> None:
        replaced = self._challenged(features, label)
        if not replaced:
            self.model.learn_one(features, label)
        self.policy.model_changed(replaced)
        self._classes_seen[label] = None
        self.labels_learned += 1
        self._learned_ids[sample_id] = None
        if len(self._learned_ids) > self._learned_ids_max:
            self._learned_ids.popitem(last=False)
        self._keep_correctable(sample_id, features)

    def _keep_correctable(self, sample_id: str, features: Features) -> None:
        self._correctable[sample_id] = features
        self._correctable.move_to_end(sample_id)
        while len(self._correctable) > self.aggregator.config.keep_decided:
            self._correctable.popitem(last=False)

    def _late_correction(self, label: LabelMessage) -> Learned:
        """A correction after the sample was learned: river cannot unlearn the first label,
        so the corrected aggregate is learned as well when it differs from it."""
        outcome = self.aggregator.answer(
            label.id, label.annotator, label.label, corrects=True, opened_at=0.0
        )
        if outcome.kind is not AnswerKind.LATE_CORRECTION:
            detail = "a correction from an annotator who had not answered this sample"
            return self._outcome(Learned(LabelStatus.DUPLICATE, detail=detail))
        assert outcome.verdict is not None
        corrected = outcome.verdict.label
        if not outcome.changed or corrected is None:
            detail = "corrected; the aggregate did not change (or has no vote left)"
            return self._outcome(Learned(LabelStatus.CORRECTED, detail=detail, sample_id=label.id))
        self._learn_one(label.id, self._correctable[label.id], corrected)
        detail = f"corrected; the aggregate became {corrected!r}, learned too"
        return self._outcome(Learned(LabelStatus.CORRECTED, detail=detail, sample_id=label.id))

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A checkpoint from before several annotators per item: one annotator, no history.
        state.setdefault("aggregator", Aggregator(AggregationConfig()))
        state.setdefault("_correctable", OrderedDict())
        state.setdefault("_carried", OrderedDict())
        state.setdefault("pace", None)
        # From before ``RecentCounts``: the same counts, kept the new way.
        if isinstance(state.get("recent_query_rate"), RollingMean):
            state["recent_query_rate"] = RecentCounts.of(state["recent_query_rate"])
        self.__dict__.update(state)

    def _start_challenger(self) -> None:
        duel = self.config.strategy.drift_challenger_labels
        if duel == 0:
            self.model = build_model(self.config.model)
            self.policy.model_changed(replaced=True)
        else:
            self._challenger = Challenger(build_model(self.config.model), duel)

    def _challenged(self, features: Features, label: ClassLabel) -> bool:
        """Let a challenger duel this label; True when it replaced the model (and learned)."""
        challenger = self._challenger
        if challenger is None:
            return False
        verdict = challenger.duel(self.model, features, label)
        if verdict is None:
            return False
        self._challenger = None
        self.policy.model_duel_over(verdict, challenger.describe())
        if verdict:
            self.model = challenger.model
        return verdict

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
            "open_items": self.aggregator.open_items,
            "recent_accuracy": self.recent_accuracy.value,
            "accuracy_estimate": self.accuracy_estimate().as_dict(),
            "strategy": self.policy.state(),
            "model": self.model.describe(),
            "config": self.config.model_dump(mode="json"),
        }
