"""The labelers' queue: fetched queries, who holds which, and what may be committed.

Pure: no Kafka, no HTTP, no clock of its own (every call takes ``now``, in Unix seconds).
The Kafka adapter (`stream_al.labeling.desk`) feeds it the oracle topic's records, sends the
answers it returns to the labels topic, tells it when each was delivered, and commits the
offsets it names. The rules it keeps:

- Most useful first: the highest uncertainty, then the oldest query.
- Each item goes to ``annotators_per_item`` (k) distinct annotators, never twice to one.
- A handed-out item is leased: a lease that is not answered or renewed in ``lease_seconds``
  (a closed tab, a crashed client) returns the item to the queue. A late answer is still
  taken while the item has an open slot, and refused once another annotator took it, so
  no item gets more than k answers.
- An item not handed out whose query is older than ``stale_after_seconds`` is dropped as
  stale (counted); the service's own pending timeout ends its wait for a label.
- An oracle offset may be committed once every item before it is done: all its answers
  (labels or explicit skips) were delivered, or it was dropped.

>>> from datetime import datetime, timezone
>>> def query(id, uncertainty):
...     return Query(id=id, features={"x": 1.0}, predicted_label="a",
...                  probabilities={"a": 0.6, "b": 0.4}, uncertainty=uncertainty,
...                  strategy="adaptive", reason="uncertain", threshold=0.5,
...                  created_at=datetime.fromtimestamp(100.0, timezone.utc))
>>> queue = LabelQueue(annotators_per_item=1)
>>> queue.add(query("calm", 0.2), partition=0, offset=0, now=100.0)
True
>>> queue.add(query("torn", 0.9), partition=0, offset=1, now=100.0)
True
>>> queue.lease("ann", now=101.0).id  # the most uncertain first
'torn'
>>> message = queue.answer("ann", "torn", "b", now=102.0)
>>> message.label, message.annotator
('b', 'ann')
>>> queue.committable()  # "calm" at offset 0 is not answered yet
{0: 0}
>>> queue.delivered("torn", "ann")
>>> queue.answer("ann", "calm", None, now=103.0).skipped  # "don't know" is an answer too
True
>>> queue.delivered("calm", "ann")
>>> queue.committable()
{0: 2}
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from stream_al.core.types import ClassLabel
from stream_al.schemas import LabelMessage, Query

#: How many finished ids are remembered, so a query the service sent again is not re-asked.
_RECENT_IDS = 10_000
_HOUR = 3600.0


class AnswerRefused(ValueError):
    """An answer the queue cannot take, with a reason a client can show."""


@dataclass
class _Answer:
    label: ClassLabel | None  # None: skipped
    delivered: bool = False


@dataclass
class _Item:
    query: Query
    partition: int
    offset: int
    created: float
    answers: dict[str, _Answer] = field(default_factory=dict)
    #: Annotator -> when the lease ends.
    leases: dict[str, float] = field(default_factory=dict)
    #: Dropped as stale, or its partition was taken away: handed out no more.
    closed: bool = False

    def open_slots(self, k: int) -> int:
        return 0 if self.closed else k - len(self.answers) - len(self.leases)

    def done(self, k: int) -> bool:
        finished = self.closed or len(self.answers) >= k
        return finished and not self.leases and all(a.delivered for a in self.answers.values())

    def priority(self) -> tuple[float, float, int, int]:
        return (-self.query.uncertainty, self.created, self.partition, self.offset)


@dataclass
class _LastAnswer:
    query: Query
    label: ClassLabel | None
    at: float


@dataclass(frozen=True)
class AnnotatorStats:
    """What a labeler's header shows."""

    labels: int
    skips: int
    labels_per_hour: float
    #: Share of this annotator's labels that matched the item's majority, over items that
    #: got at least two labels here; None before there is one.
    agreement: float | None


