"""Several annotators per item: their answers gathered, and combined into one label.

With ``annotators_per_item = k`` each query is answered by k distinct annotators; the
item is decided once, when the k-th distinct annotator has answered, or when
``timeout_seconds`` after its query have passed with fewer (``settle``). A skip ("don't
know") is an answer without a vote: it counts towards k but weighs nothing; an item whose
answers are all skips is decided as skipped. A second answer from the same annotator is a
duplicate, unless it is a correction (``corrects``): then it replaces the earlier one.

Two ways of combining the votes:

* ``majority``: the class with the most votes; a tie goes to the class voted first.
* ``weighted``: an online Dawid-Skene model. Each annotator has a confusion matrix
  (counts of "answered c when the truth was t", started from a prior that trusts them
  with ``prior_accuracy``), and the classes have a prior (how often each was the
  aggregate). The posterior of each class is the class prior times, for every vote,
  the probability that this annotator answers so under that class; the aggregate is the
  most probable class, and every voter's matrix then takes the posterior as soft counts.
  An annotator who often disagrees with the aggregate thus weighs less, one who agrees
  more. A single pass cannot tell a reliable annotator from the majority it starts from,
  so every ``refit_every`` decisions (and after 1, 2, 4, 8 ...) the matrices are fitted
  again by a few rounds of Dawid and Skene's EM (1979) over the last ``refit_window``
  decided items, warm-started from the current ones: bounded work, and the estimates
  converge as in the batch method.

The module is pure: no clock but the ``now`` it is given, no randomness.

>>> aggregator = Aggregator(AggregationConfig(annotators_per_item=3))
>>> aggregator.answer("s-1", "ann", "cat", corrects=False, opened_at=0.0).kind
<AnswerKind.WAITING: 'waiting'>
>>> aggregator.answer("s-1", "bob", "dog", corrects=False, opened_at=0.0).kind
<AnswerKind.WAITING: 'waiting'>
>>> aggregator.answer("s-1", "bob", "cat", corrects=False, opened_at=0.0).kind  # bob again
<AnswerKind.DUPLICATE: 'duplicate'>
>>> outcome = aggregator.answer("s-1", "cyd", "cat", corrects=False, opened_at=0.0)
>>> outcome.kind, outcome.verdict.label, outcome.verdict.votes
(<AnswerKind.DECIDED: 'decided'>, 'cat', 3)
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from stream_al.core.types import ClassLabel

AggregationMethod = Literal["majority", "weighted"]
#: An answer with no annotator named is counted as this one annotator's.
ANONYMOUS = "(anonymous)"
#: Beyond this many annotators, the others share one set of statistics (memory stays
#: bounded whatever names arrive on the labels topic).
MAX_ANNOTATORS = 1000
OTHER_ANNOTATORS = "(other)"


@dataclass(frozen=True, slots=True)
class AggregationConfig:
    """How many annotators answer each item and how their answers are combined."""

    annotators_per_item: int = 1
    method: AggregationMethod = "majority"
    #: An item short of k answers this long after its query is decided from those that came.
    timeout_seconds: float = 3600.0
    #: ``weighted``: the accuracy a new annotator is credited with, and how many answers'
    #: worth of evidence that prior is (larger: slower to change one's mind about them).
    prior_accuracy: float = 0.7
    prior_strength: float = 4.0
    #: ``weighted``: EM refit of the annotators' matrices every this many decisions, over
    #: this many recent items, with this many rounds.
    refit_every: int = 25
    refit_window: int = 1000
    refit_rounds: int = 3
    #: Decided items whose answers are kept for a late correction.
    keep_decided: int = 1000

    def __post_init__(self) -> None:
        if self.annotators_per_item < 1:
            raise ValueError(f"annotators_per_item must be >= 1, got {self.annotators_per_item}")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds}")
        if not 0.0 < self.prior_accuracy < 1.0:
            raise ValueError(f"prior_accuracy must be in (0, 1), got {self.prior_accuracy}")


class AnswerKind(StrEnum):
    """What one answer did."""

    #: Recorded; the item waits for more annotators.
    WAITING = "waiting"
    #: It completed the item: ``verdict`` says what was decided.
    DECIDED = "decided"
    #: The same annotator answered this item before (and it is no correction).
    DUPLICATE = "duplicate"
    #: A correction of an item decided already: ``verdict`` is the aggregate recomputed,
    #: ``changed`` whether it differs from what was decided.
    LATE_CORRECTION = "late_correction"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The aggregate of an item's answers."""

    item_id: str
    #: The label to learn; None when every answer was a skip.
    label: ClassLabel | None
    #: Answers with a vote, and answers in all (skips included).
    votes: int
    answers: int
    #: The aggregate's share of the votes (majority) or its posterior (weighted).
    confidence: float
    #: Decided because the timeout passed with fewer than k answers.
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    kind: AnswerKind
    verdict: Verdict | None = None
    #: ``LATE_CORRECTION``: whether the recomputed aggregate differs from the decided one.
    changed: bool = False


