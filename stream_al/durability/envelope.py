"""The byte envelope around a pickled checkpoint: header, then payload.

A checkpoint payload is a pickle, and unpickling runs code chosen by whoever wrote
the bytes. So nothing is unpickled before the header has been checked: magic bytes,
declared length against actual length, then a SHA-256 checksum (catches corruption)
or an HMAC-SHA256 signature (catches corruption *and* forgery by anyone without the
key), compared with :func:`hmac.compare_digest`.

Header layout (big-endian, 60 bytes, the same for every format version so that any
release can at least verify and report a checkpoint it cannot read)::

    offset size field
         0    8 magic          b"\\x89SALCKP\\n" (high bit and newline catch text-mode copies)
         8    2 format version uint16, CHECKPOINT_FORMAT_VERSION of the writer
        10    1 digest kind    1 = SHA-256, 2 = HMAC-SHA256
        11    1 reserved       0
        12    8 payload length uint64, bytes of pickle that follow the header
        20    8 key id         HMAC only: first 8 bytes of SHA-256(label + key), else zeros
        28   32 digest         over header[0:28] + len(context) + context + payload
        60    n payload        pickle (protocol 5) of a Checkpoint

The digest covers the header fields too, so a flipped version or kind byte is
detected like any other corruption. ``context`` is not stored: the reader supplies
it. Local files use an empty context; the Kafka store binds the record key and
sequence number, so a signed value cannot be replayed under another key. The key id
only lets an error say "signed with another key" rather than "tampered"; it reveals
nothing a signature does not (both allow an offline guess at a weak key, hence the
minimum key length).
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
from dataclasses import dataclass

from stream_al.durability.checkpoint import CHECKPOINT_FORMAT_VERSION, Checkpoint
from stream_al.durability.errors import (
    CheckpointConfigError,
    CheckpointCorrupt,
    CheckpointUntrusted,
    UnsupportedCheckpointVersion,
)

MAGIC = b"\x89SALCKP\n"
DIGEST_SHA256 = 1
DIGEST_HMAC_SHA256 = 2
MIN_HMAC_KEY_BYTES = 16

_HEADER = struct.Struct(">8sHBBQ8s32s")
HEADER_SIZE = _HEADER.size
_SIGNED_PREFIX = 28  # header bytes covered by the digest: everything before it
_NO_KEY_ID = bytes(8)
_KEY_ID_LABEL = b"stream-al checkpoint key id\x00"
_DIGEST_NAMES = {DIGEST_SHA256: "sha256", DIGEST_HMAC_SHA256: "hmac-sha256"}


def validate_hmac_key(key: bytes | None) -> None:
    """Fail fast on a key too short to resist guessing (``checkpoint.hmac_key``)."""
    if key is not None and len(key) < MIN_HMAC_KEY_BYTES:
        raise CheckpointConfigError(
            f"checkpoint.hmac_key must be at least {MIN_HMAC_KEY_BYTES} bytes long "
            f"(got {len(key)}); use a random secret, e.g. 32 bytes"
        )


def key_id(key: bytes) -> bytes:
    """The 8-byte identifier of an HMAC key stored in the header."""
    return hashlib.sha256(_KEY_ID_LABEL + key).digest()[:8]


@dataclass(frozen=True)
class EnvelopeInfo:
    """What the header says, once it has been verified."""

    format_version: int
    digest: str
    payload_length: int


def seal(checkpoint: Checkpoint, hmac_key: bytes | None, context: bytes = b"") -> bytes:
    """Pickle ``checkpoint`` and wrap it; signed with HMAC-SHA256 when a key is given."""
    validate_hmac_key(hmac_key)
    payload = pickle.dumps(checkpoint, protocol=5)
    kind = DIGEST_SHA256 if hmac_key is None else DIGEST_HMAC_SHA256
    kid = _NO_KEY_ID if hmac_key is None else key_id(hmac_key)
    prefix = _HEADER.pack(MAGIC, CHECKPOINT_FORMAT_VERSION, kind, 0, len(payload), kid, bytes(32))
    prefix = prefix[:_SIGNED_PREFIX]
    digest = _digest(kind, hmac_key, prefix, context, payload)
    return prefix + digest + payload


def verify(
    data: bytes, hmac_key: bytes | None, context: bytes = b"", require_signature: bool = False
) -> tuple[EnvelopeInfo, bytes]:
    """Check the envelope and return its header info and the (still pickled) payload.

    Rules: with a key, only a matching HMAC-SHA256 is accepted. Without a key, only a
    SHA-256 checksum is accepted, unless ``require_signature`` (the Kafka store), in
    which case nothing is, since nothing could be verified.

    Raises:
        CheckpointCorrupt: too short, bad magic, wrong length, checksum mismatch.
        CheckpointUntrusted: unsigned where a signature is required, signed with another
            key, HMAC mismatch, or signed while no key is configured.
        UnsupportedCheckpointVersion: intact, but from an unknown format version.
    """
    if len(data) < HEADER_SIZE:
        raise CheckpointCorrupt(
            f"truncated: {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header"
        )
    magic, version, kind, _reserved, length, kid, digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointCorrupt(f"bad magic bytes {magic!r}: not a stream_al checkpoint")
    actual = len(data) - HEADER_SIZE
    if actual != length:
        state = "truncated" if actual < length else "trailing bytes"
        raise CheckpointCorrupt(f"{state}: header announces {length} payload bytes, found {actual}")
    payload = data[HEADER_SIZE:]
    prefix = data[:_SIGNED_PREFIX]
    if kind == DIGEST_SHA256:
        if hmac_key is not None or require_signature:
            raise CheckpointUntrusted(
                "not signed (SHA-256 checksum only), but an HMAC-SHA256 signature made with "
                "checkpoint.hmac_key is required"
            )
        if not hmac.compare_digest(digest, _digest(kind, None, prefix, context, payload)):
            raise CheckpointCorrupt("SHA-256 checksum mismatch: the file is corrupted")
    elif kind == DIGEST_HMAC_SHA256:
        if hmac_key is None:
            raise CheckpointUntrusted(
                "signed with HMAC-SHA256 but no checkpoint.hmac_key is configured to verify it"
            )
        if not hmac.compare_digest(digest, _digest(kind, hmac_key, prefix, context, payload)):
            if not hmac.compare_digest(kid, key_id(hmac_key)):
                raise CheckpointUntrusted(
                    f"signed with another key (key id {kid.hex()}, configured key "
                    f"{key_id(hmac_key).hex()})"
                )
            raise CheckpointUntrusted("HMAC-SHA256 mismatch: tampered with or corrupted")
    else:
        raise CheckpointCorrupt(f"unknown digest kind {kind}")
    # Only now is the version field known to be what the writer wrote.
    if version != CHECKPOINT_FORMAT_VERSION:
        raise UnsupportedCheckpointVersion(
            f"checkpoint format version {version}; this release reads version "
            f"{CHECKPOINT_FORMAT_VERSION}"
        )
    return EnvelopeInfo(version, _DIGEST_NAMES[kind], length), payload


def open_envelope(
    data: bytes, hmac_key: bytes | None, context: bytes = b"", require_signature: bool = False
) -> Checkpoint:
    """:func:`verify`, then unpickle; the payload must be a :class:`Checkpoint`."""
    _info, payload = verify(data, hmac_key, context, require_signature)
    return unpickle(payload)


def unpickle(payload: bytes) -> Checkpoint:
    """Unpickle a *verified* payload; only call after :func:`verify` succeeded."""
    try:
        checkpoint = pickle.loads(payload)
    except Exception as exc:
        # A valid digest over an unloadable pickle means the writer's classes are gone
        # (renamed module, missing dependency): report it like corruption, with why.
        raise CheckpointCorrupt(f"payload does not unpickle: {type(exc).__name__}: {exc}") from exc
    if not isinstance(checkpoint, Checkpoint):
        raise CheckpointCorrupt(f"payload is a {type(checkpoint).__name__}, not a Checkpoint")
    return checkpoint


def _digest(kind: int, key: bytes | None, prefix: bytes, context: bytes, payload: bytes) -> bytes:
    framed_context = struct.pack(">I", len(context)) + context
    if kind == DIGEST_HMAC_SHA256:
        assert key is not None
        mac = hmac.new(key, prefix, hashlib.sha256)
        mac.update(framed_context)
        mac.update(payload)
        return mac.digest()
    sha = hashlib.sha256(prefix)
    sha.update(framed_context)
    sha.update(payload)
    return sha.digest()
