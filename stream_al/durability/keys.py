"""Where the checkpoint signing key comes from: ``checkpoint.hmac_key`` or a key file.

Every checkpoint is signed, because an unsigned pickle is code anyone able to write the
store could have planted. ``checkpoint.hmac_key`` wins when it is set. Otherwise the
key is the content of ``checkpoint.key_file`` (trailing whitespace stripped, at least
16 bytes), so a key file and an ``hmac_key`` holding the same text are the same key.

A key file is trusted only if nobody but its owner could have read or replaced it, as
ssh does for private keys: a regular file, mode 0600 or stricter, owned by the user
running the service (or root). A local-directory store generates one at
:func:`default_key_file` when none is configured and none exists yet, and refuses one
inside its checkpoint directory: whoever can copy or write the checkpoints must not
get the key with them. The Kafka store never generates one: replicas on several
machines must share their key, so it has to be configured explicitly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from stream_al.durability.envelope import MIN_HMAC_KEY_BYTES, validate_hmac_key
from stream_al.durability.errors import CheckpointConfigError

log = logging.getLogger(__name__)

HMAC_KEY_ENV = "STREAM_AL_CHECKPOINT__HMAC_KEY"
KEY_FILE_ENV = "STREAM_AL_CHECKPOINT__KEY_FILE"
_GENERATED_KEY_BYTES = 32


def default_key_file() -> Path:
    """``$XDG_CONFIG_HOME/stream_al/checkpoint.key``, else ``~/.config/stream_al/checkpoint.key``.

    A relative ``XDG_CONFIG_HOME`` is ignored, as the XDG base directory spec says.
    """
    config_home = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config_home) if os.path.isabs(config_home) else Path.home() / ".config"
    return base / "stream_al" / "checkpoint.key"


def read_key_file(path: Path) -> bytes:
    """The key held in ``path``, once the file is known to be private to its owner.

    Raises:
        CheckpointConfigError: missing, unreadable, not a regular file, readable or
            writable by group or others, owned by another user, or too short.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise CheckpointConfigError(f"checkpoint key file {path} does not exist") from None
    except OSError as exc:
        raise CheckpointConfigError(f"checkpoint key file {path} cannot be read: {exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        # fstat of the open file, not stat of the name: what is checked is what is read.
        _check_private(path, os.fstat(handle.fileno()))
        key = handle.read().strip()
    if len(key) < MIN_HMAC_KEY_BYTES:
        raise CheckpointConfigError(
            f"checkpoint key file {path} holds {len(key)} bytes; a key needs at least "
            f"{MIN_HMAC_KEY_BYTES}: remove it to have a new one generated, or write a random "
            "secret into it"
        )
    return key


def local_store_key(hmac_key: bytes | None, key_file: Path | None, directory: Path) -> bytes:
    """The signing key of a checkpoint directory; generates the key file if missing.

    ``hmac_key`` wins; else ``key_file``, else :func:`default_key_file`.

    Raises:
        CheckpointConfigError: the key file is inside ``directory`` or is refused by
            :func:`read_key_file`; ``hmac_key`` is too short.
    """
    if hmac_key is not None:
        return _configured_key(hmac_key, key_file)
    path = key_file if key_file is not None else default_key_file()
    if _is_within(path, directory):
        raise CheckpointConfigError(
            f"checkpoint key file {path} is inside the checkpoint directory {directory}: "
            "whoever can copy or write the checkpoints would have the key too; set "
            f"checkpoint.key_file ({KEY_FILE_ENV}) to a path outside it"
        )
    if not path.exists():
        _create_key_file(path)
    key = read_key_file(path)
    log.info("checkpoints in %s are signed with the key in %s", directory, path)
    return key


def shared_store_key(hmac_key: bytes | None, key_file: Path | None) -> bytes:
    """The signing key of a store shared by replicas: configured explicitly, never generated.

    Raises:
        CheckpointConfigError: neither is set, or the key is refused.
    """
    if hmac_key is not None:
        return _configured_key(hmac_key, key_file)
    if key_file is None:
        raise CheckpointConfigError(
            "the Kafka checkpoint store requires checkpoint.hmac_key or checkpoint.key_file: "
            "checkpoints are pickles, anything read back from Kafka must be signed, and "
            "every replica must sign with the same key"
        )
    return read_key_file(key_file)


def _configured_key(hmac_key: bytes, key_file: Path | None) -> bytes:
    validate_hmac_key(hmac_key)
    if key_file is not None:
        log.info("checkpoint.hmac_key is set: checkpoint.key_file %s is not used", key_file)
    return hmac_key


def _check_private(path: Path, status: os.stat_result) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise CheckpointConfigError(f"checkpoint key file {path} is not a regular file")
    if status.st_mode & 0o077:
        raise CheckpointConfigError(
            f"checkpoint key file {path} is accessible by group or others (mode "
            f"{stat.S_IMODE(status.st_mode):04o}); it must be private to its owner: "
            f"chmod 600 {path}"
        )
    if status.st_uid not in (os.geteuid(), 0):
        raise CheckpointConfigError(
            f"checkpoint key file {path} is owned by uid {status.st_uid}, not by the user "
            f"running the service (uid {os.geteuid()}) or root"
        )


def _create_key_file(path: Path) -> None:
    """Write a new random key to ``path``: complete and 0600 from the first moment.

    The key goes to a private temporary file that is then hard-linked to its name:
    the name never shows a partial key, and ``link`` fails rather than replacing a key
    another process created meanwhile (then that one is used).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".checkpoint-key-", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(_GENERATED_KEY_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    fsync_directory(path.parent)
    log.warning(
        "generated a new checkpoint signing key in %s: back it up (apart from the "
        "checkpoints), they cannot be restored without it",
        path,
    )


def _is_within(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def fsync_directory(directory: Path) -> None:
    """Make a rename or link in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
