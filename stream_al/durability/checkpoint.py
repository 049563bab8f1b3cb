"""What a checkpoint holds, and how a configuration is fingerprinted.

A :class:`Checkpoint` is everything a restarted service needs to carry on where it
stopped: the learner (model, strategy state, pending queries), the next offset to
read on every labels partition, and a fingerprint of the learner configuration it was
made under, so that a restart under a different configuration is noticed instead of
silently mixing a model trained one way with a strategy configured another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Version of the checkpoint format (envelope and payload layout). Bumped whenever an
#: older release could no longer read what this one writes.
CHECKPOINT_FORMAT_VERSION = 1


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Checkpoint:
    """A snapshot of the service's learning state.

    Attributes:
        learner: the ``ActiveLearner``; it must be picklable and offer
            ``summary() -> dict`` (keys ``labels_learned``, ``samples_seen``,
            ``strategy``, ``model``, ``config``).
        label_offsets: labels topic -> partition -> next offset to read.
        config_fingerprint: hash of the learner configuration, see
            :func:`config_fingerprint`.
        created_at: when the snapshot was taken; timezone-aware, stored in UTC.
        format_version: :data:`CHECKPOINT_FORMAT_VERSION` of the writer.
    """

    learner: Any
    label_offsets: dict[str, dict[int, int]]
    config_fingerprint: str
    created_at: datetime = field(default_factory=_utc_now)
    format_version: int = CHECKPOINT_FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError("Checkpoint.created_at must be timezone-aware (UTC)")
        # Frozen dataclass: normalising needs the base class setter.
        object.__setattr__(self, "created_at", self.created_at.astimezone(UTC))

    def learner_config(self) -> dict[str, Any] | None:
        """The learner configuration recorded in the learner's summary, if it has one."""
        config = self._summary().get("config")
        return dict(config) if isinstance(config, Mapping) else None

    def describe(self) -> dict[str, Any]:
        """A JSON-able description: learner summary, offsets, fingerprint, time, version."""
        summary = self._summary()
        return {
            "labels_learned": summary.get("labels_learned"),
            "samples_seen": summary.get("samples_seen"),
            "strategy": summary.get("strategy"),
            "model": summary.get("model"),
            "config": summary.get("config"),
            # JSON object keys are strings; make that explicit rather than relying on
            # json.dumps converting the partition numbers behind the caller's back.
            "label_offsets": {
                topic: {str(partition): offset for partition, offset in sorted(parts.items())}
                for topic, parts in sorted(self.label_offsets.items())
            },
            "config_fingerprint": self.config_fingerprint,
            "created_at": self.created_at.isoformat(),
            "format_version": self.format_version,
        }

    def _summary(self) -> dict[str, Any]:
        summary = getattr(self.learner, "summary", None)
        return dict(summary()) if callable(summary) else {}


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """A stable hash of a JSON-able configuration mapping.

    Canonical JSON (sorted keys, no whitespace) so that key order and formatting do
    not matter; pass ``LearnerConfig.model_dump(mode="json")``.
    """
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Leaf-level differences between two nested configurations, as dotted paths.

    >>> config_changes({"strategy": {"budget": 0.05}}, {"strategy": {"budget": 0.1}})
    ['strategy.budget: 0.05 -> 0.1']
    """
    flat_old, flat_new = _flatten(old), _flatten(new)
    changes = []
    for key in sorted(flat_old.keys() | flat_new.keys()):
        before = flat_old.get(key, _MISSING)
        after = flat_new.get(key, _MISSING)
        if before != after:
            changes.append(f"{key}: {_show(before)} -> {_show(after)}")
    return changes


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


_MISSING = _Missing()


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat
