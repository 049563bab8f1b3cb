"""Wire schemas: what travels on the topics, as JSON.

Every message that enters the service is parsed here; anything that does not fit is
rejected with an ``InvalidMessage`` whose ``reason`` is a short code (used as a metric
label and a dead-letter header) and whose ``detail`` says what is wrong.

Class labels are strings everywhere (on the wire, in the model, in probabilities, whose
JSON keys are strings anyway). A label sent as a JSON number or boolean is accepted and
converted to its JSON text: ``true`` becomes ``"true"``, ``3`` becomes ``"3"``.

>>> sample = decode_sample(b'{"id": "s-1", "features": {"x": 1.5, "colour": "red"}}')
>>> sample.id, sample.features
('s-1', {'x': 1.5, 'colour': 'red'})
>>> decode_label(b'{"id": "s-1", "label": true}').label
'true'
>>> decode_sample(b'{"id": "s-2", "features": {"x": NaN}}')  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
stream_al.schemas.InvalidMessage: invalid_sample: features.x: ... must be a finite number ...
"""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import core_schema
from typing_extensions import TypedDict

from stream_al.core.types import ClassLabel, FeatureValue, QueryReason
from stream_al.mapping import FieldMapping, MappingError, to_envelope

MAX_ID_LENGTH = 256
MAX_FEATURES = 10_000
MAX_NAME_LENGTH = 256
MAX_STRING_VALUE_LENGTH = 4096
#: Default ceiling on one message's size; the service setting ``max_message_bytes`` overrides it.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000

DeadLetterReason = Literal[
    "too_large",
    "not_json",
    "invalid_sample",
    "invalid_label",
    "unknown_id",
    "expired",
    "duplicate",
    "model_error",
]


class InvalidMessage(ValueError):
    """A message that cannot be used, with a reason code and a readable detail."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DeadLetterReason = reason
        self.detail = detail


def class_label(value: Any) -> ClassLabel:
    """Normalise a class label to its string form (JSON text for numbers and booleans).

    >>> class_label(True), class_label(3), class_label("cat")
    ('true', '3', 'cat')
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int):
        return json.dumps(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a label must be a finite number")
        return json.dumps(int(value)) if value.is_integer() else json.dumps(value)
    raise ValueError(f"a label must be a string, number or boolean, not {type(value).__name__}")


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Label = Annotated[ClassLabel, BeforeValidator(class_label), Field(min_length=1, max_length=256)]
FeatureName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]


def _feature_value(value: Any) -> FeatureValue:
    # One validator instead of a union: one clear message, and JSON's types kept as they
    # are (true stays a bool, "1" stays a string).
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        # Models multiply features by float weights: beyond the float range an integer
        # raises OverflowError in the middle of scoring.
        if abs(value) > sys.float_info.max:
            raise ValueError("must be a finite number (this integer is beyond the float range)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number (NaN and infinity are not allowed)")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_VALUE_LENGTH:
            raise ValueError(f"a string feature is at most {MAX_STRING_VALUE_LENGTH} characters")
        return value
    raise ValueError(f"must be a number, string or boolean, not {type(value).__name__}")


_FEATURE_VALUE_SCHEMA = {
    "description": "a finite number, a string of at most 4096 characters, or a boolean; "
    "null is a missing value",
    "type": ["number", "string", "boolean", "null"],
}
WireFeatureValue = Annotated[
    FeatureValue, PlainValidator(_feature_value), WithJsonSchema(_FEATURE_VALUE_SCHEMA)
]
MetadataValue = str | int | float | bool | None


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


_M = TypeVar("_M", bound=_Wire)


def _drop_nulls(value: Any) -> Any:
    # null means missing, everywhere: what pandas writes for NaN, and what a team's events
    # hold for a field they did not fill. river's models take a missing key as missing.
    if isinstance(value, dict):
        return {name: v for name, v in value.items() if v is not None}
    return value


#: The features as Python values (a sample built in code, the reference decoder): a check
#: per value, each refusal in its own words. Every dead-letter detail comes from here.
_PythonFeatures = Annotated[
    dict[FeatureName, WireFeatureValue],
    BeforeValidator(_drop_nulls),
    Field(max_length=MAX_FEATURES),
]