@dataclass(slots=True)
class _Item:
    opened_at: float
    #: annotator -> class voted, or None for a skip; in order of arrival.
    answers: dict[str, ClassLabel | None] = field(default_factory=dict)


@dataclass(slots=True)
class Agreement:
    """How often one annotator's votes matched the aggregate of the items they answered."""

    agreed: int = 0
    votes: int = 0

    @property
    def rate(self) -> float:
        return self.agreed / self.votes if self.votes else math.nan


class Aggregator:
    """Gathers the answers of each item until it is decided; keeps annotator statistics.

    State is plain Python (it pickles with the learner into a checkpoint).
    """

    def __init__(self, config: AggregationConfig) -> None:
        self.config = config
        self._open: OrderedDict[str, _Item] = OrderedDict()
        #: Decided items: their answers and the label decided, for late corrections.
        self._decided: OrderedDict[str, tuple[_Item, ClassLabel | None]] = OrderedDict()
        self.agreement: dict[str, Agreement] = {}
        #: Dawid-Skene counts: annotator -> truth -> answer -> weight; class -> weight.
        self._confusion: dict[str, dict[ClassLabel, dict[ClassLabel, float]]] = {}
        self._class_weight: dict[ClassLabel, float] = {}
        #: The votes of the last decided items, for the EM refits.
        self._history: deque[tuple[tuple[str, ClassLabel], ...]] = deque(maxlen=config.refit_window)
        self._weighted_decisions = 0
        self.timed_out = 0

    @property
    def open_items(self) -> int:
        return len(self._open)

    def answer(
        self,
        item_id: str,
        annotator: str | None,
        label: ClassLabel | None,
        *,
        corrects: bool,
        opened_at: float,
    ) -> AnswerOutcome:
        """Take one answer (``label`` None: a skip) for ``item_id``.

        ``opened_at`` is when the item's query was made; the timeout counts from it.
        """
        who = self._annotator_key(annotator)
        decided = self._decided.get(item_id)
        if decided is not None and decided[1] is None and who not in decided[0].answers:
            # Everyone skipped it; a newcomer's answer starts the item afresh.
            del self._decided[item_id]
            decided = None
        if decided is not None:
            return self._late(item_id, who, label, corrects, decided)
        item = self._open.get(item_id)
        if item is None:
            item = self._open[item_id] = _Item(opened_at)
        if who in item.answers and not corrects:
            return AnswerOutcome(AnswerKind.DUPLICATE)
        item.answers[who] = label
        if len(item.answers) < self.config.annotators_per_item:
            return AnswerOutcome(AnswerKind.WAITING)
        del self._open[item_id]
        return AnswerOutcome(AnswerKind.DECIDED, self._decide(item_id, item, timed_out=False))

    def settle(self, now: float) -> list[Verdict]:
        """Decide the items whose timeout has passed, from the answers that came."""
        deadline = now - self.config.timeout_seconds
        due = [item_id for item_id, item in self._open.items() if item.opened_at <= deadline]
        verdicts = []
        for item_id in due:
            item = self._open.pop(item_id)
            self.timed_out += 1
            verdicts.append(self._decide(item_id, item, timed_out=True))
        return verdicts

    def discard(self, item_id: str) -> None:
        """Forget an open item (its sample expired from the learner's pending store)."""
        self._open.pop(item_id, None)

    def reliability(self, annotator: str) -> float:
        """The weighted model's estimate of how often ``annotator`` answers the truth."""
        matrix = self._confusion.get(self._annotator_key(annotator), {})
        classes = self._classes()
        if not classes:
            return self.config.prior_accuracy
        total = sum(self._class_weight.get(t, 0.0) + 1.0 for t in classes)
        return sum(
            (self._class_weight.get(t, 0.0) + 1.0) / total * self._p_answer(matrix, t, t, classes)
            for t in classes
        )

    # -- inside ------------------------------------------------------------------------

    def _annotator_key(self, annotator: str | None) -> str:
        who = ANONYMOUS if annotator is None else annotator
        if who not in self.agreement and len(self.agreement) >= MAX_ANNOTATORS:
            return OTHER_ANNOTATORS
        return who

    def _late(
        self,
        item_id: str,
        who: str,
        label: ClassLabel | None,
        corrects: bool,
        decided: tuple[_Item, ClassLabel | None],
    ) -> AnswerOutcome:
        item, was = decided
        if not corrects or who not in item.answers:
            # A late first answer of a decided item, or the same answer twice: not counted.
            return AnswerOutcome(AnswerKind.DUPLICATE)
        item.answers[who] = label
        label_now, votes, confidence = self._combine(item.answers, update=False)
        self._decided[item_id] = (item, label_now)
        verdict = Verdict(item_id, label_now, votes, len(item.answers), confidence)
        return AnswerOutcome(AnswerKind.LATE_CORRECTION, verdict, changed=label_now != was)

    def _decide(self, item_id: str, item: _Item, *, timed_out: bool) -> Verdict:
        label, votes, confidence = self._combine(item.answers, update=True)
        if label is not None:
            for who, vote in item.answers.items():
                if vote is not None:
                    stats = self.agreement.setdefault(who, Agreement())
                    stats.votes += 1
                    stats.agreed += vote == label
        self._decided[item_id] = (item, label)
        while len(self._decided) > self.config.keep_decided:
            self._decided.popitem(last=False)
        return Verdict(item_id, label, votes, len(item.answers), confidence, timed_out)

    def _combine(
        self, answers: dict[str, ClassLabel | None], *, update: bool
    ) -> tuple[ClassLabel | None, int, float]:
        votes = [(who, vote) for who, vote in answers.items() if vote is not None]
        if not votes:
            return None, 0, 0.0
        if self.config.method == "majority":
            counts: dict[ClassLabel, int] = {}
            for _, vote in votes:  # insertion order: a tie goes to the class voted first
                counts[vote] = counts.get(vote, 0) + 1
            label = max(counts, key=counts.__getitem__)
            return label, len(votes), counts[label] / len(votes)
        posterior = self._posterior(votes)
        label = max(posterior, key=posterior.__getitem__)
        if update:
            self._count(votes, posterior, self._confusion, self._class_weight)
            self._history.append(tuple(votes))
            self._weighted_decisions += 1
            n = self._weighted_decisions
            # Early on at 1, 2, 4, 8 ... decisions too: the first estimates matter most.
            if n % self.config.refit_every == 0 or n & (n - 1) == 0:
                self._refit()
        return label, len(votes), posterior[label]

    @staticmethod
    def _count(
        votes: list[tuple[str, ClassLabel]] | tuple[tuple[str, ClassLabel], ...],
        posterior: dict[ClassLabel, float],
        confusion: dict[str, dict[ClassLabel, dict[ClassLabel, float]]],
        class_weight: dict[ClassLabel, float],
    ) -> None:
        for who, vote in votes:
            matrix = confusion.setdefault(who, {})
            for truth, weight in posterior.items():
                row = matrix.setdefault(truth, {})
                row[vote] = row.get(vote, 0.0) + weight
        for truth, weight in posterior.items():
            class_weight[truth] = class_weight.get(truth, 0.0) + weight

    def _refit(self) -> None:
        """A few EM rounds over the recent items, from the current matrices."""
        for _ in range(self.config.refit_rounds):
            confusion: dict[str, dict[ClassLabel, dict[ClassLabel, float]]] = {}
            class_weight: dict[ClassLabel, float] = {}
            for votes in self._history:
                self._count(votes, self._posterior(list(votes)), confusion, class_weight)
            self._confusion, self._class_weight = confusion, class_weight

    def _classes(self, extra: tuple[ClassLabel, ...] = ()) -> list[ClassLabel]:
        classes = dict.fromkeys(self._class_weight)
        classes.update(dict.fromkeys(extra))
        return list(classes)

    def _p_answer(
        self,
        matrix: dict[ClassLabel, dict[ClassLabel, float]],
        truth: ClassLabel,
        answer: ClassLabel,
        classes: list[ClassLabel],
    ) -> float:
        """P(this annotator answers ``answer`` | the truth is ``truth``), prior included."""
        c = self.config
        others = max(len(classes) - 1, 1)
        prior = c.prior_accuracy if answer == truth else (1.0 - c.prior_accuracy) / others
        row = matrix.get(truth, {})
        return (row.get(answer, 0.0) + c.prior_strength * prior) / (
            sum(row.values()) + c.prior_strength
        )

    def _posterior(self, votes: list[tuple[str, ClassLabel]]) -> dict[ClassLabel, float]:
        # Candidates: the classes voted now first (ties keep that order), then the rest.
        classes = self._classes(tuple(dict.fromkeys(vote for _, vote in votes)))
        voted_first = list(dict.fromkeys(vote for _, vote in votes))
        candidates = voted_first + [c for c in classes if c not in voted_first]
        total_weight = sum(self._class_weight.values()) + len(classes)
        log_scores: dict[ClassLabel, float] = {}
        for truth in candidates:
            score = math.log((self._class_weight.get(truth, 0.0) + 1.0) / total_weight)
            for who, vote in votes:
                matrix = self._confusion.get(who, {})
                score += math.log(self._p_answer(matrix, truth, vote, classes))
            log_scores[truth] = score
        top = max(log_scores.values())
        weights = {t: math.exp(s - top) for t, s in log_scores.items()}
        norm = sum(weights.values())
        return {t: w / norm for t, w in weights.items()}
