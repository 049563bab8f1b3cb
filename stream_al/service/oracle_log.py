"""The oracle topic as the log of queries, from which a replica recovers its pending store.

Every query the service sends carries three headers: which replica asked
(``group/replica``), the query's number in that replica's count of queries, and how many
samples that replica had seen when it asked. Each replica tails the oracle topic with a
group-less consumer, positioned like the labels consumer, and hands what it reads to
``ActiveLearner.recover_query``:

- its *own* queries made after the checkpoint it restarted from are pending again, with
  their features, and charged to the strategy's account once, so labels without features
  are learned after a crash and warm-up and budget are not spent twice;
- *other replicas'* queries are made pending too, so every replica learns every label.

The checkpoint records the tail's offsets beside the labels offsets: both logs are replayed
from the same cut.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_al.transport.base import Record

REPLICA_HEADER = "stream_al.replica"
QUERY_NUMBER_HEADER = "stream_al.query_number"
SAMPLES_SEEN_HEADER = "stream_al.samples_seen"


@dataclass(frozen=True, slots=True)
class QueryOrigin:
    """Who asked a logged query, and where it stood in that replica's account."""

    replica: str
    number: int
    samples_seen: int


def query_headers(replica: str, number: int, samples_seen: int) -> list[tuple[str, bytes]]:
    """The headers that make a query record recoverable (see :func:`query_origin`).

    >>> query_origin_of(query_headers("g/r1", 7, 140))
    QueryOrigin(replica='g/r1', number=7, samples_seen=140)
    """
    return [
        (REPLICA_HEADER, replica.encode()),
        (QUERY_NUMBER_HEADER, str(number).encode()),
        (SAMPLES_SEEN_HEADER, str(samples_seen).encode()),
    ]


def query_origin(record: Record) -> QueryOrigin | None:
    """The origin of an oracle record, or None for a record no stream_al replica wrote."""
    return query_origin_of(record.headers or [])


def query_origin_of(headers: list[tuple[str, bytes]]) -> QueryOrigin | None:
    values = {name: value for name, value in headers}
    try:
        return QueryOrigin(
            bytes(values[REPLICA_HEADER]).decode(),
            int(values[QUERY_NUMBER_HEADER]),
            int(values[SAMPLES_SEEN_HEADER]),
        )
    except (KeyError, TypeError, ValueError):
        return None
