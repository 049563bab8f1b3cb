"""The kafka-python producers' partitioner places every message where kafka-python's own does."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner
from kafka.partitioner.default import murmur2 as kafka_murmur2

from stream_al.transport.partitioning import KeyedPartitioner, murmur2


@given(st.binary(max_size=300))
def test_murmur2_is_kafka_pythons(data: bytes) -> None:
    assert murmur2(data) == kafka_murmur2(data)


class _Cluster:
    """What a partitioner reads of kafka-python's ``ClusterMetadata``."""

    internal_topics = frozenset({"__consumer_offsets"})

    def __init__(self, partitions: dict[str, dict[int, int]]) -> None:
        self._partitions = partitions  # topic -> partition -> leader (-1: none)

    def topics(self) -> set[str]:
        return set(self._partitions) - self.internal_topics

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        found = self._partitions.get(topic)
        return None if found is None else set(found)

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        found = self._partitions.get(topic)
        return None if found is None else {p for p, leader in found.items() if leader != -1}


def _placements(partitioner: object, cluster: _Cluster, keys: list[bytes | None]) -> list[object]:
    random.seed(7)  # both partitioners draw a keyless message's partition from `random`
    placed: list[object] = []
    for key in keys:
        try:
            placed.append(partitioner.partition("t", key, key, None, b"v", cluster))  # type: ignore[attr-defined]
        except ValueError as error:
            placed.append(str(error))
    return placed


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 12])
@given(keys=st.lists(st.one_of(st.none(), st.binary(max_size=40)), max_size=60))
def test_every_message_goes_where_the_default_puts_it(count: int, keys: list[bytes | None]) -> None:
    # Partitions numbered out of order, and some without a leader (a keyed message ignores
    # that; a keyless one is drawn among those with one).
    cluster = _Cluster({"t": {p: (-1 if p % 3 == 1 else 0) for p in reversed(range(count))}})
    assert _placements(KeyedPartitioner(), cluster, keys) == _placements(
        DefaultPartitioner(), cluster, keys
    )


@pytest.mark.parametrize("topic", ["unknown", "__consumer_offsets"])
def test_a_topic_the_metadata_does_not_list_is_refused_alike(topic: str) -> None:
    cluster = _Cluster({"t": {0: 0}, "__consumer_offsets": {0: 0}})
    for partitioner in (KeyedPartitioner(), DefaultPartitioner()):
        with pytest.raises(ValueError, match=f"Topic {topic} not found"):
            partitioner.partition(topic, b"k", b"k", None, b"v", cluster)
