"""Checkpoint store: atomic files, pruning, fallback, signatures, fingerprints, inspect."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import pickle
import re
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from stream_al.durability import (
    CHECKPOINT_FORMAT_VERSION,
    Checkpoint,
    CheckpointConfigError,
    CheckpointCorrupt,
    CheckpointMismatch,
    CheckpointSchedule,
    CheckpointUntrusted,
    KafkaCheckpointStore,
    LocalCheckpointStore,
    NoValidCheckpoint,
    UnsupportedCheckpointVersion,
    config_fingerprint,
    inspect_checkpoint,
    read_checkpoint,
)
from stream_al.durability.envelope import HEADER_SIZE, open_envelope, seal

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
BASE_CONFIG: dict[str, Any] = {
    "model": {"name": "logreg", "seed": 42},
    "strategy": {"name": "adaptive", "budget": 0.05},
}


class StandInLearner:
    """Picklable stand-in for ActiveLearner with the same ``summary()`` contract."""

    def __init__(self, labels_learned: int, config: dict[str, Any] | None = None) -> None:
        self.labels_learned = labels_learned
        self.samples_seen = labels_learned * 20
        self.weights = {"x": labels_learned * 0.5}
        self.config = config if config is not None else BASE_CONFIG

    def summary(self) -> dict[str, Any]:
        return {
            "labels_learned": self.labels_learned,
            "samples_seen": self.samples_seen,
            "strategy": {"threshold": 0.4, "spent": self.labels_learned},
            "model": "LogisticRegression()",
            "config": self.config,
        }


#: Side effects of unpickling _Exploit; must stay empty if verification comes first.
EXECUTED: list[str] = []


def _record_execution(tag: str) -> None:
    EXECUTED.append(tag)


class _Exploit:
    """Unpickles by calling ``_record_execution``: stands in for arbitrary code."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_record_execution, ("unpickled",))


def make_checkpoint(labels: int, config: dict[str, Any] | None = None) -> Checkpoint:
    config = config if config is not None else BASE_CONFIG
    return Checkpoint(
        learner=StandInLearner(labels, config),
        label_offsets={"labels": {0: labels, 1: labels + 7}},
        config_fingerprint=config_fingerprint(config),
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=labels),
    )


def build_envelope(
    payload: bytes, version: int = CHECKPOINT_FORMAT_VERSION, key: bytes | None = None
) -> bytes:
    """An envelope built straight from the layout documented in ``envelope.py``."""
    kind = 1 if key is None else 2
    key_id = (
        bytes(8)
        if key is None
        else hashlib.sha256(b"stream-al checkpoint key id\x00" + key).digest()[:8]
    )
    prefix = b"\x89SALCKP\n" + struct.pack(">HBBQ", version, kind, 0, len(payload)) + key_id
    signed = prefix + struct.pack(">I", 0) + payload
    if key is None:
        digest = hashlib.sha256(signed).digest()
    else:
        digest = hmac.new(key, signed, hashlib.sha256).digest()
    return prefix + digest + payload


