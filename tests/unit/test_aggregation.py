"""Several annotators per item: aggregation, skips, duplicates, corrections, timeouts."""

from __future__ import annotations

import random

from stream_al.core.aggregation import AggregationConfig, Aggregator, AnswerKind
from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner, LabelStatus
from stream_al.schemas import LabelMessage, Sample


def learner(k: int, method: str = "majority", timeout: float = 100.0) -> ActiveLearner:
    config = LearnerConfig(strategy=StrategyConfig(budget=1.0, warmup=1000))
    aggregation = AggregationConfig(k, method, timeout)  # type: ignore[arg-type]
    return ActiveLearner(config, aggregation)


def answer(id_: str, who: str, label: str | None, corrects: bool = False) -> LabelMessage:
    if label is None:
        return LabelMessage(id=id_, skipped=True, annotator=who, corrects=corrects)
    return LabelMessage(id=id_, label=label, annotator=who, corrects=corrects)


def test_the_item_is_learned_once_from_the_majority_of_k_answers() -> None:
    al = learner(3)
    assert al.score(Sample(id="a", features={"x": 1.0}), now=0.0).queried
    assert al.learn(answer("a", "ann", "no"), now=1.0).status is LabelStatus.AWAITING
    assert al.learn(answer("a", "bob", "yes"), now=2.0).status is LabelStatus.AWAITING
    assert al.labels_learned == 0
    learned = al.learn(answer("a", "cyd", "yes"), now=3.0)
    assert learned.status is LabelStatus.LEARNED and learned.asked_at == 0.0
    assert al.labels_learned == 1 and al.classes == ("yes",)
    late = al.learn(answer("a", "dan", "no"), now=4.0)
    assert late.status is LabelStatus.DUPLICATE
    assert al.labels_learned == 1
    agreement = al.aggregator.agreement
    assert (agreement["ann"].agreed, agreement["ann"].votes) == (0, 1)
    assert (agreement["bob"].agreed, agreement["cyd"].agreed) == (1, 1)


def test_a_second_answer_from_the_same_annotator_is_not_counted() -> None:
    al = learner(2)
    al.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    assert al.learn(answer("a", "ann", "yes"), now=1.0).status is LabelStatus.AWAITING
    assert al.learn(answer("a", "ann", "yes"), now=2.0).status is LabelStatus.DUPLICATE
    assert al.labels_learned == 0
    assert al.learn(answer("a", "bob", "yes"), now=3.0).status is LabelStatus.LEARNED


def test_skips_count_as_answers_without_a_vote_and_all_skips_end_the_wait() -> None:
    al = learner(2)
    for id_ in ("a", "b"):
        al.score(Sample(id=id_, features={"x": 1.0}), now=0.0)
    al.learn(answer("a", "ann", None), now=1.0)
    assert al.learn(answer("a", "bob", "no"), now=2.0).status is LabelStatus.LEARNED
    assert al.classes == ("no",)
    al.learn(answer("b", "ann", None), now=1.0)
    assert al.learn(answer("b", "bob", None), now=2.0).status is LabelStatus.SKIPPED
    assert "b" not in al.pending and al.labels_learned == 1


def test_a_timeout_decides_from_the_answers_that_came() -> None:
    al = learner(3, timeout=10.0)
    al.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    al.learn(answer("a", "ann", "yes"), now=1.0)
    assert al.settle(now=9.0) == []
    [settled] = al.settle(now=10.0)
    assert settled.status is LabelStatus.LEARNED and settled.sample_id == "a"
    assert al.labels_learned == 1 and al.aggregator.timed_out == 1
    assert al.settle(now=20.0) == []


def test_a_correction_before_the_decision_replaces_the_earlier_answer() -> None:
    al = learner(2)
    al.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    al.learn(answer("a", "ann", "no"), now=1.0)
    assert al.learn(answer("a", "ann", "yes", corrects=True), now=2.0).status is (
        LabelStatus.AWAITING
    )
    al.learn(answer("a", "bob", "yes"), now=3.0)
    assert al.classes == ("yes",)
    assert al.aggregator.agreement["ann"].agreed == 1


