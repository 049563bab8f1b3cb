"""Checkpoints as files in a local directory, written atomically, the last K kept."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from stream_al.durability.checkpoint import Checkpoint
from stream_al.durability.envelope import (
    open_envelope,
    read_header,
    seal,
    unpickle,
    validate_hmac_key,
    verify,
)
from stream_al.durability.errors import CheckpointConfigError, CheckpointCorrupt
from stream_al.durability.keys import (
    default_key_file,
    fsync_directory,
    local_store_key,
    read_key_file,
)
from stream_al.durability.store import Candidate, restore_latest

log = logging.getLogger(__name__)

_NAME = re.compile(r"checkpoint-(\d{9,})\.ckpt")
_TEMP_PREFIX = ".checkpoint-"
_TEMP_SUFFIX = ".tmp"


def checkpoint_name(sequence: int) -> str:
    """File name of checkpoint ``sequence``; zero-padded so names sort like numbers."""
    return f"checkpoint-{sequence:09d}.ckpt"


class LocalCheckpointStore:
    """A directory of checkpoint files ``checkpoint-000000123.ckpt``, newest = highest.

    A save never leaves a partial checkpoint under a final name: it writes a
    temporary file in the same directory, flushes and fsyncs it, renames it over its
    final name (atomic on POSIX), then fsyncs the directory so the rename itself
    survives a power cut. Only then are checkpoints beyond the newest ``keep`` removed.

    Files are signed with HMAC-SHA256 and only signed ones are read: anyone able to
    write the directory could otherwise plant a pickle, which runs code when loaded.
    The key is ``hmac_key`` if given, else the content of a key file outside the
    directory (see :mod:`stream_al.durability.keys`), generated on first use. One
    writer per directory: two services sharing a directory would race for sequence
    numbers.

    Args:
        directory: where the files live; created if missing.
        keep: how many checkpoints to keep (``checkpoint.keep``), at least 1.
        hmac_key: signing key (``checkpoint.hmac_key``), at least 16 bytes; wins over
            ``key_file``.
        key_file: file holding the key (``checkpoint.key_file``); by default
            :func:`~stream_al.durability.keys.default_key_file`. Created 0600 if missing.
    """

    def __init__(
        self,
        directory: Path,
        keep: int = 3,
        hmac_key: bytes | None = None,
        key_file: Path | None = None,
    ) -> None:
        if keep < 1:
            raise CheckpointConfigError(f"checkpoint.keep must be at least 1 (got {keep})")
        validate_hmac_key(hmac_key)
        self.directory = Path(directory)
        self.keep = keep
        self.directory.mkdir(parents=True, exist_ok=True)
        self._hmac_key = local_store_key(hmac_key, key_file, self.directory)
        self._remove_stale_temporaries()

    def __repr__(self) -> str:
        return f"LocalCheckpointStore({str(self.directory)!r}, keep={self.keep})"

    def paths(self) -> list[Path]:
        """Checkpoint files, oldest first (by sequence number, not by name)."""
        return [path for _seq, path in self._numbered()]

    def save(self, checkpoint: Checkpoint) -> Path:
        """Write ``checkpoint`` as the next file, durably; prune; return its path."""
        data = seal(checkpoint, self._hmac_key)
        numbered = self._numbered()
        sequence = numbered[-1][0] + 1 if numbered else 1
        final = self.directory / checkpoint_name(sequence)
        # mkstemp creates the file 0600: a checkpoint is code-executing data.
        fd, temporary = tempfile.mkstemp(
            prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self.directory
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        fsync_directory(self.directory)
        log.info("checkpoint saved to %s (%d bytes)", final, len(data))
        self._prune()
        return final

    def load_latest(
        self,
        expected_fingerprint: str | None = None,
        expected_config: Mapping[str, Any] | None = None,
    ) -> Checkpoint | None:
        """The newest checkpoint that verifies; see :func:`restore_latest` for the rules.

        ``None`` only when the directory holds no checkpoint at all; if some exist but
        all are invalid, :class:`NoValidCheckpoint` is raised.
        """
        return restore_latest(self._candidates(), expected_fingerprint, expected_config)

    def close(self) -> None:
        """Nothing to release: every save opens and closes its own file."""

    def _candidates(self) -> Iterator[Candidate]:
        for path in reversed(self.paths()):
            yield str(path), partial(_read_stored, path, self._hmac_key)

    def _numbered(self) -> list[tuple[int, Path]]:
        numbered = []
        for entry in self.directory.iterdir():
            match = _NAME.fullmatch(entry.name)
            if match and entry.is_file():
                numbered.append((int(match.group(1)), entry))
        return sorted(numbered)

    def _prune(self) -> None:
        for _seq, path in self._numbered()[: -self.keep]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                log.debug("pruned old checkpoint %s", path)

    def _remove_stale_temporaries(self) -> None:
        # Left behind only by a crash mid-save; never a complete checkpoint.
        for entry in self.directory.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                log.info("removed temporary file %s left by an interrupted save", entry)


def read_checkpoint(
    path: Path, hmac_key: bytes | None = None, key_file: Path | None = None
) -> Checkpoint:
    """Read, verify, then unpickle one checkpoint file.

    The key is found as a :class:`LocalCheckpointStore` finds it (``hmac_key``, else
    ``key_file``, else the default key file), except that a missing key file is an
    error here: a new key could not verify anything.

    Raises:
        CheckpointCorrupt, CheckpointUntrusted: see :func:`~.envelope.verify`.
        UnsupportedCheckpointVersion: intact file in an unknown format version.
        CheckpointConfigError: no usable key.
        OSError: the file cannot be read at all.
    """
    validate_hmac_key(hmac_key)
    if hmac_key is None:
        hmac_key = read_key_file(key_file if key_file is not None else default_key_file())
    return open_envelope(Path(path).read_bytes(), hmac_key)


def _read_stored(path: Path, hmac_key: bytes) -> Checkpoint:
    # An unreadable file (I/O error, removed by hand meanwhile) is as unusable as a
    # corrupt one: let the store fall back to the previous checkpoint.
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointCorrupt(f"unreadable: {exc}") from exc
    return open_envelope(data, hmac_key)


def inspect_checkpoint(path: Path, hmac_key: bytes | None = None) -> dict[str, Any]:
    """A JSON-able description of one checkpoint file, for ``stream-al checkpoint inspect``.

    Describing the content means unpickling it, so that is done only once the
    signature verified with ``hmac_key``, exactly as for a restore. Without a key only
    the envelope is described, and ``signature`` says ``"not verified"``.

    Envelope keys: ``path``, ``file_size``, ``file_modified`` (the file's mtime, ISO
    8601, UTC: the header holds no creation time), ``format_version``, ``digest``
    (``hmac-sha256``, or ``sha256`` for an unsigned file), ``key_id`` (hex, ``None``
    if unsigned), ``payload_length``, ``signature`` (``"verified"`` or ``"not
    verified"``). Once verified, also: ``created_at`` (ISO 8601, UTC),
    ``config_fingerprint``, ``labels_learned``, ``samples_seen``, ``strategy``,
    ``model``, ``config``, ``label_offsets`` (topic -> partition as str -> offset).

    Raises:
        CheckpointCorrupt: the envelope is malformed (with or without a key).
        CheckpointUntrusted: with a key, the signature does not verify.
    """
    path = Path(path)
    validate_hmac_key(hmac_key)
    data = path.read_bytes()
    header = read_header(data)
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    envelope = {
        "path": str(path),
        "file_size": len(data),
        "file_modified": modified.isoformat(),
        "format_version": header.format_version,
        "digest": header.digest,
        "key_id": header.key_id,
        "payload_length": header.payload_length,
    }
    if hmac_key is None:
        return {**envelope, "signature": "not verified"}
    _header, payload = verify(data, hmac_key)
    return {**envelope, "signature": "verified", **unpickle(payload).describe()}
