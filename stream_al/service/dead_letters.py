"""Dead letters: a message the service cannot use, kept with the reason in its headers."""

from __future__ import annotations

from stream_al.schemas import DeadLetterReason
from stream_al.transport.base import Record

#: Header names on dead letters (values are UTF-8 text).
REASON_HEADER = "stream_al.reason"
DETAIL_HEADER = "stream_al.detail"
SOURCE_TOPIC_HEADER = "stream_al.source.topic"
SOURCE_PARTITION_HEADER = "stream_al.source.partition"
SOURCE_OFFSET_HEADER = "stream_al.source.offset"
#: Says what of the original a dead letter had to leave out (see ``dead_letter``).
TRUNCATED_HEADER = "stream_al.truncated"

#: A dead letter keeps its message's key and headers up to these sizes, and its value up to
#: ``max_message_bytes``: the producer refuses larger records, and a send that raises stops
#: the service, on the same message again after every restart.
_DEAD_LETTER_KEY_BYTES = 1024
_DEAD_LETTER_HEADER_BYTES = 16 * 1024


def dead_letter(
    record: Record, reason: DeadLetterReason, detail: str, max_message_bytes: int
) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """The (key, value, headers) to send for ``record``: the original, plus why and whence.

    The key, value and headers are cut to sizes the producer accepts, saying so in a
    ``stream_al.truncated`` header; the source coordinates still find the whole original
    while the source topic's retention lasts.
    """
    headers = [
        (REASON_HEADER, reason.encode()),
        (DETAIL_HEADER, detail[:2000].encode()),
        (SOURCE_TOPIC_HEADER, record.topic.encode()),
        (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
    ]
    key, value, cut = record.key, record.value or b"", []
    if len(value) > max_message_bytes:
        cut.append(f"value of {len(value)} bytes")
        value = value[:max_message_bytes]
    if key is not None and len(key) > _DEAD_LETTER_KEY_BYTES:
        cut.append(f"key of {len(key)} bytes")
        key = key[:_DEAD_LETTER_KEY_BYTES]
    # A header's value may be null on the wire; the producer takes bytes only.
    extra = [(name, bytes(v or b"")) for name, v in (record.headers or [])]
    if sum(len(name) + len(v) for name, v in extra) > _DEAD_LETTER_HEADER_BYTES:
        cut.append(f"{len(extra)} headers")
        extra = []
    if cut:
        headers.append((TRUNCATED_HEADER, ("left out: " + ", ".join(cut)).encode()))
    return key, value, headers + extra
