"""Checkpoint store: atomic files, pruning, fallback, signatures, key files, inspect."""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shlex
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from stream_al.cli import main
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
    default_key_file,
    inspect_checkpoint,
    read_checkpoint,
    read_key_file,
)
from stream_al.durability.envelope import HEADER_SIZE, key_id, open_envelope, seal
from stream_al.settings import load_settings
from tests.forgery import build_envelope

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


class _MarkerExploit:
    """Unpickles by running a shell command that creates ``marker``: real arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.fixture(autouse=True)
def default_key(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a store without ``hmac_key`` keeps its key: a fresh config home per test.

    Outside ``tmp_path``, which many tests use as the checkpoint directory itself.
    """
    config_home = tmp_path_factory.mktemp("config-home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.delenv("STREAM_AL_CHECKPOINT__HMAC_KEY", raising=False)
    monkeypatch.delenv("STREAM_AL_CHECKPOINT__KEY_FILE", raising=False)
    return config_home / "stream_al" / "checkpoint.key"


def make_checkpoint(labels: int, config: dict[str, Any] | None = None) -> Checkpoint:
    config = config if config is not None else BASE_CONFIG
    return Checkpoint(
        learner=StandInLearner(labels, config),
        label_offsets={"labels": {0: labels, 1: labels + 7}},
        config_fingerprint=config_fingerprint(config),
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=labels),
    )


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
    path = LocalCheckpointStore(tmp_path, keep=1, hmac_key=KEY).save(make_checkpoint(3))
    data = path.read_bytes()
    payload = data[HEADER_SIZE:]
    assert data == build_envelope(payload, key=KEY)
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
        (9, "HMAC-SHA256 mismatch"),  # format version: covered by the digest
        (10, "unknown digest kind 6"),  # digest kind
        (19, "truncated"),  # payload length
        (22, "signed with another key"),  # key id
        (40, "HMAC-SHA256 mismatch"),  # digest itself
        (HEADER_SIZE + 5, "HMAC-SHA256 mismatch"),  # payload
        (-1, "HMAC-SHA256 mismatch"),  # last payload byte
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


def test_a_key_file_store_refuses_files_signed_with_another_hmac_key(tmp_path: Path) -> None:
    _store, latest = _two_checkpoints(tmp_path, key=KEY)
    with pytest.raises(NoValidCheckpoint, match="signed with another key"):
        LocalCheckpointStore(tmp_path, keep=3).load_latest()
    with pytest.raises(CheckpointUntrusted, match="signed with another key"):
        read_checkpoint(latest)  # the default key file, as the store without hmac_key


def test_unsigned_file_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    # Anyone able to write the directory can compute a SHA-256 checksum, not an HMAC.
    forged = tmp_path / "checkpoint-000000009.ckpt"
    forged.write_bytes(build_envelope(pickle.dumps(_Exploit())))
    EXECUTED.clear()
    with pytest.raises(NoValidCheckpoint, match="not signed"):
        LocalCheckpointStore(tmp_path, keep=3, hmac_key=KEY).load_latest()
    with pytest.raises(NoValidCheckpoint, match="not signed"):
        LocalCheckpointStore(tmp_path, keep=3).load_latest()
    with pytest.raises(CheckpointUntrusted, match="not signed"):
        read_checkpoint(forged)
    assert EXECUTED == []


def test_crafted_pickle_with_a_valid_checksum_never_runs(tmp_path: Path) -> None:
    """The tester's exploit: a pickle running a command, sealed with a correct SHA-256."""
    directory, marker = tmp_path / "checkpoints", tmp_path / "marker"
    store = LocalCheckpointStore(directory, keep=3)
    store.save(make_checkpoint(1))
    forged = directory / "checkpoint-000000002.ckpt"
    forged.write_bytes(build_envelope(pickle.dumps(_MarkerExploit(marker))))
    assert forged.read_bytes()[10] == 1  # digest kind: SHA-256, and a correct one

    restored = LocalCheckpointStore(directory, keep=3).load_latest()
    assert restored is not None and restored.learner.labels_learned == 1  # fell back
    forged.rename(directory / "checkpoint-000000003.ckpt")
    (directory / "checkpoint-000000001.ckpt").unlink()
    with pytest.raises(NoValidCheckpoint, match="not signed"):
        LocalCheckpointStore(directory, keep=3).load_latest()
    assert not marker.exists()


