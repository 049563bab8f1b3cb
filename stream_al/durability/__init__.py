"""Durability: checkpoints of the learner and the label offsets, so a restart resumes.

- :class:`Checkpoint` what is saved; :func:`config_fingerprint` how configurations are
  compared across restarts.
- :class:`LocalCheckpointStore` atomic files in a directory, the last K kept.
- :class:`KafkaCheckpointStore` signed values in a compacted topic.
- :class:`CheckpointSchedule` every N labels or T seconds.
- :func:`inspect_checkpoint` JSON-able description of a checkpoint file.
- :func:`default_key_file`, :func:`read_key_file` where the signing key is kept.

Checkpoints are pickles: nothing is unpickled before its HMAC-SHA256 signature has
been verified (see :mod:`stream_al.durability.envelope`), in every store; unsigned
ones are refused (see :mod:`stream_al.durability.keys` for the key).
"""

from stream_al.durability.checkpoint import (
    CHECKPOINT_FORMAT_VERSION,
    Checkpoint,
    config_changes,
    config_fingerprint,
)
from stream_al.durability.errors import (
    CheckpointConfigError,
    CheckpointCorrupt,
    CheckpointError,
    CheckpointInvalid,
    CheckpointMismatch,
    CheckpointTooLarge,
    CheckpointUntrusted,
    NoValidCheckpoint,
    UnsupportedCheckpointVersion,
)
from stream_al.durability.kafka_store import KafkaCheckpointStore
from stream_al.durability.keys import default_key_file, read_key_file
from stream_al.durability.local import LocalCheckpointStore, inspect_checkpoint, read_checkpoint
from stream_al.durability.schedule import CheckpointSchedule
from stream_al.durability.store import CheckpointStore

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "CheckpointConfigError",
    "CheckpointCorrupt",
    "CheckpointError",
    "CheckpointInvalid",
    "CheckpointMismatch",
    "CheckpointSchedule",
    "CheckpointStore",
    "CheckpointTooLarge",
    "CheckpointUntrusted",
    "KafkaCheckpointStore",
    "LocalCheckpointStore",
    "NoValidCheckpoint",
    "UnsupportedCheckpointVersion",
    "config_changes",
    "config_fingerprint",
    "default_key_file",
    "inspect_checkpoint",
    "read_checkpoint",
    "read_key_file",
]
