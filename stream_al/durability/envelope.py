"""The byte envelope around a pickled checkpoint: header, then payload.

A checkpoint payload is a pickle, and unpickling runs code chosen by whoever wrote
the bytes. So nothing is unpickled before the header has been checked: magic bytes,
declared length against actual length, then an HMAC-SHA256 signature (catches
corruption *and* forgery by anyone without the key), compared with
:func:`hmac.compare_digest`.

Header layout (big-endian, 60 bytes, the same for every format version so that any
release can at least verify and report a checkpoint it cannot read)::

    offset size field
         0    8 magic          b"\\x89SALCKP\\n" (high bit and newline catch text-mode copies)
         8    2 format version uint16, CHECKPOINT_FORMAT_VERSION of the writer
        10    1 digest kind    2 = HMAC-SHA256 (1 = SHA-256: unsigned, refused)
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

Only an HMAC-SHA256 signature is trusted. A SHA-256 checksum (digest kind 1, which
local directories held before signing was required) proves nothing: whoever can
write the store can compute one over a pickle of their own. Such envelopes are still
parsed (:func:`read_header`), so that ``stream-al checkpoint inspect`` can describe
them and errors can say what they are, but :func:`verify` refuses them.
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
_KEY_ID_LABEL = b"stream-al checkpoint key id\x00"
_DIGEST_NAMES = {DIGEST_SHA256: "sha256", DIGEST_HMAC_SHA256: "hmac-sha256"}


def validate_hmac_key(key: bytes | None, setting: str = "checkpoint.hmac_key") -> None:
    """Fail fast on a key too short to resist guessing; ``setting`` names its source."""
    if key is not None and len(key) < MIN_HMAC_KEY_BYTES:
        raise CheckpointConfigError(
            f"{setting} must be at least {MIN_HMAC_KEY_BYTES} bytes long "
            f"(got {len(key)}); use a random secret, e.g. 32 bytes"
        )


def key_id(key: bytes) -> bytes:
    """The 8-byte identifier of an HMAC key stored in the header."""
    return hashlib.sha256(_KEY_ID_LABEL + key).digest()[:8]


@dataclass(frozen=True)
class EnvelopeHeader:
    """What a header *claims*: nothing in it is trusted before :func:`verify` passed.

    Attributes:
        format_version: the writer's :data:`CHECKPOINT_FORMAT_VERSION`.
        digest: ``"sha256"`` (unsigned, refused) or ``"hmac-sha256"``.
        key_id: hex id of the signing key, ``None`` for an unsigned envelope.
        payload_length: bytes of pickle after the header (checked against the data).
    """

    format_version: int
    digest: str
    key_id: str | None
    payload_length: int


def seal(checkpoint: Checkpoint, hmac_key: bytes, context: bytes = b"") -> bytes:
    """Pickle ``checkpoint`` and sign it with HMAC-SHA256 under ``hmac_key``."""
    validate_hmac_key(hmac_key)
    payload = pickle.dumps(checkpoint, protocol=5)
    prefix = _HEADER.pack(
        MAGIC,
        CHECKPOINT_FORMAT_VERSION,
        DIGEST_HMAC_SHA256,
        0,
        len(payload),
        key_id(hmac_key),
        bytes(32),
    )[:_SIGNED_PREFIX]
    return prefix + _hmac(hmac_key, prefix, context, payload) + payload


def read_header(data: bytes) -> EnvelopeHeader:
    """Parse the header and check the framing (magic, length, digest kind), not the digest.

    Safe on any input: nothing is unpickled and nothing is trusted. For a description
    of an envelope that cannot be verified, and as the first step of :func:`verify`.

    Raises:
        CheckpointCorrupt: too short, bad magic, wrong length, unknown digest kind.
    """
    if len(data) < HEADER_SIZE:
        raise CheckpointCorrupt(
            f"truncated: {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header"
        )
    magic, version, kind, _reserved, length, kid, _digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointCorrupt(f"bad magic bytes {magic!r}: not a stream_al checkpoint")
    actual = len(data) - HEADER_SIZE
    if actual != length:
        state = "truncated" if actual < length else "trailing bytes"
        raise CheckpointCorrupt(f"{state}: header announces {length} payload bytes, found {actual}")
    if kind not in _DIGEST_NAMES:
        raise CheckpointCorrupt(f"unknown digest kind {kind}")
    shown_kid = kid.hex() if kind == DIGEST_HMAC_SHA256 else None
    return EnvelopeHeader(version, _DIGEST_NAMES[kind], shown_kid, length)


def authenticate(data: bytes, hmac_key: bytes, context: bytes = b"") -> EnvelopeHeader:
    """Check the framing and the HMAC-SHA256 signature; the version is not checked.

    What the Kafka reader needs to tell a genuine record from a forged one without
    unpickling anything, and without refusing a genuine one from a newer release
    (that is the operator's decision, raised later by :func:`verify`).

    Raises:
        CheckpointCorrupt: see :func:`read_header`.
        CheckpointUntrusted: unsigned (checksum only), signed with another key, or an
            HMAC mismatch.
    """
    header = read_header(data)
    if header.digest != _DIGEST_NAMES[DIGEST_HMAC_SHA256]:
        raise CheckpointUntrusted(
            "not signed (SHA-256 checksum only, as written before signatures were required); "
            "anyone able to write the store can compute a checksum, so only an HMAC-SHA256 "
            "signature (checkpoint.hmac_key or checkpoint.key_file) is trusted"
        )
    digest = data[_SIGNED_PREFIX:HEADER_SIZE]
    expected = _hmac(hmac_key, data[:_SIGNED_PREFIX], context, data[HEADER_SIZE:])
    if not hmac.compare_digest(digest, expected):
        configured = key_id(hmac_key).hex()
        if header.key_id != configured:
            raise CheckpointUntrusted(
                f"signed with another key (key id {header.key_id}, configured key {configured})"
            )
        raise CheckpointUntrusted("HMAC-SHA256 mismatch: tampered with or corrupted")
    return header


def verify(data: bytes, hmac_key: bytes, context: bytes = b"") -> tuple[EnvelopeHeader, bytes]:
    """Check the envelope; return its header and the (still pickled) payload.

    Only a matching HMAC-SHA256 signature made with ``hmac_key`` is accepted.

    Raises:
        CheckpointCorrupt, CheckpointUntrusted: see :func:`authenticate`.
        UnsupportedCheckpointVersion: genuine, but from an unknown format version.
    """
    header = authenticate(data, hmac_key, context)
    # Only now is the version field known to be what the writer wrote.
    if header.format_version != CHECKPOINT_FORMAT_VERSION:
        raise UnsupportedCheckpointVersion(
            f"checkpoint format version {header.format_version}; this release reads version "
            f"{CHECKPOINT_FORMAT_VERSION}"
        )
    return header, data[HEADER_SIZE:]


def open_envelope(data: bytes, hmac_key: bytes, context: bytes = b"") -> Checkpoint:
    """:func:`verify`, then unpickle; the payload must be a :class:`Checkpoint`."""
    _header, payload = verify(data, hmac_key, context)
    return unpickle(payload)


def unpickle(payload: bytes) -> Checkpoint:
    """Unpickle a *verified* payload; only call after :func:`verify` succeeded."""
    try:
        checkpoint = pickle.loads(payload)
    except Exception as exc:
        # A valid signature over an unloadable pickle means the writer's classes are gone
        # (renamed module, missing dependency): report it like corruption, with why.
        raise CheckpointCorrupt(f"payload does not unpickle: {type(exc).__name__}: {exc}") from exc
    if not isinstance(checkpoint, Checkpoint):
        raise CheckpointCorrupt(f"payload is a {type(checkpoint).__name__}, not a Checkpoint")
    return checkpoint


def _hmac(key: bytes, prefix: bytes, context: bytes, payload: bytes) -> bytes:
    mac = hmac.new(key, prefix, hashlib.sha256)
    mac.update(struct.pack(">I", len(context)) + context)
    mac.update(payload)
    return mac.digest()