def test_kafka_reader_refuses_unsigned_and_foreign_context() -> None:
    checkpoint = make_checkpoint(5)
    with pytest.raises(CheckpointUntrusted, match="not signed"):
        open_envelope(build_envelope(pickle.dumps(checkpoint)), KEY)
    signed = seal(checkpoint, KEY, context=b"replica-a")
    assert open_envelope(signed, KEY, b"replica-a").learner.weights == {"x": 2.5}
    with pytest.raises(CheckpointUntrusted, match="HMAC-SHA256 mismatch"):
        open_envelope(signed, KEY, b"replica-b")


def test_kafka_store_refuses_to_start_without_key(default_key: Path) -> None:
    # Not even a key file in the default place: replicas must share an explicit key.
    default_key.parent.mkdir(parents=True)
    default_key.write_text("k" * 64)
    default_key.chmod(0o600)
    with pytest.raises(
        CheckpointConfigError, match=r"checkpoint\.hmac_key or checkpoint\.key_file"
    ):
        KafkaCheckpointStore("checkpoints", "group/0", {"bootstrap_servers": "x:1"}, None)


def test_kafka_store_never_generates_a_key_file(tmp_path: Path) -> None:
    missing = tmp_path / "shared.key"
    with pytest.raises(CheckpointConfigError, match="does not exist"):
        KafkaCheckpointStore(
            "checkpoints", "group/0", {"bootstrap_servers": "x:1"}, None, key_file=missing
        )
    assert not missing.exists()


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
    store, latest = _two_checkpoints(tmp_path, key=KEY)
    latest.write_bytes(build_envelope(pickle.dumps(make_checkpoint(2)), version=99, key=KEY))
    with pytest.raises(UnsupportedCheckpointVersion, match="version 99"):
        store.load_latest()


def test_verified_payload_that_is_not_a_checkpoint_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint-000000001.ckpt"
    path.write_bytes(build_envelope(pickle.dumps({"learner": None}), key=KEY))
    with pytest.raises(CheckpointCorrupt, match="dict, not a Checkpoint"):
        read_checkpoint(path, KEY)


def _envelope_report(path: Path, digest: str, key: bytes | None, signature: str) -> dict[str, Any]:
    status = path.stat()
    return {
        "path": str(path),
        "file_size": status.st_size,
        "file_modified": datetime.fromtimestamp(status.st_mtime, UTC).isoformat(),
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "digest": digest,
        "key_id": key_id(key).hex() if key is not None else None,
        "payload_length": status.st_size - HEADER_SIZE,
        "signature": signature,
    }


def test_inspect_describes_the_file(tmp_path: Path) -> None:
    path = LocalCheckpointStore(tmp_path, keep=1, hmac_key=KEY).save(make_checkpoint(8))
    report = inspect_checkpoint(path, KEY)
    assert json.loads(json.dumps(report)) == report
    assert report == {
        **_envelope_report(path, "hmac-sha256", KEY, "verified"),
        "created_at": "2024-05-01T12:08:00+00:00",
        "config_fingerprint": config_fingerprint(BASE_CONFIG),
        "labels_learned": 8,
        "samples_seen": 160,
        "strategy": {"threshold": 0.4, "spent": 8},
        "model": "LogisticRegression()",
        "config": BASE_CONFIG,
        "label_offsets": {"labels": {"0": 8, "1": 15}},
    }
    # Without a key: the envelope only, nothing unpickled.
    assert inspect_checkpoint(path, None) == _envelope_report(
        path, "hmac-sha256", KEY, "not verified"
    )
    with pytest.raises(CheckpointUntrusted, match="another key"):
        inspect_checkpoint(path, OTHER_KEY)


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


