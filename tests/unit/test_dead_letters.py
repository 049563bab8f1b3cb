"""Dead-letter records: the original kept, the reason and source in headers, sizes bounded."""

from __future__ import annotations

from kafka.consumer.fetcher import ConsumerRecord

from stream_al.service.dead_letters import (
    DETAIL_HEADER,
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    TRUNCATED_HEADER,
    dead_letter,
)


def record(key: bytes | None, value: bytes | None, headers: list | None = None) -> ConsumerRecord:
    return ConsumerRecord(
        topic="samples",
        partition=2,
        leader_epoch=0,
        offset=41,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        headers=headers or [],
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        serialized_header_size=0,
    )


def test_the_original_is_kept_with_reason_detail_and_source() -> None:
    key, value, headers = dead_letter(
        record(b"k", b"{bad", [("trace", b"t-1")]), "not_json", "not JSON", 1000
    )
    named = dict(headers)
    assert (key, value) == (b"k", b"{bad")
    assert named[REASON_HEADER] == b"not_json" and named[DETAIL_HEADER] == b"not JSON"
    assert named[SOURCE_TOPIC_HEADER] == b"samples"
    assert (named[SOURCE_PARTITION_HEADER], named[SOURCE_OFFSET_HEADER]) == (b"2", b"41")
    assert named["trace"] == b"t-1"
    assert TRUNCATED_HEADER not in named


def test_what_the_producer_would_refuse_is_cut_and_said() -> None:
    key, value, headers = dead_letter(
        record(b"k" * 5000, b"v" * 3000, [("h", b"x" * 20_000)]), "too_large", "big", 1000
    )
    named = dict(headers)
    assert len(value) == 1000 and key is not None and len(key) == 1024
    assert "h" not in named
    assert named[TRUNCATED_HEADER] == b"left out: value of 3000 bytes, key of 5000 bytes, 1 headers"


def test_a_tombstone_becomes_an_empty_value() -> None:
    assert dead_letter(record(None, None), "not_json", "empty", 1000)[:2] == (None, b"")