class LabelQueue:
    """Fetched queries for a team of annotators (see the module docstring for the rules)."""

    def __init__(
        self,
        *,
        annotators_per_item: int = 1,
        lease_seconds: float = 120.0,
        stale_after_seconds: float | None = None,
        undo_seconds: float = 30.0,
        leases_per_annotator: int = 2,
    ) -> None:
        if annotators_per_item < 1:
            raise ValueError("annotators_per_item must be at least 1")
        self.k = annotators_per_item
        self.lease_seconds = lease_seconds
        self.stale_after_seconds = stale_after_seconds
        self.undo_seconds = undo_seconds
        self.leases_per_annotator = leases_per_annotator
        self._items: dict[str, _Item] = {}
        #: Per partition, the offset after the last record added.
        self._next_offset: dict[int, int] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._last: dict[str, _LastAnswer] = {}
        self._correcting: dict[str, str] = {}
        self._answered_at: dict[str, deque[float]] = {}
        self._first_answer: dict[str, float] = {}
        self._kinds: dict[str, Counter[str]] = {}
        self._agreement: dict[str, list[int]] = {}  # annotator -> [agreed, compared]
        #: Events by kind: ``stale``, ``duplicate``, ``expired_lease``, ``refused``.
        self.counts: Counter[str] = Counter()

    # -- filling ---------------------------------------------------------------------------

    def add(self, query: Query, *, partition: int, offset: int, now: float) -> bool:
        """Take a fetched query; False when it is a repeat of one held or finished here."""
        self._next_offset[partition] = max(self._next_offset.get(partition, 0), offset + 1)
        if query.id in self._items or query.id in self._recent:
            # The service sends a query again after a replay; one ask is enough.
            self.counts["duplicate"] += 1
            return False
        item = _Item(query, partition, offset, created=query.created_at.timestamp())
        self._items[query.id] = item
        if self._is_stale(item, now):
            self._drop_stale(item)
        return True

    def skip_record(self, partition: int, offset: int) -> None:
        """A record that is no query (unreadable): nothing to ask, nothing to wait for."""
        self._next_offset[partition] = max(self._next_offset.get(partition, 0), offset + 1)

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget the items of partitions this client no longer owns (after a rebalance)."""
        for item in [i for i in self._items.values() if i.partition in partitions]:
            del self._items[item.query.id]
        for partition in partitions:
            self._next_offset.pop(partition, None)

    # -- handing out -----------------------------------------------------------------------

    def lease(self, annotator: str, now: float) -> Query | None:
        """The most useful item this annotator has not seen, leased to them; None if none."""
        self.tidy(now)
        if len(self.held_by(annotator)) >= self.leases_per_annotator:
            return None
        candidates = [
            item
            for item in self._items.values()
            if item.open_slots(self.k) > 0
            and annotator not in item.answers
            and annotator not in item.leases
        ]
        if not candidates:
            return None
        best = min(candidates, key=_Item.priority)
        best.leases[annotator] = now + self.lease_seconds
        return best.query

    def held_by(self, annotator: str) -> list[Query]:
        """The items leased to ``annotator``, most useful first (a reloaded page shows them)."""
        held = [i for i in self._items.values() if annotator in i.leases]
        return [item.query for item in sorted(held, key=_Item.priority)]

    def fill(self, annotator: str, now: float) -> list[Query]:
        """Lease until the annotator holds ``leases_per_annotator`` items (one shown, one
        prefetched); returns all they hold."""
        while self.lease(annotator, now) is not None:
            pass
        return self.held_by(annotator)

    def renew(self, annotator: str, now: float) -> None:
        """Extend the annotator's leases: their page is still open."""
        for item in self._items.values():
            if annotator in item.leases:
                item.leases[annotator] = now + self.lease_seconds

    def release(self, annotator: str) -> int:
        """Return every item the annotator holds to the queue (the tab was closed)."""
        released = 0
        for item in self._items.values():
            if item.leases.pop(annotator, None) is not None:
                released += 1
        self._forget_finished()
        return released

    # -- answering -------------------------------------------------------------------------

    def answer(
        self, annotator: str, item_id: str, label: ClassLabel | None, now: float
    ) -> LabelMessage:
        """Take the annotator's label (None: "don't know") and return the message to send.

        Raises `AnswerRefused` when the item is gone, already answered by this annotator,
        or its lease ran out and another annotator took the slot.
        """
        self.tidy(now)
        item = self._items.get(item_id)
        if item is None:
            self.counts["refused"] += 1
            raise AnswerRefused(f"item {item_id!r} is no longer in the queue")
        if annotator in item.answers:
            self.counts["refused"] += 1
            raise AnswerRefused(f"{annotator} has already answered item {item_id!r}")
        if item.leases.pop(annotator, None) is None and item.open_slots(self.k) <= 0:
            self.counts["refused"] += 1
            raise AnswerRefused(f"the lease on item {item_id!r} ran out and it went to another")
        item.answers[annotator] = _Answer(label)
        self._note_answer(annotator, item.query, label, now)
        if len(item.answers) >= self.k:
            self._score_agreement(item)
        return _message(item_id, annotator, label, corrects=False)

    def delivered(self, item_id: str, annotator: str) -> None:
        """The answer reached the labels topic: the item may now count as done."""
        item = self._items.get(item_id)
        if item is not None and annotator in item.answers:
            item.answers[annotator].delivered = True
        self._forget_finished()

    def undo(self, annotator: str, now: float) -> tuple[Query, ClassLabel | None] | None:
        """The annotator's last item and answer, to answer again, if within the undo window."""
        last = self._last.get(annotator)
        if last is None or now - last.at > self.undo_seconds:
            return None
        self._correcting[annotator] = last.query.id
        return last.query, last.label

    def correct(
        self, annotator: str, item_id: str, label: ClassLabel | None, now: float
    ) -> LabelMessage:
        """The message that replaces the annotator's earlier answer, after `undo`."""
        if self._correcting.get(annotator) != item_id:
            raise AnswerRefused(f"no undo is open for item {item_id!r}")
        del self._correcting[annotator]
        last = self._last[annotator]
        self._kinds[annotator]["label" if last.label is not None else "skip"] -= 1
        self._kinds[annotator]["label" if label is not None else "skip"] += 1
        last.label, last.at = label, now
        item = self._items.get(item_id)
        if item is not None and annotator in item.answers:
            item.answers[annotator].label = label
        return _message(item_id, annotator, label, corrects=True)

    # -- upkeep ----------------------------------------------------------------------------

    def tidy(self, now: float) -> None:
        """Return expired leases to the queue and drop stale items."""
        for item in list(self._items.values()):
            for annotator, until in list(item.leases.items()):
                if until <= now:
                    del item.leases[annotator]
                    self.counts["expired_lease"] += 1
            if not item.closed and not item.leases and self._is_stale(item, now):
                self._drop_stale(item)
        self._forget_finished()

    def committable(self) -> dict[int, int]:
        """Per partition, the offset up to which every record is done (to commit)."""
        oldest: dict[int, int] = {}
        for item in self._items.values():
            if not item.done(self.k):
                oldest[item.partition] = min(oldest.get(item.partition, item.offset), item.offset)
        return {p: oldest.get(p, end) for p, end in self._next_offset.items()}

    # -- what a labeler sees ---------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Items that still need an annotator."""
        return sum(1 for item in self._items.values() if item.open_slots(self.k) > 0)

    def __len__(self) -> int:
        return len(self._items)

    def stats(self, annotator: str, now: float) -> AnnotatorStats:
        kinds = self._kinds.get(annotator, Counter())
        times = self._answered_at.get(annotator, deque())
        while times and times[0] < now - _HOUR:
            times.popleft()
        # Over the last hour, or since the first answer when that is more recent.
        span = min(_HOUR, max(60.0, now - self._first_answer.get(annotator, now)))
        agreed, compared = self._agreement.get(annotator, (0, 0))
        return AnnotatorStats(
            labels=kinds["label"],
            skips=kinds["skip"],
            labels_per_hour=len(times) * _HOUR / span,
            agreement=agreed / compared if compared else None,
        )

    def agreement(self) -> dict[str, float]:
        """Per annotator, the share of labels that matched the item's majority."""
        return {a: agreed / n for a, (agreed, n) in self._agreement.items() if n}

    # -- inside ----------------------------------------------------------------------------

    def _is_stale(self, item: _Item, now: float) -> bool:
        limit = self.stale_after_seconds
        return limit is not None and now - item.created > limit

    def _drop_stale(self, item: _Item) -> None:
        item.closed = True
        self.counts["stale"] += 1
        self._forget_finished()

    def _forget_finished(self) -> None:
        for item in [i for i in self._items.values() if i.done(self.k)]:
            del self._items[item.query.id]
            self._recent[item.query.id] = None
            if len(self._recent) > _RECENT_IDS:
                self._recent.popitem(last=False)

    def _note_answer(
        self, annotator: str, query: Query, label: ClassLabel | None, now: float
    ) -> None:
        self._last[annotator] = _LastAnswer(query, label, now)
        self._correcting.pop(annotator, None)
        self._kinds.setdefault(annotator, Counter())["label" if label is not None else "skip"] += 1
        self._answered_at.setdefault(annotator, deque()).append(now)
        self._first_answer.setdefault(annotator, now)

    def _score_agreement(self, item: _Item) -> None:
        labels = {a: answer.label for a, answer in item.answers.items() if answer.label is not None}
        if len(labels) < 2:
            return
        votes = Counter(labels.values()).most_common()
        tie = len(votes) > 1 and votes[0][1] == votes[1][1]
        majority = None if tie else votes[0][0]  # in a tie nobody matched a majority
        for annotator, label in labels.items():
            score = self._agreement.setdefault(annotator, [0, 0])
            score[0] += label == majority
            score[1] += 1


def _message(
    item_id: str, annotator: str, label: ClassLabel | None, *, corrects: bool
) -> LabelMessage:
    fields: dict[str, object] = {"corrects": True} if corrects else {}
    return LabelMessage(
        id=item_id, label=label, skipped=label is None, annotator=annotator, **fields
    )