def _without_nulls(features: dict[str, FeatureValue | None]) -> dict[str, FeatureValue]:
    if None in features.values():
        features = _drop_nulls(features)
    if len(features) > MAX_FEATURES:
        raise ValueError(f"at most {MAX_FEATURES} features")
    return features  # type: ignore[return-value]  # no None is left


_FLOAT_MAX = sys.float_info.max

#: The features as JSON (the fast decoder): what ``_PythonFeatures`` accepts, as
#: pydantic-core schemas, so that pydantic validates a message in one pass while parsing it
#: (no Python call per value, and no Python dict built first as a ``BeforeValidator``
#: needs), about twice as fast. Strict members keep JSON's types (true stays a bool, 1 an
#: int, "1" a string). Its refusals are not worded for people: a message it refuses is
#: decoded again by the reference, which says why (``_decode``). The float member takes an
#: integer the int member refused, and one just past the float range becomes the largest
#: float: so the largest float itself is left to the reference too.
_JsonFeatures = Annotated[
    dict[
        FeatureName,
        Annotated[bool, Field(strict=True)]
        | Annotated[int, Field(strict=True, ge=-int(_FLOAT_MAX), le=int(_FLOAT_MAX))]
        | Annotated[float, Field(strict=True, allow_inf_nan=False, gt=-_FLOAT_MAX, lt=_FLOAT_MAX)]
        | Annotated[str, Field(strict=True, max_length=MAX_STRING_VALUE_LENGTH)]
        | None,
    ],
    AfterValidator(_without_nulls),
]


def _features_schema(_source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    return core_schema.json_or_python_schema(
        json_schema=handler.generate_schema(_JsonFeatures),
        python_schema=handler.generate_schema(_PythonFeatures),
    )


Features = Annotated[
    dict[str, FeatureValue],
    GetPydanticSchema(_features_schema),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": _FEATURE_VALUE_SCHEMA,
            "propertyNames": {"maxLength": MAX_NAME_LENGTH, "minLength": 1},
            "maxProperties": MAX_FEATURES,
        }
    ),
]


class _Incoming(_Wire):
    # Unknown top-level fields are ignored, so an envelope may carry more than we read.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)


Metadata = Annotated[dict[FeatureName, MetadataValue], Field(max_length=1000)]


class Sample(_Incoming):
    """One event to score: ``features`` by name, an optional event time and metadata.

    ``metadata`` is not learned from; it travels with the sample to its query and its
    prediction (a text to show a labeler, a record URL, a source system's key). A feature
    that is ``null`` is missing; a top-level field other than these is ignored.

    >>> decode_sample(b'{"id": "a", "features": {"x": null, "y": 2}, "source": "web"}').features
    {'y': 2}
    """

    id: Id
    features: Features
    timestamp: datetime | None = None
    metadata: Metadata | None = None


class LabelMessage(_Incoming):
    """A label for a sample, or a labeler's "don't know" (``skipped``).

    ``features`` may be carried along when the sample was never queried here. Exactly
    one of ``label`` and ``skipped`` is given: a skip tells the service to stop waiting
    for that sample's label (it is counted, not learned).

    ``corrects`` marks a labeler's undo: this answer replaces the same annotator's earlier
    answer for the same id. Before the item is learned (its k answers are not all in) the
    earlier answer is simply replaced. After, the model cannot unlearn: the correction is
    counted, the aggregate is recomputed, and if it changed the corrected label is learned
    as well (a late correction); see ``stream_al.core.aggregation``.

    >>> LabelMessage(id="s-1", skipped=True, annotator="ann").label is None
    True
    >>> LabelMessage(id="s-1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for LabelMessage
    ...
    """

    id: Id
    label: Label | None = None
    skipped: bool = False
    annotator: Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)] | None = None
    features: Features | None = None
    corrects: bool = False

    @model_validator(mode="after")
    def _label_or_skip(self) -> LabelMessage:
        if (self.label is None) != self.skipped:
            raise ValueError("give either a label or skipped: true (not both, not neither)")
        return self


