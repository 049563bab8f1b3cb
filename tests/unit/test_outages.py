"""Long-running client loops ride out broker outages (``kafka_io.Outages``).

kafka-python 3 can raise a retriable error from ``poll`` while the broker is away; the
simulated oracle's and the labeling desk's loops died of it at a broker restart (seen in CI:
the restart test's queries stayed unanswered). A real broker does not raise on cue, so the
consumer here is a stand-in that raises as kafka-python did.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaConnectionError, KafkaError, UnsupportedVersionError

from stream_al.labeling.desk import LabelingDesk
from stream_al.schemas import Query, encode
from stream_al.service.kafka_io import Outages
from stream_al.settings import Settings


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outages = Outages("the loop", pause_s=0)
    with caplog.at_level(logging.INFO, logger="stream_al.service.kafka_io"):
        for _ in range(3):
            with outages.step():
                raise KafkaConnectionError("111 ECONNREFUSED")
        assert outages.away
        for _ in range(2):
            with outages.step():
                pass
    assert not outages.away
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(messages) == 2
    assert messages[0][0] == logging.WARNING and "not reachable" in messages[0][1]
    assert "ECONNREFUSED" in messages[0][1]
    assert messages[1][0] == logging.INFO and "back after" in messages[1][1]


@pytest.mark.parametrize("error", [UnsupportedVersionError("no"), ValueError("a bug")])
def test_errors_that_an_outage_does_not_explain_pass(error: Exception) -> None:
    assert not (isinstance(error, KafkaError) and error.retriable)
    with pytest.raises(type(error)), Outages("the loop", pause_s=0).step():
        raise error


class FlakyConsumer:
    """Raises as kafka-python 3 did while the broker was away, then delivers ``records``."""

    def __init__(self, desk: LabelingDesk, failures: int, records: list[Any]) -> None:
        self.desk = desk
        self.failures = failures
        self.records = records
        self.polls = 0
        self.partition = TopicPartition(desk.settings.topics.oracle, 0)

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        self.polls += 1
        if self.polls <= self.failures:
            raise KafkaConnectionError("111 ECONNREFUSED")
        if self.polls == self.failures + 1:
            return {self.partition: self.records}
        self.desk._stop.set()
        return {}

    def assignment(self) -> set[TopicPartition]:
        return {self.partition}

    def committed(self, partition: TopicPartition) -> int:
        return 0

    def highwater(self, partition: TopicPartition) -> int:
        return len(self.records)

    def commit(self, offsets: object) -> None:
        pass


class Record:
    def __init__(self, value: bytes, offset: int) -> None:
        self.value, self.offset = value, offset


def test_the_labeling_desk_keeps_serving_after_the_broker_was_away() -> None:
    desk = LabelingDesk(Settings())
    query = Query(
        id="q-1",
        features={"x": 1.0},
        predicted_label="a",
        probabilities={"a": 0.4, "b": 0.6},
        uncertainty=0.6,
        strategy="adaptive",
        reason="uncertain",
        threshold=0.5,
        created_at=datetime.now(UTC),
    )
    consumer = FlakyConsumer(desk, failures=2, records=[Record(encode(query), 0)])
    desk._consumer = consumer  # type: ignore[assignment]
    desk._loop()
    assert desk.error is None
    assert consumer.polls == 4  # two refused, the records, the stop
    leased = desk.queue.lease("alice", now=time.time())
    assert leased is not None and leased.id == "q-1"