def flip_bit(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x04
    path.write_bytes(bytes(data))


def test_round_trip_preserves_state(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path, keep=3, hmac_key=None)
    saved = make_checkpoint(labels=12)
    path = store.save(saved)
    loaded = store.load_latest(saved.config_fingerprint)
    assert path.name == "checkpoint-000000001.ckpt"
    assert loaded is not None
    assert loaded.learner.weights == {"x": 6.0}
    assert loaded.label_offsets == {"labels": {0: 12, 1: 19}}
    assert loaded.config_fingerprint == saved.config_fingerprint
    assert loaded.created_at == saved.created_at
    assert loaded.format_version == CHECKPOINT_FORMAT_VERSION


def test_empty_directory_loads_none(tmp_path: Path) -> None:
    assert LocalCheckpointStore(tmp_path / "new", keep=2, hmac_key=None).load_latest() is None


def test_file_follows_documented_layout(tmp_path: Path) -> None:
    path = LocalCheckpointStore(tmp_path, keep=1, hmac_key=None).save(make_checkpoint(3))
    data = path.read_bytes()
    payload = data[HEADER_SIZE:]
    assert data == build_envelope(payload)
    assert pickle.loads(payload).label_offsets == {"labels": {0: 3, 1: 10}}


def test_save_leaves_no_temporary_files_and_restricts_mode(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path, keep=5, hmac_key=None)
    for labels in range(3):
        store.save(make_checkpoint(labels))
    names = sorted(entry.name for entry in tmp_path.iterdir())
    assert names == [f"checkpoint-00000000{seq}.ckpt" for seq in (1, 2, 3)]
    assert all((tmp_path / name).stat().st_mode & 0o077 == 0 for name in names)


def test_failed_write_leaves_neither_temporary_nor_final_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalCheckpointStore(tmp_path, keep=5, hmac_key=None)
    first = store.save(make_checkpoint(1))

    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        store.save(make_checkpoint(2))
    assert [entry.name for entry in tmp_path.iterdir()] == [first.name]


def test_stale_temporary_from_a_crash_is_removed_on_start(tmp_path: Path) -> None:
    (tmp_path / ".checkpoint-abc123.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / "notes.txt").write_text("not ours")
    LocalCheckpointStore(tmp_path, keep=2, hmac_key=None)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["notes.txt"]


def test_keeps_only_the_last_k(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path, keep=2, hmac_key=None)
    for labels in range(1, 6):
        store.save(make_checkpoint(labels))
    assert [path.name for path in store.paths()] == [
        "checkpoint-000000004.ckpt",
        "checkpoint-000000005.ckpt",
    ]
    latest = store.load_latest()
    assert latest is not None and latest.learner.labels_learned == 5


def test_sequence_continues_after_restart_and_names_sort(tmp_path: Path) -> None:
    for labels in range(12):
        LocalCheckpointStore(tmp_path, keep=20, hmac_key=None).save(make_checkpoint(labels))
    paths = LocalCheckpointStore(tmp_path, keep=20, hmac_key=None).paths()
    assert [path.name for path in paths] == sorted(path.name for path in paths)
    assert paths[-1].name == "checkpoint-000000012.ckpt"
    assert read_checkpoint(paths[-1]).learner.labels_learned == 11


def _two_checkpoints(tmp_path: Path, key: bytes | None = None) -> tuple[LocalCheckpointStore, Path]:
    store = LocalCheckpointStore(tmp_path, keep=3, hmac_key=key)
    store.save(make_checkpoint(1))
    return store, store.save(make_checkpoint(2))


def test_truncated_latest_falls_back_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, latest = _two_checkpoints(tmp_path)
    latest.write_bytes(latest.read_bytes()[:-100])
    with caplog.at_level(logging.WARNING, logger="stream_al.durability"):
        loaded = store.load_latest()
    assert loaded is not None and loaded.learner.labels_learned == 1
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(latest.name in message and "truncated" in message for message in refusals)


@pytest.mark.parametrize(
    ("position", "reason"),
    [
        (0, "bad magic"),
        (9, "checksum mismatch"),  # format version: covered by the digest
        (19, "truncated"),  # payload length
        (40, "checksum mismatch"),  # digest itself
        (HEADER_SIZE + 5, "checksum mismatch"),  # payload
        (-1, "checksum mismatch"),  # last payload byte
    ],
)
def test_bit_flipped_latest_falls_back_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, position: int, reason: str
) -> None:
    store, latest = _two_checkpoints(tmp_path)
    flip_bit(latest, position)
    with caplog.at_level(logging.WARNING, logger="stream_al.durability"):
        loaded = store.load_latest()
    assert loaded is not None and loaded.learner.labels_learned == 1
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(latest.name in message and reason in message for message in refusals)


def test_unreadable_latest_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store, latest = _two_checkpoints(tmp_path)
    real_read_bytes = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path == latest:
            raise OSError(5, "Input/output error")
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with caplog.at_level(logging.WARNING, logger="stream_al.durability"):
        loaded = store.load_latest()
    assert loaded is not None and loaded.learner.labels_learned == 1
    assert any(
        latest.name in r.getMessage() and "Input/output error" in r.getMessage()
        for r in caplog.records
    )


def test_all_corrupted_raises_listing_every_file(tmp_path: Path) -> None:
    store, latest = _two_checkpoints(tmp_path)
    first = store.paths()[0]
    flip_bit(first, HEADER_SIZE + 1)
    latest.write_bytes(latest.read_bytes()[:10])
    with pytest.raises(NoValidCheckpoint) as excinfo:
        store.load_latest()
    assert [source for source, _reason in excinfo.value.failures] == [str(latest), str(first)]
    assert "checkpoint.hmac_key" in str(excinfo.value)


def test_signed_round_trip(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path, keep=2, hmac_key=KEY)
    store.save(make_checkpoint(4))
    loaded = store.load_latest()
    assert loaded is not None and loaded.learner.labels_learned == 4


def test_tampered_signed_payload_is_refused(tmp_path: Path) -> None:
    store, latest = _two_checkpoints(tmp_path, key=KEY)
    flip_bit(latest, HEADER_SIZE + 3)
    with pytest.raises(CheckpointUntrusted, match="HMAC-SHA256 mismatch"):
        read_checkpoint(latest, KEY)
    loaded = store.load_latest()
    assert loaded is not None and loaded.learner.labels_learned == 1


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    _store, latest = _two_checkpoints(tmp_path, key=KEY)
    with pytest.raises(CheckpointUntrusted, match="signed with another key"):
        read_checkpoint(latest, OTHER_KEY)
    with pytest.raises(NoValidCheckpoint, match="signed with another key"):
        LocalCheckpointStore(tmp_path, keep=3, hmac_key=OTHER_KEY).load_latest()


def test_signed_file_without_configured_key_is_refused(tmp_path: Path) -> None:
    _store, latest = _two_checkpoints(tmp_path, key=KEY)
    with pytest.raises(CheckpointUntrusted, match=r"no checkpoint\.hmac_key"):
        read_checkpoint(latest, None)


def test_unsigned_file_is_refused_when_a_key_is_configured_and_never_unpickled(
    tmp_path: Path,
) -> None:
    # Anyone able to write the directory can compute a SHA-256 checksum, not an HMAC.
    forged = tmp_path / "checkpoint-000000009.ckpt"
    forged.write_bytes(build_envelope(pickle.dumps(_Exploit())))
    EXECUTED.clear()
    with pytest.raises(NoValidCheckpoint, match="not signed"):
        LocalCheckpointStore(tmp_path, keep=3, hmac_key=KEY).load_latest()
    assert EXECUTED == []
    with pytest.raises(CheckpointCorrupt, match="not a Checkpoint"):
        read_checkpoint(forged, None)  # unsigned store: checksum trusted, so it did unpickle
    assert EXECUTED == ["unpickled"]


def test_kafka_reader_refuses_unsigned_and_foreign_context() -> None:
    checkpoint = make_checkpoint(5)
    with pytest.raises(CheckpointUntrusted, match="not signed"):
        open_envelope(seal(checkpoint, None), None, require_signature=True)
    signed = seal(checkpoint, KEY, context=b"replica-a")
    assert open_envelope(signed, KEY, b"replica-a", require_signature=True).learner.weights == {
        "x": 2.5
    }
    with pytest.raises(CheckpointUntrusted, match="HMAC-SHA256 mismatch"):
        open_envelope(signed, KEY, b"replica-b", require_signature=True)


def test_kafka_store_refuses_to_start_without_key() -> None:
    with pytest.raises(CheckpointConfigError, match=r"checkpoint\.hmac_key"):
        KafkaCheckpointStore("checkpoints", "group/0", {"bootstrap_servers": "x:1"}, None)


def test_kafka_store_refuses_unknown_client_settings() -> None:
    with pytest.raises(CheckpointConfigError, match="bootstrap_server"):
        KafkaCheckpointStore("checkpoints", "group/0", {"bootstrap_server": "x:1"}, KEY)


@pytest.mark.parametrize("key", [b"", b"short"])
def test_short_hmac_key_is_refused(tmp_path: Path, key: bytes) -> None:
    with pytest.raises(CheckpointConfigError, match=r"checkpoint\.hmac_key"):
        LocalCheckpointStore(tmp_path, keep=1, hmac_key=key)


def test_invalid_keep_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointConfigError, match=r"checkpoint\.keep"):
        LocalCheckpointStore(tmp_path, keep=0, hmac_key=None)