class Query(_Wire):
    """What the oracle receives: the sample, what the model thinks, and why it asks."""

    id: Id
    features: dict[str, FeatureValue]
    predicted_label: ClassLabel | None
    probabilities: dict[ClassLabel, float]
    uncertainty: float = Field(ge=0.0, le=1.0)
    strategy: str
    reason: QueryReason
    threshold: float | None
    created_at: datetime
    #: The classes a labeler may choose from: ``learner.classes`` when set, otherwise
    #: the classes learned so far (a labeler may then name a new one).
    classes: tuple[ClassLabel, ...] = ()
    #: The sample's own event time and metadata, as it arrived.
    timestamp: datetime | None = None
    metadata: dict[str, MetadataValue] | None = None


class Prediction(_Wire):
    """What downstream receives for every sample.

    ``model_version`` is the number of labels the model had learned when it predicted:
    two predictions with the same version came from the same model.
    """

    id: Id
    label: ClassLabel | None
    probabilities: dict[ClassLabel, float]
    uncertainty: float
    queried: bool
    model_version: int
    timestamp: datetime | None = None
    metadata: dict[str, MetadataValue] | None = None


class _PredictionFields(TypedDict):
    """``Prediction``'s fields as a plain dict, for ``encode_prediction``."""

    id: str
    label: ClassLabel | None
    probabilities: dict[ClassLabel, float]
    uncertainty: float
    queried: bool
    model_version: int
    timestamp: datetime | None
    metadata: dict[str, MetadataValue] | None


#: Serialises the dict with the same pydantic-core serializers as ``Prediction`` (same
#: field order, float and datetime formats), without building and validating a model; the
#: core serializer itself, as ``TypeAdapter.dump_json``'s own argument handling in Python
#: cost as much as the serialising (2.2 -> 1.2 us per prediction).
_PREDICTION_JSON = TypeAdapter(_PredictionFields).serializer


def encode_prediction(
    id: str,
    label: ClassLabel | None,
    probabilities: dict[ClassLabel, float],
    uncertainty: float,
    queried: bool,
    model_version: int,
    timestamp: datetime | None = None,
    metadata: dict[str, MetadataValue] | None = None,
) -> bytes:
    """The bytes ``encode(Prediction(...))`` writes for these fields, about twice as fast.

    The caller vouches for the types (the learner's own output, a validated sample's time
    and metadata): nothing is validated here. Byte-for-byte the same as the model's JSON
    (tests/unit/test_decode_corpus.py).

    >>> encode_prediction("s-1", "a", {"a": 0.75, "b": 0.25}, 0.5, False, 3)
    b'{"id":"s-1","label":"a","probabilities":{"a":0.75,"b":0.25},"uncertainty":0.5,\
"queried":false,"model_version":3,"timestamp":null,"metadata":null}'
    """
    return _PREDICTION_JSON.to_json(
        {
            "id": id,
            "label": label,
            "probabilities": probabilities,
            "uncertainty": uncertainty,
            "queried": queried,
            "model_version": model_version,
            "timestamp": timestamp,
            "metadata": metadata,
        }
    )


def _decode_json(raw: bytes, max_bytes: int) -> Any:
    if len(raw) > max_bytes:
        raise InvalidMessage("too_large", f"message is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise InvalidMessage("not_json", f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidMessage("not_json", f"not JSON: {exc.msg} at char {exc.pos}") from exc
    except RecursionError as exc:
        raise InvalidMessage("not_json", "JSON nested too deeply") from exc
    except ValueError as exc:
        # Python refuses integers of more than 4300 digits (a denial-of-service guard).
        raise InvalidMessage("not_json", f"unreadable JSON: {exc}") from exc
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(data):
        # Valid JSON syntax, but no Unicode text: it could never be encoded again, so a
        # query or dead letter carrying it would stop the service.
        raise InvalidMessage("not_json", "a string escapes a lone UTF-16 surrogate: not Unicode")
    return data


#: Only a message with such an escape can hold a lone surrogate: the walk is rare.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
#: U+D800..U+DFFF encoded as UTF-8 bytes: never valid UTF-8.
_RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf][\x80-\xbf]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        location = ".".join(str(part) for part in error["loc"]) or "message"
        parts.append(f"{location}: {error['msg']}")
    if exc.error_count() > 5:
        parts.append(f"... and {exc.error_count() - 5} more errors")
    return "; ".join(parts)


def _decode(
    raw: bytes,
    model: type[_M],
    reason: DeadLetterReason,
    max_bytes: int,
    mapping: FieldMapping | None = None,
    key: bytes | None = None,
) -> _M:
    if mapping is None and len(raw) <= max_bytes and not _SURROGATE_ESCAPE.search(raw):
        # The fast path: pydantic parses and validates in one pass (jiter), about twice as
        # fast as json.loads then model_validate. It accepts exactly what the reference
        # path below accepts, with the same values (tests/unit/test_decode_corpus.py): it
        # refuses NaN, BOMs, UTF-16, invalid UTF-8 and numbers past 4,300 digits at parse
        # time, and integers of any size come out exact. A lone surrogate escape (which
        # jiter would read differently) always takes the reference path. Anything it
        # refuses goes to the reference path too, which says why in its own words: the
        # dead-letter reasons and details stay exactly what they were.
        try:
            return model.model_validate_json(raw)
        except ValidationError:
            pass
    return _decode_reference(raw, model, reason, max_bytes, mapping, key)


def _decode_reference(
    raw: bytes,
    model: type[_M],
    reason: DeadLetterReason,
    max_bytes: int,
    mapping: FieldMapping | None = None,
    key: bytes | None = None,
) -> _M:
    """The reference decoder: ``json.loads``, the checks on the parsed JSON, the mapping,
    then validation. Every dead-letter detail comes from here."""
    data = _decode_json(raw, max_bytes)
    if mapping is not None:
        try:
            data = to_envelope(data, mapping, key, label=model is LabelMessage)
        except MappingError as exc:
            raise InvalidMessage(reason, str(exc)) from exc
    try:
        message = model.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessage(reason, _describe(exc)) from exc
    if (surrogate := _RAW_SURROGATE.search(raw)) is not None:
        # json.loads reads bytes with "surrogatepass": a surrogate written as raw bytes
        # (invalid UTF-8, CESU-8 pairs included) came through as a lone one, and the
        # message could not be encoded again. Checked last, so that a message refused for
        # another reason keeps that reason.
        at = surrogate.start()
        raise InvalidMessage("not_json", f"not UTF-8: a UTF-16 surrogate encoded at byte {at}")
    return message


def decode_sample(
    raw: bytes,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    mapping: FieldMapping | None = None,
    key: bytes | None = None,
) -> Sample:
    """Parse and validate a sample message (read through ``mapping`` if given), or raise
    ``InvalidMessage``; ``key`` is the record's key, the id when the mapping says so."""
    return _decode(raw, Sample, "invalid_sample", max_bytes, mapping, key)


def decode_label(
    raw: bytes,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    mapping: FieldMapping | None = None,
    key: bytes | None = None,
) -> LabelMessage:
    """Parse and validate a label message, like ``decode_sample``."""
    return _decode(raw, LabelMessage, "invalid_label", max_bytes, mapping, key)


def encode(message: BaseModel) -> bytes:
    """Serialise a wire model to compact JSON bytes (``model_dump_json``'s, as bytes)."""
    return message.__pydantic_serializer__.to_json(message)


#: The messages of each topic, by the name of their JSON Schema file in ``docs/schemas``.
MESSAGES: dict[str, type[BaseModel]] = {
    "sample": Sample,
    "prediction": Prediction,
    "query": Query,
    "label": LabelMessage,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each message, as read (samples, labels) or as written.

    ``python -m stream_al.schemas DIR`` writes them to ``DIR/<name>.schema.json``.
    """
    schemas = {}
    for name, model in MESSAGES.items():
        incoming = issubclass(model, _Incoming)
        schema = model.model_json_schema(mode="validation" if incoming else "serialization")
        # The docstring's first paragraph, not its examples.
        schema["description"] = (model.__doc__ or "").strip().split("\n\n")[0]
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schemas[name] = schema
    return schemas


if __name__ == "__main__":
    from pathlib import Path

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")
    folder.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (folder / f"{name}.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
        print(folder / f"{name}.schema.json")
