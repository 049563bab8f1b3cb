"""The labelers' queue: order, k distinct annotators, leases, staleness, commits, undo."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stream_al.labeling.queue import AnswerRefused, LabelQueue
from stream_al.schemas import Query

T0 = 1_000_000.0


def query(item_id: str, uncertainty: float = 0.5, created: float = T0) -> Query:
    return Query(
        id=item_id,
        features={"x": 1.0},
        predicted_label="a",
        probabilities={"a": 0.6, "b": 0.4},
        uncertainty=uncertainty,
        strategy="adaptive",
        reason="uncertain",
        threshold=0.3,
        created_at=datetime.fromtimestamp(created, UTC),
        classes=("a", "b"),
    )


def filled(queue: LabelQueue, *queries: Query, partition: int = 0) -> LabelQueue:
    for offset, q in enumerate(queries):
        queue.add(q, partition=partition, offset=offset, now=T0)
    return queue


def test_the_most_uncertain_first_then_the_oldest() -> None:
    queue = filled(
        LabelQueue(leases_per_annotator=10),
        query("late-torn", 0.9, created=T0 + 5),
        query("calm", 0.1),
        query("early-torn", 0.9, created=T0 + 1),
    )
    order = [queue.lease("ann", T0 + 10) for _ in range(3)]
    assert [q.id for q in order if q] == ["early-torn", "late-torn", "calm"]


def test_each_item_goes_to_k_distinct_annotators_and_no_more() -> None:
    queue = filled(LabelQueue(annotators_per_item=2, leases_per_annotator=5), query("s"))
    assert queue.lease("ann", T0) is not None
    assert queue.lease("ann", T0) is None  # never twice to one annotator
    assert queue.lease("bob", T0) is not None
    assert queue.lease("cy", T0) is None  # both slots are taken
    queue.answer("ann", "s", "a", T0)
    with pytest.raises(AnswerRefused, match="already answered"):
        queue.answer("ann", "s", "b", T0)
    assert queue.lease("ann", T0) is None


def test_an_expired_lease_returns_the_item_and_a_late_answer_is_refused() -> None:
    queue = filled(LabelQueue(lease_seconds=10), query("s"))
    assert queue.lease("ann", T0).id == "s"  # type: ignore[union-attr]
    assert queue.lease("bob", T0 + 5) is None
    assert queue.lease("bob", T0 + 11).id == "s"  # type: ignore[union-attr]
    with pytest.raises(AnswerRefused, match="went to another"):
        queue.answer("ann", "s", "a", T0 + 12)
    assert queue.answer("bob", "s", "b", T0 + 12).label == "b"
    assert queue.counts["expired_lease"] == 1


def test_a_late_answer_is_taken_while_the_slot_is_still_open() -> None:
    queue = filled(LabelQueue(lease_seconds=10), query("s"))
    queue.lease("ann", T0)
    assert queue.answer("ann", "s", "a", T0 + 30).annotator == "ann"


def test_renewed_leases_hold_and_release_returns_the_items_at_once() -> None:
    queue = filled(LabelQueue(lease_seconds=10), query("s"), query("t"))
    assert {q.id for q in queue.fill("ann", T0)} == {"s", "t"}
    queue.renew("ann", T0 + 8)
    assert queue.lease("bob", T0 + 15) is None  # still held: renewed at T0 + 8
    assert queue.release("ann") == 2
    assert queue.lease("bob", T0 + 15) is not None


def test_only_items_whose_answers_were_all_delivered_are_committed() -> None:
    queue = LabelQueue(annotators_per_item=2)
    queue.add(query("p0-a"), partition=0, offset=7, now=T0)
    queue.add(query("p0-b"), partition=0, offset=8, now=T0)
    queue.add(query("p1-a"), partition=1, offset=3, now=T0)
    assert queue.committable() == {0: 7, 1: 3}
    for annotator in ("ann", "bob"):
        queue.fill(annotator, T0)  # each holds p0-a and p0-b
        queue.answer(annotator, "p0-a", "a", T0)
    queue.delivered("p0-a", "ann")
    assert queue.committable() == {0: 7, 1: 3}  # bob's answer is still on its way
    queue.delivered("p0-a", "bob")
    assert queue.committable() == {0: 8, 1: 3}
    queue.answer("ann", "p0-b", None, T0)  # a skip is an answer
    queue.answer("bob", "p0-b", "b", T0)
    queue.delivered("p0-b", "ann")
    queue.delivered("p0-b", "bob")
    assert queue.committable() == {0: 9, 1: 3}


def test_stale_items_are_dropped_counted_and_committed_but_held_ones_are_kept() -> None:
    queue = LabelQueue(stale_after_seconds=60, lease_seconds=600)
    queue.add(query("old", created=T0 - 120), partition=0, offset=0, now=T0)
    queue.add(query("held", created=T0), partition=0, offset=1, now=T0)
    queue.add(query("fresh", created=T0 + 50), partition=0, offset=2, now=T0)
    assert queue.counts["stale"] == 1  # dropped on arrival
    assert queue.lease("ann", T0).id == "held"  # type: ignore[union-attr]
    queue.tidy(T0 + 100)  # "held" is stale now, but leased; "fresh" is not yet
    assert queue.counts["stale"] == 1
    assert queue.committable() == {0: 1}
    queue.answer("ann", "held", "a", T0 + 101)
    queue.delivered("held", "ann")
    queue.tidy(T0 + 200)
    assert queue.counts["stale"] == 2
    assert queue.committable() == {0: 3}
    assert queue.lease("bob", T0 + 200) is None


def test_a_query_sent_again_is_not_asked_again() -> None:
    queue = filled(LabelQueue(), query("s"))
    queue.lease("ann", T0)
    queue.answer("ann", "s", "a", T0)
    queue.delivered("s", "ann")
    assert not queue.add(query("s"), partition=0, offset=1, now=T0)
    assert queue.lease("bob", T0) is None
    assert queue.counts["duplicate"] == 1
    assert queue.committable() == {0: 2}


def test_undo_within_the_window_sends_a_correction() -> None:
    queue = filled(LabelQueue(undo_seconds=30), query("s"), query("t"))
    queue.fill("ann", T0)
    queue.answer("ann", "s", "a", T0)
    with pytest.raises(AnswerRefused, match="no undo"):
        queue.correct("ann", "s", "b", T0 + 1)
    undone = queue.undo("ann", T0 + 20)
    assert undone is not None and undone[0].id == "s" and undone[1] == "a"
    correction = queue.correct("ann", "s", "b", T0 + 21)
    assert (correction.label, correction.corrects, correction.annotator) == ("b", True, "ann")
    assert queue.stats("ann", T0 + 21).labels == 1  # replaced, not added
    queue.answer("ann", "t", None, T0 + 40)
    assert queue.undo("ann", T0 + 71) is None  # the window has passed


def test_agreement_with_the_majority_of_an_item() -> None:
    queue = LabelQueue(annotators_per_item=3, leases_per_annotator=5)
    for offset, item_id in enumerate(["s", "t"]):
        queue.add(query(item_id), partition=0, offset=offset, now=T0)
    answers = {"ann": ["a", "a"], "bob": ["a", "b"], "cy": ["b", "b"]}
    for annotator, labels in answers.items():
        queue.fill(annotator, T0)
        for item_id, label in zip(["s", "t"], labels, strict=True):
            queue.answer(annotator, item_id, label, T0)
    assert queue.agreement() == {"ann": 0.5, "bob": 1.0, "cy": 0.5}
    assert queue.stats("bob", T0 + 1).agreement == 1.0
