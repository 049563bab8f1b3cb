"""Queried samples waiting for their label."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from stream_al.core.types import ClassLabel, Features


@dataclass(frozen=True, slots=True)
class PendingQuery:
    """What the learner remembers of a sample it asked about."""

    features: Features
    predicted: ClassLabel | None
    #: When the query was made (epoch seconds), for time-to-live and label latency.
    asked_at: float


class Lookup(StrEnum):
    FOUND = "found"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


class PendingStore:
    """A bounded map of sample id -> ``PendingQuery``, oldest first.

    At most ``max_size`` entries are kept, each for at most ``ttl_seconds``; what falls out
    is counted in ``evicted`` and its id remembered (boundedly) so that a label arriving
    too late is reported as expired rather than unknown.

    >>> store = PendingStore(max_size=2, ttl_seconds=60)
    >>> for i, t in enumerate([0.0, 1.0, 2.0]):
    ...     store.add(f"s{i}", PendingQuery({"x": i}, "a", asked_at=t), now=t)
    >>> len(store), store.evicted
    (2, 1)
    >>> store.pop("s0", now=3.0)
    (<Lookup.EXPIRED: 'expired'>, None)
    >>> store.pop("s2", now=100.0)[0]
    <Lookup.EXPIRED: 'expired'>
    """

    def __init__(self, max_size: int, ttl_seconds: float) -> None:
        self.max_size = max_size
        self.ttl_seconds = ttl_seconds
        self.evicted = 0
        self._entries: OrderedDict[str, PendingQuery] = OrderedDict()
        self._gone: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._entries

    def add(self, sample_id: str, query: PendingQuery, now: float) -> None:
        self._entries.pop(sample_id, None)
        self._entries[sample_id] = query
        self._gone.pop(sample_id, None)
        self.expire(now)
        while len(self._entries) > self.max_size:
            self._evict(next(iter(self._entries)))

    def pop(self, sample_id: str, now: float) -> tuple[Lookup, PendingQuery | None]:
        """Take the entry for ``sample_id`` out of the store, if it is still there."""
        self.expire(now)
        query = self._entries.pop(sample_id, None)
        if query is not None:
            return Lookup.FOUND, query
        if sample_id in self._gone:
            return Lookup.EXPIRED, None
        return Lookup.UNKNOWN, None

    def get(self, sample_id: str, now: float) -> tuple[Lookup, PendingQuery | None]:
        """Like ``pop``, but the entry stays (its label may need several answers)."""
        self.expire(now)
        query = self._entries.get(sample_id)
        if query is not None:
            return Lookup.FOUND, query
        if sample_id in self._gone:
            return Lookup.EXPIRED, None
        return Lookup.UNKNOWN, None

    def discard(self, sample_id: str) -> None:
        """Drop ``sample_id``'s entry, if any, as if it had never been added."""
        self._entries.pop(sample_id, None)

    def expire(self, now: float) -> None:
        """Evict the entries older than the time-to-live."""
        deadline = now - self.ttl_seconds
        while self._entries:
            oldest_id, oldest = next(iter(self._entries.items()))
            if oldest.asked_at >= deadline:
                break
            self._evict(oldest_id)

    def _evict(self, sample_id: str) -> None:
        del self._entries[sample_id]
        self.evicted += 1
        self._gone[sample_id] = None
        if len(self._gone) > self.max_size:
            self._gone.popitem(last=False)
