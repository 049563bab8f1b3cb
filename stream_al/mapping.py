"""Reading a team's own events: which field is the id, the features, the label.

The stream_al envelope (``{"id": ..., "features": {...}}``) is the default. A topic that
already carries events of its own is read through a ``FieldMapping`` instead: each event
is turned into an envelope, then validated like any sample, so every guarantee of the
schemas (finite numbers, bounded sizes, dead-letter reasons) holds for it too.

Field names may be dotted paths into nested objects (``payload.amount``). By default
every field that is not the id, the timestamp, a metadata field or the label is a
feature, and nested objects are flattened into dotted names.

>>> mapping = FieldMapping(id_field="id", metadata_fields=["country"])
>>> to_envelope({"id": "o-1", "amount": 3.0, "country": "NL", "card": {"kind": "visa"}}, mapping)
{'id': 'o-1', 'features': {'amount': 3.0, 'card.kind': 'visa'}, 'metadata': {'country': 'NL'}}
>>> to_envelope({"amount": 3.0}, FieldMapping(), key=b"o-2")["id"]
'o-2'
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_MISSING = object()


class MappingError(ValueError):
    """An event that the mapping cannot read, and why."""


class FieldMapping(BaseModel):
    """How to read a foreign event as a sample (and a foreign label message as a label)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Samples topic: ``envelope`` (stream_al's own) or ``mapped`` (read by the fields below).
    format: Literal["envelope", "mapped"] = "envelope"
    #: Labels topic, the same choice (stream_al's labelers and oracle write envelopes).
    labels_format: Literal["envelope", "mapped"] = "envelope"
    #: The id's field; None takes the Kafka record's key.
    id_field: str | None = None
    #: A nested object holding the features (e.g. ``payload``); None: the event itself.
    features_field: str | None = None
    #: The features to take; None takes every other field.
    feature_fields: list[str] | None = Field(None, min_length=1)
    #: Fields carried along as the sample's metadata (to its query and prediction).
    metadata_fields: list[str] = []
    #: The event time's field (ISO 8601 or epoch seconds).
    timestamp_field: str | None = None
    #: On the labels topic: the label's field (the id is read as for samples).
    label_field: str = "label"
    #: On the labels topic: who labelled it, if the events say.
    annotator_field: str | None = None

    def for_samples(self) -> FieldMapping | None:
        """This mapping if samples are mapped, else None (the envelope)."""
        return self if self.format == "mapped" else None

    def for_labels(self) -> FieldMapping | None:
        """This mapping if labels are mapped, else None (the envelope)."""
        return self if self.labels_format == "mapped" else None


def _lookup(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _flatten(values: dict[str, Any], prefix: str, skip: set[str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in values.items():
        path = f"{prefix}{name}"
        if path in skip:
            continue
        if isinstance(value, dict):
            flat.update(_flatten(value, path + ".", skip))
        else:
            flat[path] = value
    return flat


def _id(event: dict[str, Any], mapping: FieldMapping, key: bytes | None) -> Any:
    if mapping.id_field is None:
        if not key:
            raise MappingError("the record has no key, and the mapping takes the id from it")
        try:
            return key.decode()
        except UnicodeDecodeError:
            raise MappingError("the record's key (the id) is not UTF-8") from None
    value = _lookup(event, mapping.id_field)
    if value is _MISSING or value is None:
        raise MappingError(f"the id field {mapping.id_field!r} is missing")
    # An id may be a number in a team's events: its JSON text is the id.
    return value if isinstance(value, str) else str(value)


def to_envelope(
    event: Any, mapping: FieldMapping, key: bytes | None = None, *, label: bool = False
) -> dict[str, Any]:
    """The envelope (sample, or label with ``label=True``) that ``event`` maps to."""
    if not isinstance(event, dict):
        raise MappingError(f"an event must be a JSON object, not {type(event).__name__}")
    envelope: dict[str, Any] = {"id": _id(event, mapping, key)}
    if label:
        value = _lookup(event, mapping.label_field)
        if value is _MISSING:
            raise MappingError(f"the label field {mapping.label_field!r} is missing")
        envelope["label"] = value
        if mapping.annotator_field is not None:
            annotator = _lookup(event, mapping.annotator_field)
            if annotator is not _MISSING:
                envelope["annotator"] = annotator
    if mapping.timestamp_field is not None:
        stamp = _lookup(event, mapping.timestamp_field)
        if stamp is not _MISSING:
            envelope["timestamp"] = stamp
    metadata = {}
    for name in mapping.metadata_fields:
        value = _lookup(event, name)
        if value is not _MISSING:
            metadata[name] = value
    source = event
    if mapping.features_field is not None:
        source = _lookup(event, mapping.features_field)
        if not isinstance(source, dict):
            raise MappingError(f"the features field {mapping.features_field!r} is not an object")
    if mapping.feature_fields is not None:
        features = {
            name: value
            for name in mapping.feature_fields
            if (value := _lookup(source, name)) is not _MISSING
        }
    else:
        skip = {*mapping.metadata_fields}
        if mapping.features_field is None:
            taken = [mapping.id_field, mapping.timestamp_field]
            if label:
                taken += [mapping.label_field, mapping.annotator_field]
            skip |= {name for name in taken if name is not None}
        features = _flatten(source, "", skip)
    if features or not label:
        envelope["features"] = features
    if metadata:
        envelope["metadata"] = metadata
    return envelope
