"""What an outsider can write into a checkpoint store: envelopes built from the documented layout.

Built straight from the layout in ``stream_al/durability/envelope.py``, not with its
code, so the tests also pin the format down.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
from typing import Any

from stream_al.durability import CHECKPOINT_FORMAT_VERSION


def build_envelope(
    payload: bytes,
    version: int = CHECKPOINT_FORMAT_VERSION,
    key: bytes | None = None,
    context: bytes = b"",
) -> bytes:
    """An envelope around ``payload``: with a correct SHA-256 checksum, or signed with ``key``."""
    kind = 1 if key is None else 2
    key_id = (
        bytes(8)
        if key is None
        else hashlib.sha256(b"stream-al checkpoint key id\x00" + key).digest()[:8]
    )
    prefix = b"\x89SALCKP\n" + struct.pack(">HBBQ", version, kind, 0, len(payload)) + key_id
    signed = prefix + struct.pack(">I", len(context)) + context + payload
    if key is None:
        digest = hashlib.sha256(signed).digest()
    else:
        digest = hmac.new(key, signed, hashlib.sha256).digest()
    return prefix + digest + payload


def unsigned(value: Any) -> bytes:
    """``value`` pickled into an envelope with a valid checksum: no key needed to make it."""
    return build_envelope(pickle.dumps(value, protocol=5))
