"""Checkpoints kept in a compacted Kafka topic, for services without durable disks.

Layout. The store writes checkpoint number ``seq`` (1, 2, 3, ...) under the record
key ``"{key}/{seq % keep}"`` with a header ``stream-al-seq``. Compaction keeps the
latest value of each record key, so the topic always holds the last ``keep``
checkpoints of every service key: there is an older one to fall back to even after
the log cleaner ran.

Trust. Anyone who can produce to the topic could plant a pickle, so every value must
carry an HMAC-SHA256 signature made with the key every replica shares
(``checkpoint.hmac_key`` or ``checkpoint.key_file``); the store refuses to start
without one. The signature also covers the record key and sequence number: a value
signed for one replica or slot is refused under another.

Reading. Because anyone may also write under this replica's record keys, "the latest
value of a key" is not what the reader keeps: it verifies each record's signature as
it reads (no unpickling) and keeps, per record key, the genuine value with the
highest sequence number (for genuine values, the latest). A forged, unsigned,
foreign-key or truncated record, or a tombstone, is logged at WARNING and ignored, so
it cannot hide an older genuine checkpoint, nor can a replayed older genuine value
hide a newer one. Memory stays bounded: one value per record key, counts of the rest.
What the reader cannot undo is the log cleaner: once compaction kept only a forged
record of a key, the genuine ones of that key are gone (the other slots remain).
Restrict produce rights on the topic with ACLs.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, MessageSizeTooLargeError, TopicAlreadyExistsError

from stream_al.durability.checkpoint import Checkpoint
from stream_al.durability.envelope import authenticate, open_envelope, seal
from stream_al.durability.errors import (
    CheckpointConfigError,
    CheckpointError,
    CheckpointInvalid,
    CheckpointTooLarge,
    CheckpointUntrusted,
    NoValidCheckpoint,
)
from stream_al.durability.keys import shared_store_key
from stream_al.durability.store import Candidate, restore_latest
from stream_al.kafka_compat import close_producer
from stream_al.service.kafka_io import topic_configs

log = logging.getLogger(__name__)

SEQ_HEADER = "stream-al-seq"
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
#: Room for the record batch framing, record key and headers around the value.
FRAMING_BYTES = 64 * 1024
#: Keys of ``kafka_config`` the store sets itself; a caller's value is overridden.
_OWNED_KEYS = frozenset(
    {
        "key_serializer",
        "value_serializer",
        "key_deserializer",
        "value_deserializer",
        "group_id",
        "group_instance_id",
        "enable_auto_commit",
        "auto_offset_reset",
        "isolation_level",
        "acks",
        "max_request_size",
        "max_partition_fetch_bytes",
        "fetch_max_bytes",
        "transactional_id",
    }
)


@dataclass(frozen=True)
class _Record:
    """A record whose signature verified for its record key and sequence number."""

    record_key: str
    seq: int
    partition: int
    offset: int
    value: bytes

    @property
    def order(self) -> tuple[int, int]:
        return (self.seq, self.offset)


#: Refused records described in a NoValidCheckpoint; the rest are only counted.
_REFUSALS_LISTED = 10


@dataclass
class _ReadBack:
    """What one read of the topic found under this replica's keys, in bounded memory.

    Per record key only the genuine value with the highest sequence number is held;
    refused records are counted by kind, and the first few described for the error
    raised when nothing genuine is left.
    """

    genuine: dict[str, _Record] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    refusals: list[tuple[str, str]] = field(default_factory=list)

    def keep(self, record: _Record) -> None:
        kept = self.genuine.get(record.record_key)
        if kept is None or record.order > kept.order:
            self.genuine[record.record_key] = record

    def refuse(self, kind: str, source: str, reason: str) -> None:
        self.refused[kind] += 1
        if len(self.refusals) < _REFUSALS_LISTED:
            self.refusals.append((source, reason))

    @property
    def next_seq(self) -> int:
        """After the highest *genuine* number: a forged claim must not push numbering."""
        return max((record.seq for record in self.genuine.values()), default=0) + 1

    def unusable(self) -> NoValidCheckpoint:
        """The error for records that exist but none of which verifies."""
        failures = list(self.refusals)
        unlisted = sum(self.refused.values()) - len(failures)
        if unlisted:
            failures.append((f"{unlisted} more record(s)", "refused likewise"))
        return NoValidCheckpoint(failures)


class KafkaCheckpointStore:
    """Signed checkpoints in a compacted topic, the last ``keep`` per service key.

    Args:
        topic: the checkpoint topic; created with ``cleanup.policy=compact`` and a
            ``max.message.bytes`` fitting ``max_bytes`` if missing. An existing topic
            that is not compacted is refused.
        key: this service's checkpoint key (e.g. consumer group + replica id).
        kafka_config: kafka-python settings shared by the admin client, producer and
            consumer (``bootstrap_servers``, ``security_protocol``, ``ssl_*``,
            ``sasl_*``, ``client_id``, ...). Keys no client knows are refused; keys the
            store sets itself (serializers, ``acks``, sizes, group settings) are ignored.
        hmac_key: ``checkpoint.hmac_key``, at least 16 bytes; wins over ``key_file``.
        keep: checkpoints kept per key (``checkpoint.keep``).
        max_bytes: largest checkpoint accepted (``checkpoint.max_bytes``).
        replication_factor: for topic creation; -1 takes the broker default.
        timeout_s: bound on each Kafka operation (send, topic read, admin calls).
        key_file: ``checkpoint.key_file``, used when ``hmac_key`` is ``None``; must
            exist (it is never generated: every replica needs the same key). One of
            the two is required.
    """

    def __init__(
        self,
        topic: str,
        key: str,
        kafka_config: Mapping[str, Any],
        hmac_key: bytes | None,
        keep: int = 3,
        max_bytes: int = DEFAULT_MAX_BYTES,
        replication_factor: int = -1,
        timeout_s: float = 30.0,
        key_file: Path | None = None,
    ) -> None:
        hmac_key = shared_store_key(hmac_key, key_file)
        if keep < 1:
            raise CheckpointConfigError(f"checkpoint.keep must be at least 1 (got {keep})")
        if max_bytes < 1024:
            raise CheckpointConfigError(f"checkpoint.max_bytes must be >= 1024 (got {max_bytes})")
        if not key:
            raise CheckpointConfigError("the checkpoint key must not be empty")
        self.topic = topic
        self.key = key
        self.keep = keep
        self.max_bytes = max_bytes
        self._hmac_key = hmac_key
        self._timeout_s = timeout_s
        self._configs = _split_client_configs(kafka_config)
        self._next_seq: int | None = None
        self._ensure_topic(replication_factor)
        self._producer = KafkaProducer(
            **self._configs["producer"],
            acks="all",
            max_request_size=self.max_bytes + FRAMING_BYTES,
            # A send waits for metadata this long at most: during an outage a save must
            # fail within the bound instead of holding the service for a minute.
            max_block_ms=int(timeout_s * 1000),
        )

    def __repr__(self) -> str:
        return f"KafkaCheckpointStore(topic={self.topic!r}, key={self.key!r}, keep={self.keep})"

    def save(self, checkpoint: Checkpoint) -> str:
        """Sign and produce ``checkpoint``; returns ``"topic[partition]@offset"``.

        Returns once every in-sync replica has it (``acks=all``).

        Raises:
            CheckpointTooLarge: the signed checkpoint exceeds ``max_bytes`` (or the
                topic's ``max.message.bytes``).
            CheckpointError: Kafka did not acknowledge within ``timeout_s``.
        """
        if self._next_seq is None:
            self._next_seq = self._read_back().next_seq
        seq = self._next_seq
        record_key = f"{self.key}/{seq % self.keep}"
        data = seal(checkpoint, self._hmac_key, _context(record_key, seq))
        if len(data) > self._limit:
            raise CheckpointTooLarge(
                f"checkpoint is {len(data)} bytes, over the {self._limit}-byte limit "
                f"(checkpoint.max_bytes={self.max_bytes}, topic {self.topic!r} "
                f"max.message.bytes={self._limit + FRAMING_BYTES}); raise both"
            )
        try:
            future = self._producer.send(
                self.topic,
                key=record_key.encode("utf-8"),
                value=data,
                headers=[(SEQ_HEADER, str(seq).encode("ascii"))],
            )
            metadata = future.get(timeout=self._timeout_s)
        except MessageSizeTooLargeError as exc:
            raise CheckpointTooLarge(
                f"Kafka refused a {len(data)}-byte checkpoint as too large for topic "
                f"{self.topic!r}: raise its max.message.bytes ({exc})"
            ) from exc
        except KafkaError as exc:
            # The record may still land later: its number is never used again, so it
            # cannot pass for a newer checkpoint of the same slot.
            self._next_seq = seq + 1
            raise CheckpointError(f"could not write checkpoint to {self.topic!r}: {exc}") from exc
        self._next_seq = seq + 1
        where = f"{self.topic}[{metadata.partition}]@{metadata.offset}"
        log.info("checkpoint %d saved to %s as %s (%d bytes)", seq, where, record_key, len(data))
        return where

    def load_latest(
        self,
        expected_fingerprint: str | None = None,
        expected_config: Mapping[str, Any] | None = None,
    ) -> Checkpoint | None:
        """The newest checkpoint of this key that verifies; see :func:`restore_latest`.

        Candidates are the genuine values kept by the reader (see the module
        docstring), tried by sequence number, highest first. Records under this key of
        which none verifies raise :class:`NoValidCheckpoint` rather than returning
        ``None``: a wrong key must not restart the learner from scratch.
        """
        found = self._read_back()
        self._next_seq = found.next_seq
        if not found.genuine and found.refused:
            raise found.unusable()
        candidates = self._candidates(found.genuine.values())
        return restore_latest(candidates, expected_fingerprint, expected_config)

    def close(self) -> None:
        """Close the producer; a save that timed out is not waited for again."""
        close_producer(self._producer, timeout=0)

    @property
    def _limit(self) -> int:
        return min(self.max_bytes, self._topic_max_message_bytes - FRAMING_BYTES)

    def _candidates(self, records: Iterable[_Record]) -> Iterator[Candidate]:
        for record in sorted(records, key=lambda record: record.order, reverse=True):
            where = (self.topic, record.partition, record.offset, record.record_key, record.seq)
            context = _context(record.record_key, record.seq)
            # Verified again, as any load is: a load never relies on an earlier check.
            yield _describe(*where), partial(open_envelope, record.value, self._hmac_key, context)

    def _read_back(self) -> _ReadBack:
        """Read the whole topic: this key's genuine records and the refused ones."""
        consumer = KafkaConsumer(
            **self._configs["consumer"],
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=self.max_bytes + FRAMING_BYTES,
            fetch_max_bytes=max(52_428_800, self.max_bytes + FRAMING_BYTES),
        )
        try:
            found = self._consume_all(consumer)
        finally:
            consumer.close(autocommit=False)
        if found.refused:
            log.warning(
                "checkpoint topic %r: ignored %d record(s) under key %r (%s); %d genuine kept",
                self.topic,
                sum(found.refused.values()),
                self.key,
                ", ".join(f"{count} {kind}" for kind, count in sorted(found.refused.items())),
                len(found.genuine),
            )
        return found

    def _consume_all(self, consumer: KafkaConsumer) -> _ReadBack:
        deadline = time.monotonic() + self._timeout_s
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            # The topic was there at start-up: treating "cannot see it" as "no checkpoint"
            # would restart the learner from scratch, so refuse instead.
            raise CheckpointError(f"checkpoint topic {self.topic!r} has no visible partitions")
        assigned = [TopicPartition(self.topic, partition) for partition in sorted(partitions)]
        found = _ReadBack()
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        end = consumer.end_offsets(assigned, timeout_ms=int(self._timeout_s * 1000))
        # Compacted topics have offset gaps: read until the position reaches the end
        # offset seen at the start, not until a record with offset end - 1 arrives.
        while any(consumer.position(tp) < end[tp] for tp in assigned):
            if time.monotonic() > deadline:
                raise CheckpointError(
                    f"timed out after {self._timeout_s}s reading checkpoint topic {self.topic!r}"
                )
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for message in batch:
                    if message.offset >= end[tp]:
                        continue
                    record_key = message.key.decode("utf-8", "replace") if message.key else ""
                    if not self._owns(record_key):
                        continue
                    self._admit(found, record_key, tp.partition, message)
        return found

    def _admit(self, found: _ReadBack, record_key: str, partition: int, message: Any) -> None:
        """Keep the record if its signature verifies; else log at WARNING why not.

        Only the HMAC is checked, nothing is unpickled: a genuine record of a newer
        format version is kept, and its restore then tells the operator.
        """
        seq = _parse_seq(message.headers)
        source = _describe(self.topic, partition, message.offset, record_key, seq)
        if message.value is None:
            kind, reason = "tombstone", "a tombstone, which cannot be signed"
        else:
            value = bytes(message.value)
            try:
                authenticate(value, self._hmac_key, _context(record_key, seq))
            except CheckpointInvalid as exc:
                kind = "untrusted" if isinstance(exc, CheckpointUntrusted) else "corrupt"
                reason = str(exc)
            else:
                if seq is not None:
                    found.keep(_Record(record_key, seq, partition, message.offset, value))
                    return
                # Signed with our key, yet not by this store: it always numbers its records.
                kind, reason = "unnumbered", f"no {SEQ_HEADER} header"
        log.warning(
            "checkpoint record %s ignored: %s; an older genuine value of the key is used if "
            "there is one",
            source,
            reason,
        )
        found.refuse(kind, source, reason)

    def _owns(self, record_key: str) -> bool:
        base, _, slot = record_key.rpartition("/")
        return record_key == self.key or (base == self.key and slot.isdigit())

    def _ensure_topic(self, replication_factor: int) -> None:
        timeout_ms = int(self._timeout_s * 1000)
        wanted_max = self.max_bytes + FRAMING_BYTES
        admin = KafkaAdminClient(**{"request_timeout_ms": timeout_ms, **self._configs["admin"]})
        try:
            if self.topic not in admin.list_topics():
                try:
                    admin.create_topics(
                        {
                            self.topic: {
                                "num_partitions": 1,
                                "replication_factor": replication_factor,
                                "configs": {
                                    "cleanup.policy": "compact",
                                    "max.message.bytes": str(wanted_max),
                                },
                            }
                        },
                        timeout_ms=timeout_ms,
                        wait_for_metadata=True,
                    )
                    log.info("created compacted checkpoint topic %r", self.topic)
                except TopicAlreadyExistsError:
                    pass  # another replica won the race; check its settings below
            found = topic_configs(admin, self.topic, ("cleanup.policy", "max.message.bytes"))
        finally:
            admin.close()
        policy = found.get("cleanup.policy") or "delete"
        if "compact" not in policy.split(","):
            raise CheckpointConfigError(
                f"checkpoint topic {self.topic!r} has cleanup.policy={policy}; it must be "
                "compact, or old checkpoints are deleted by retention"
            )
        self._topic_max_message_bytes = int(found.get("max.message.bytes") or wanted_max)
        if self._topic_max_message_bytes < wanted_max:
            log.warning(
                "checkpoint topic %r has max.message.bytes=%d: checkpoints over %d bytes will be "
                "refused although checkpoint.max_bytes=%d",
                self.topic,
                self._topic_max_message_bytes,
                self._limit,
                self.max_bytes,
            )


def _describe(topic: str, partition: int, offset: int, record_key: str, seq: int | None) -> str:
    return f"{topic}[{partition}]@{offset} (key {record_key!r}, seq {seq})"


def _context(record_key: str, seq: int | None) -> bytes:
    return b"kafka\x00" + record_key.encode("utf-8") + b"\x00" + str(seq).encode("ascii")


def _parse_seq(headers: list[tuple[str, bytes]] | None) -> int | None:
    for name, value in headers or []:
        if name == SEQ_HEADER:
            try:
                seq = int(value.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                return None
            return seq if 0 <= seq < 2**62 else None
    return None


def _split_client_configs(kafka_config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-client subsets of ``kafka_config``; a key no client knows is a typo: refuse it."""
    known = {
        "admin": set(KafkaAdminClient.DEFAULT_CONFIG),
        "producer": set(KafkaProducer.DEFAULT_CONFIG),
        "consumer": set(KafkaConsumer.DEFAULT_CONFIG),
    }
    unknown = sorted(set(kafka_config) - set().union(*known.values()) - _OWNED_KEYS)
    if unknown:
        raise CheckpointConfigError(
            f"unknown Kafka client settings for the checkpoint store: {', '.join(unknown)}"
        )
    return {
        client: {
            name: value
            for name, value in kafka_config.items()
            if name in names and name not in _OWNED_KEYS
        }
        for client, names in known.items()
    }