# -- key files ------------------------------------------------------------------------------


def test_key_file_is_generated_private_outside_the_directory_and_reused(
    tmp_path: Path, default_key: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "checkpoints"
    with caplog.at_level(logging.INFO, logger="stream_al.durability"):
        LocalCheckpointStore(directory, keep=2).save(make_checkpoint(6))
    assert stat.S_IMODE(default_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(default_key.parent.stat().st_mode) == 0o700
    assert re.fullmatch(r"[0-9a-f]{64}\n", default_key.read_text())
    assert not default_key.resolve().is_relative_to(directory.resolve())
    assert [entry.name for entry in directory.iterdir()] == ["checkpoint-000000001.ckpt"]
    assert any(
        "generated a new checkpoint signing key" in r.getMessage()
        and str(default_key) in r.getMessage()
        for r in caplog.records
    )
    key = default_key.read_bytes()

    # A restart: a new store object finds the same key and restores the checkpoint.
    restored = LocalCheckpointStore(directory, keep=2).load_latest()
    assert restored is not None and restored.learner.labels_learned == 6
    assert default_key.read_bytes() == key
    assert read_checkpoint(directory / "checkpoint-000000001.ckpt", key.strip()).label_offsets


def test_without_xdg_config_home_the_key_goes_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME")
    expected = tmp_path / "home" / ".config" / "stream_al" / "checkpoint.key"
    assert default_key_file() == expected
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/config")  # invalid per the XDG spec
    assert default_key_file() == expected
    LocalCheckpointStore(tmp_path / "checkpoints").save(make_checkpoint(1))
    assert stat.S_IMODE(expected.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660])
def test_a_key_file_open_to_group_or_others_is_refused(
    tmp_path: Path, default_key: Path, mode: int
) -> None:
    LocalCheckpointStore(tmp_path / "checkpoints").save(make_checkpoint(1))
    default_key.chmod(mode)
    with pytest.raises(
        CheckpointConfigError, match=rf"group or others \(mode 0{mode:o}\).*chmod 600"
    ):
        LocalCheckpointStore(tmp_path / "checkpoints")
    with pytest.raises(CheckpointConfigError, match="group or others"):
        read_key_file(default_key)


def test_a_key_file_inside_the_checkpoint_directory_is_refused(tmp_path: Path) -> None:
    inside = tmp_path / "checkpoints" / "keys" / "checkpoint.key"
    with pytest.raises(CheckpointConfigError, match="inside the checkpoint directory"):
        LocalCheckpointStore(tmp_path / "checkpoints", key_file=inside)
    assert not inside.exists()


def test_a_configured_key_file_is_used_and_hmac_key_wins_over_it(
    tmp_path: Path, default_key: Path
) -> None:
    key_file = tmp_path / "secret" / "stream.key"
    directory = tmp_path / "checkpoints"
    LocalCheckpointStore(directory, key_file=key_file).save(make_checkpoint(1))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and not default_key.exists()
    path = LocalCheckpointStore(directory, key_file=key_file).paths()[-1]
    assert read_checkpoint(path, key_file=key_file).learner.labels_learned == 1
    # The file's text is the key, exactly as hmac_key would give it.
    assert read_checkpoint(path, key_file.read_bytes().strip()).learner.labels_learned == 1

    LocalCheckpointStore(directory, hmac_key=KEY, key_file=key_file).save(make_checkpoint(2))
    assert read_checkpoint(LocalCheckpointStore(directory, hmac_key=KEY).paths()[-1], KEY)


def test_a_short_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "short.key"
    key_file.write_text("abc\n")
    key_file.chmod(0o600)
    with pytest.raises(CheckpointConfigError, match="holds 3 bytes"):
        LocalCheckpointStore(tmp_path / "checkpoints", key_file=key_file)


def test_key_file_setting_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_AL_CHECKPOINT__KEY_FILE", str(tmp_path / "shared.key"))
    monkeypatch.setenv("STREAM_AL_CHECKPOINT__TOPIC", "checkpoints")
    settings = load_settings()  # a topic with a key file and no hmac_key is fine
    assert settings.checkpoint.key_file == tmp_path / "shared.key"
    assert settings.checkpoint.hmac_key is None


# -- stream-al checkpoint inspect --------------------------------------------------------------


def _inspect(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = main(["checkpoint", "inspect", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else None, err


def test_inspect_never_runs_a_crafted_pickle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker"
    forged = tmp_path / "checkpoint-000000001.ckpt"
    forged.write_bytes(build_envelope(pickle.dumps(_MarkerExploit(marker))))

    code, report, _err = _inspect(capsys, str(forged))  # no key anywhere
    assert code == 0
    assert report["signature"] == "not verified"
    assert report["digest"] == "sha256" and report["key_id"] is None
    assert "labels_learned" not in report
    assert not marker.exists()

    key_file = tmp_path / "inspect.key"
    key_file.write_text("k" * 32)
    key_file.chmod(0o600)
    code, _report, err = _inspect(capsys, str(forged), "--key-file", str(key_file))
    assert code == 2 and err.startswith("stream-al: ") and "not signed" in err
    monkeypatch.setenv("STREAM_AL_CHECKPOINT__HMAC_KEY", KEY.decode())
    code, _report, err = _inspect(capsys, str(forged))
    assert code == 2 and "not signed" in err
    assert not marker.exists()


def test_inspect_verifies_with_a_key_and_shows_the_envelope_without(
    tmp_path: Path,
    default_key: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_file = tmp_path / "elsewhere.key"
    path = LocalCheckpointStore(tmp_path / "c", key_file=key_file).save(make_checkpoint(4))
    key = key_file.read_bytes().strip()

    code, report, _err = _inspect(capsys, str(path))  # the default key file does not exist
    assert code == 0 and report == _envelope_report(path, "hmac-sha256", key, "not verified")

    code, report, _err = _inspect(capsys, str(path), "--key-file", str(key_file))
    assert code == 0 and report["signature"] == "verified" and report["labels_learned"] == 4

    monkeypatch.setenv("STREAM_AL_CHECKPOINT__KEY_FILE", str(key_file))
    code, report, _err = _inspect(capsys, str(path))
    assert code == 0 and report["labels_learned"] == 4

    monkeypatch.setenv("STREAM_AL_CHECKPOINT__HMAC_KEY", OTHER_KEY.decode())  # wins over the file
    code, _report, err = _inspect(capsys, str(path))
    assert code == 2 and err.startswith(
        f"stream-al: checkpoint {path} refused: signed with another"
    )

    monkeypatch.delenv("STREAM_AL_CHECKPOINT__HMAC_KEY")
    monkeypatch.delenv("STREAM_AL_CHECKPOINT__KEY_FILE")
    default_key.parent.mkdir(parents=True)
    key_file.rename(default_key)  # found where the service keeps it by default
    code, report, _err = _inspect(capsys, str(path))
    assert code == 0 and report["labels_learned"] == 4

    flip_bit(path, HEADER_SIZE + 2)
    code, _report, err = _inspect(capsys, str(path))
    assert code == 2 and "HMAC-SHA256 mismatch" in err


def test_inspect_with_a_missing_or_open_key_file_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = LocalCheckpointStore(tmp_path / "c", hmac_key=KEY).save(make_checkpoint(1))
    code, _report, err = _inspect(capsys, str(path), "--key-file", str(tmp_path / "none.key"))
    assert code == 2 and "does not exist" in err
    open_key = tmp_path / "open.key"
    open_key.write_bytes(KEY)
    open_key.chmod(0o644)
    code, _report, err = _inspect(capsys, str(path), "--key-file", str(open_key))
    assert code == 2 and "chmod 600" in err