def test_fingerprint_mismatch_names_both_fingerprints_and_the_change(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path, keep=3, hmac_key=None)
    store.save(make_checkpoint(1))
    new_config = {
        "model": {"name": "hoeffding-tree", "seed": 42},
        "strategy": {"name": "adaptive", "budget": 0.1},
    }
    new_fingerprint = config_fingerprint(new_config)
    with pytest.raises(CheckpointMismatch) as excinfo:
        store.load_latest(new_fingerprint, new_config)
    message = str(excinfo.value)
    assert config_fingerprint(BASE_CONFIG) in message
    assert new_fingerprint in message
    assert "checkpoint-000000001.ckpt" in message
    assert excinfo.value.changes == [
        "model.name: 'logreg' -> 'hoeffding-tree'",
        "strategy.budget: 0.05 -> 0.1",
    ]


def test_fingerprint_mismatch_does_not_fall_back_to_an_older_match(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path, keep=3, hmac_key=None)
    store.save(make_checkpoint(1))
    other = {**BASE_CONFIG, "measure": "entropy"}
    store.save(make_checkpoint(2, config=other))
    with pytest.raises(CheckpointMismatch, match=r"measure: 'entropy' -> \(absent\)") as excinfo:
        store.load_latest(config_fingerprint(BASE_CONFIG), BASE_CONFIG)
    assert excinfo.value.found == config_fingerprint(other)


def test_unknown_format_version_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    store, latest = _two_checkpoints(tmp_path)
    latest.write_bytes(build_envelope(pickle.dumps(make_checkpoint(2)), version=99))
    with pytest.raises(UnsupportedCheckpointVersion, match="version 99"):
        store.load_latest()


def test_verified_payload_that_is_not_a_checkpoint_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint-000000001.ckpt"
    path.write_bytes(build_envelope(pickle.dumps({"learner": None}), key=KEY))
    with pytest.raises(CheckpointCorrupt, match="dict, not a Checkpoint"):
        read_checkpoint(path, KEY)


def test_inspect_describes_the_file(tmp_path: Path) -> None:
    path = LocalCheckpointStore(tmp_path, keep=1, hmac_key=KEY).save(make_checkpoint(8))
    report = inspect_checkpoint(path, KEY)
    assert json.loads(json.dumps(report)) == report
    assert report == {
        "path": str(path),
        "file_size": path.stat().st_size,
        "digest": "hmac-sha256",
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "created_at": "2024-05-01T12:08:00+00:00",
        "config_fingerprint": config_fingerprint(BASE_CONFIG),
        "labels_learned": 8,
        "samples_seen": 160,
        "strategy": {"threshold": 0.4, "spent": 8},
        "model": "LogisticRegression()",
        "config": BASE_CONFIG,
        "label_offsets": {"labels": {"0": 8, "1": 15}},
    }
    with pytest.raises(CheckpointUntrusted):
        inspect_checkpoint(path, None)


def test_checkpoint_requires_aware_time_and_normalises_to_utc() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Checkpoint(StandInLearner(1), {}, "fp", created_at=datetime(2024, 1, 1))
    plus_two = datetime(2024, 1, 1, 15, 0, tzinfo=timezone(timedelta(hours=2)))
    normalised = Checkpoint(StandInLearner(1), {}, "fp", created_at=plus_two).created_at
    assert normalised.tzinfo is UTC
    assert normalised == datetime(2024, 1, 1, 13, 0, tzinfo=UTC)


def test_config_fingerprint_ignores_key_order_but_not_values() -> None:
    reordered = {"strategy": {"budget": 0.05, "name": "adaptive"}, "model": BASE_CONFIG["model"]}
    assert config_fingerprint(reordered) == config_fingerprint(BASE_CONFIG)
    changed = {**BASE_CONFIG, "strategy": {"name": "adaptive", "budget": 0.06}}
    assert config_fingerprint(changed) != config_fingerprint(BASE_CONFIG)


def test_schedule_by_labels_and_by_time() -> None:
    schedule = CheckpointSchedule(every_labels=100, every_seconds=60.0)
    assert not schedule.due(labels_since=99, now=1000.0)
    assert schedule.due(labels_since=100, now=1000.0)
    assert not schedule.due(labels_since=0, now=1059.0)
    assert schedule.due(labels_since=0, now=1060.0)
    schedule.mark_saved(1060.0)
    assert not schedule.due(labels_since=5, now=1100.0)
    assert schedule.due(labels_since=5, now=1120.0)


def test_schedule_with_no_trigger_is_only_at_shutdown() -> None:
    schedule = CheckpointSchedule(every_labels=None, every_seconds=None)
    assert not schedule.due(labels_since=10**9, now=10.0**9)


@pytest.mark.parametrize(
    ("labels", "seconds", "setting"),
    [(0, None, "checkpoint.every_labels"), (None, 0.0, "checkpoint.every_seconds")],
)
def test_schedule_rejects_bad_settings(
    labels: int | None, seconds: float | None, setting: str
) -> None:
    with pytest.raises(CheckpointConfigError, match=re.escape(setting)):
        CheckpointSchedule(every_labels=labels, every_seconds=seconds)