def test_a_late_correction_learns_the_corrected_label_only_if_the_aggregate_changes() -> None:
    al = learner(1)
    for id_ in ("a", "b", "c"):
        al.score(Sample(id=id_, features={"x": 1.0}), now=0.0)
    al.learn(answer("a", "ann", "no"), now=1.0)
    fixed = al.learn(answer("a", "ann", "yes", corrects=True), now=2.0)
    assert fixed.status is LabelStatus.CORRECTED
    assert al.labels_learned == 2 and set(al.classes) == {"no", "yes"}
    same = al.learn(answer("a", "ann", "yes", corrects=True), now=3.0)
    assert same.status is LabelStatus.CORRECTED and al.labels_learned == 2
    # Another annotator cannot correct an answer they never gave.
    assert al.learn(answer("a", "bob", "no", corrects=True), now=3.0).status is (
        LabelStatus.DUPLICATE
    )
    # A skip taken back: the label is learned then.
    assert al.learn(answer("b", "ann", None), now=1.0).status is LabelStatus.SKIPPED
    assert al.learn(answer("b", "ann", "no", corrects=True), now=2.0).status is (
        LabelStatus.CORRECTED
    )
    assert al.labels_learned == 3


def test_k_of_one_learns_like_before_without_annotator_names() -> None:
    al = learner(1)
    al.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    assert al.learn(LabelMessage(id="a", label="yes"), now=1.0).status is LabelStatus.LEARNED
    assert al.learn(LabelMessage(id="a", label="no"), now=2.0).status is LabelStatus.DUPLICATE
    assert al.learn(LabelMessage(id="zz", label="no"), now=2.0).status is LabelStatus.UNKNOWN_ID
    assert al.aggregator.open_items == 0


def test_weighted_vote_learns_to_overrule_a_majority_of_unreliable_annotators() -> None:
    """One annotator wrong 5% of the time, two wrong 35%: the optimal vote follows the
    reliable one always (log-odds 2.9 against 2 x 0.6); majority is right 85.5%."""
    rng = random.Random(3)
    noise = {"good": 0.05, "noisy1": 0.35, "noisy2": 0.35}
    weighted = Aggregator(AggregationConfig(3, "weighted"))
    majority = Aggregator(AggregationConfig(3, "majority"))
    right = {"weighted": 0, "majority": 0}
    for i in range(3000):
        truth = rng.choice("ab")
        wrong = "b" if truth == "a" else "a"
        votes = {who: wrong if rng.random() < rate else truth for who, rate in noise.items()}
        for name, aggregator in (("weighted", weighted), ("majority", majority)):
            outcome = None
            for who, vote in votes.items():
                outcome = aggregator.answer(str(i), who, vote, corrects=False, opened_at=0.0)
            assert outcome is not None and outcome.kind is AnswerKind.DECIDED
            assert outcome.verdict is not None
            right[name] += (outcome.verdict.label == truth) * (i >= 1000)
    assert weighted.reliability("good") > 0.8 > 0.75 > weighted.reliability("noisy1")
    assert right["weighted"] / 2000 > 0.93
    assert 0.82 < right["majority"] / 2000 < 0.89


def test_an_item_everyone_skipped_can_still_be_labeled_by_someone_else() -> None:
    al = learner(1)
    al.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    assert al.learn(answer("a", "ann", None), now=1.0).status is LabelStatus.SKIPPED
    # Its features come along (its query is no longer pending): learned, as before k.
    late = LabelMessage(id="a", label="yes", annotator="bob", features={"x": 1.0})
    assert al.learn(late, now=2.0).status is LabelStatus.LEARNED
    assert al.learn(answer("a", "ann", "no"), now=3.0).status is LabelStatus.DUPLICATE
