"""Warm starts: a service without a checkpoint begins from labelled history.

Three sources, in this order, any of them or all: a model trained elsewhere (a signed
checkpoint file, such as ``stream-al train`` writes), a file of labelled samples, and
the labels topic read from its beginning (the labels that carry their features). The
labels are learned before the first sample is scored and cost the budget nothing.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from stream_al.core.learner import ActiveLearner
from stream_al.durability import CheckpointError, read_checkpoint
from stream_al.durability.checkpoint import config_changes
from stream_al.schemas import InvalidMessage, LabelMessage, decode_label
from stream_al.settings import Settings, WarmStartSettings
from stream_al.sim.files import read_examples
from stream_al.transport import LogConsumer, TopicPartition, TransportError

log = logging.getLogger(__name__)

#: Bound on reading the labels topic from its beginning to its end.
REPLAY_TIMEOUT_SECONDS = 300.0


class WarmStartError(ValueError):
    """A warm start that was asked for and cannot be made, and why."""


def signing_key(settings: Settings) -> bytes | None:
    """The checkpoint key given by the settings (None: the default key file's)."""
    key = settings.checkpoint.hmac_key
    return key.get_secret_value().encode() if key is not None else None


def load_model_file(path: Path, settings: Settings) -> ActiveLearner:
    """The learner of a signed model (or checkpoint) file, set to these settings.

    Its model must be the configured one (``model`` and ``classes``); the strategy
    follows the settings. Signed with the checkpoint key; nothing unsigned is unpickled.
    """
    try:
        checkpoint = read_checkpoint(path, signing_key(settings), settings.checkpoint.key_file)
    except (CheckpointError, OSError) as exc:
        raise WarmStartError(f"warm_start.model_file {path}: {exc}") from exc
    learner = checkpoint.learner
    if not isinstance(learner, ActiveLearner):
        raise WarmStartError(f"warm_start.model_file {path} holds no stream_al learner")
    wanted = settings.learner
    if learner.config.model_identity() != wanted.model_identity():
        changes = config_changes(learner.config.model_identity(), wanted.model_identity())
        raise WarmStartError(
            f"warm_start.model_file {path} holds another model: {'; '.join(changes)}"
        )
    learner.reconfigure(wanted)
    return learner


def labels_from_file(options: WarmStartSettings) -> list[LabelMessage]:
    """The labelled samples of ``warm_start.data`` as labels carrying their features."""
    assert options.data is not None and options.target is not None
    data = read_examples(options.data, options.target, options.id_column)
    log.info("warm start file read:\n%s", data.report())
    return [LabelMessage(id=e.id, label=e.label, features=e.features) for e in data.examples]


def replay_labels_topic(
    consumer: LogConsumer, settings: Settings
) -> tuple[list[LabelMessage], dict[int, int]]:
    """The labels on the labels topic from its beginning, and the offsets of its end.

    ``consumer`` is assigned the labels topic; it is left positioned at the end. The
    labels come in the order they were written (by record time across partitions): an
    online model depends on the order it learns in. On one partition that is exactly the
    order a running service learned them in; across partitions, close to it (a service
    reads partitions in chunks, so labels written in the same moment may have been learned
    in another order).
    Labels that cannot be read were dead-lettered when they first came: skipped here.
    """
    assigned = list(consumer.assignment())
    ends = {tp.partition: end for tp, end in consumer.end_offsets(assigned).items()}
    starts = consumer.beginning_offsets(assigned)
    consumer.assign(starts)
    positions = {tp.partition: start for tp, start in starts.items()}
    mapping = settings.mapping.for_labels()
    deadline = time.monotonic() + REPLAY_TIMEOUT_SECONDS
    history: list[tuple[int, int, int, LabelMessage]] = []
    while any(positions[p] < end for p, end in ends.items()):
        if time.monotonic() > deadline:
            raise TransportError("could not read the labels topic to its end in time", True)
        for tp, records in consumer.poll(timeout_ms=200).items():
            for record in records:
                if record.offset >= ends[tp.partition]:
                    continue
                positions[tp.partition] = record.offset + 1
                try:
                    label = decode_label(
                        record.value or b"", settings.max_message_bytes, mapping, record.key
                    )
                except InvalidMessage:
                    continue
                history.append((record.timestamp, tp.partition, record.offset, label))
    consumer.assign({TopicPartition(settings.topics.labels, p): end for p, end in ends.items()})
    history.sort(key=lambda entry: entry[:3])
    return [label for *_, label in history], ends
