"""Wire schemas: what is accepted, what is refused and how the refusal reads."""

from __future__ import annotations

import json

import pytest

from stream_al.schemas import (
    InvalidMessage,
    LabelMessage,
    Prediction,
    Sample,
    class_label,
    decode_label,
    decode_sample,
    encode,
)


def sample_bytes(**fields: object) -> bytes:
    message = {"id": "s-1", "features": {"x": 1.0}}
    message.update(fields)
    return json.dumps(message).encode()


def test_a_sample_keeps_json_types_of_its_features() -> None:
    sample = decode_sample(sample_bytes(features={"b": True, "i": 3, "f": 0.5, "s": "red"}))
    assert sample.features == {"b": True, "i": 3, "f": 0.5, "s": "red"}
    assert type(sample.features["b"]) is bool
    assert type(sample.features["i"]) is int


def test_timestamp_and_metadata_are_optional() -> None:
    sample = decode_sample(
        sample_bytes(timestamp="2026-01-02T03:04:05Z", metadata={"source": "web", "n": 1})
    )
    assert sample.timestamp is not None and sample.timestamp.year == 2026
    assert sample.metadata == {"source": "web", "n": 1}


@pytest.mark.parametrize(
    ("raw", "reason", "says"),
    [
        (b"\xff\xfe\x00", "not_json", "UTF-8"),
        (b"{not json", "not_json", "not JSON"),
        (b"[" * 100_000, "not_json", "nested"),
        (b'{"id": "a", "features": {"x": NaN}}', "invalid_sample", "features.x"),
        (b'{"id": "a", "features": {"x": Infinity}}', "invalid_sample", "finite"),
        (b'{"id": "a", "features": {"x": [1, 2]}}', "invalid_sample", "not list"),
        (b'{"id": "a", "features": {"x": {"deep": 1}}}', "invalid_sample", "not dict"),
        (b'{"id": "", "features": {}}', "invalid_sample", "id"),
        (b'{"id": 7, "features": {}}', "invalid_sample", "id"),
        (b'{"features": {}}', "invalid_sample", "id: Field required"),
        (b'{"id": "a"}', "invalid_sample", "features: Field required"),
        (b'"just a string"', "invalid_sample", "valid dictionary"),
    ],
)
def test_bad_samples_are_refused_with_a_reason(raw: bytes, reason: str, says: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode_sample(raw)
    assert caught.value.reason == reason
    assert says in caught.value.detail


def test_null_features_are_missing_and_extra_top_level_fields_are_ignored() -> None:
    sample = decode_sample(b'{"id": "a", "features": {"x": null, "y": 1}, "source": "web"}')
    assert sample.features == {"y": 1}
    label = decode_label(b'{"id": "a", "label": "x", "features": {"x": null}, "by": "me"}')
    assert label.features == {}


def test_an_oversized_message_is_refused_before_parsing() -> None:
    raw = sample_bytes(features={f"f{i}": i for i in range(200)})
    with pytest.raises(InvalidMessage) as caught:
        decode_sample(raw, max_bytes=len(raw) - 1)
    assert caught.value.reason == "too_large"
    assert str(len(raw)) in caught.value.detail


def test_too_many_features_or_too_long_an_id_is_refused() -> None:
    with pytest.raises(InvalidMessage, match="id"):
        decode_sample(sample_bytes(id="x" * 257))
    many = {f"f{i}": 1 for i in range(10_001)}
    with pytest.raises(InvalidMessage, match="features"):
        decode_sample(sample_bytes(features=many), max_bytes=10**7)


@pytest.mark.parametrize(
    ("value", "expected"), [(True, "true"), (False, "false"), (3, "3"), (2.0, "2"), ("cat", "cat")]
)
def test_labels_are_strings_on_the_wire(value: object, expected: str) -> None:
    assert class_label(value) == expected
    assert decode_label(json.dumps({"id": "a", "label": value}).encode()).label == expected


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "a", "label": null}',
        b'{"id": "a", "label": ""}',
        b'{"id": "a", "label": [1]}',
        b'{"id": "a"}',
    ],
)
def test_bad_labels_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode_label(raw)
    assert caught.value.reason == "invalid_label"


def test_a_label_may_carry_features() -> None:
    label = decode_label(b'{"id": "a", "label": "x", "annotator": "ann", "features": {"f": 1}}')
    assert label == LabelMessage(id="a", label="x", annotator="ann", features={"f": 1})


def test_messages_round_trip_through_json() -> None:
    sample = Sample(id="a", features={"x": 1.5, "c": "red", "b": False})
    assert decode_sample(encode(sample)) == sample
    prediction = Prediction(
        id="a",
        label="true",
        probabilities={"true": 0.7, "false": 0.3},
        uncertainty=0.6,
        queried=True,
        model_version=12,
        metadata={"text": "hello"},
    )
    assert Prediction.model_validate_json(encode(prediction)) == prediction


def test_a_skip_is_a_label_message_without_a_label() -> None:
    assert decode_label(b'{"id": "a", "skipped": true}').skipped
    for raw in (b'{"id": "a"}', b'{"id": "a", "label": "x", "skipped": true}'):
        with pytest.raises(InvalidMessage) as refused:
            decode_label(raw)
        assert refused.value.reason == "invalid_label"
        assert "either a label or skipped" in refused.value.detail


@pytest.mark.parametrize(
    "raw",
    [
        rb'{"id": "poison-1", "features": {"c": "\ud800", "0": 0.5}}',
        rb'{"id": "p", "features": {"\uDFFF": 1}}',
        rb'{"id": "p\udc00", "features": {}}',
        rb'{"id": "p", "features": {}, "metadata": {"note": "\ud83d"}}',
    ],
)
def test_a_lone_surrogate_is_refused_since_it_could_not_be_encoded_again(raw: bytes) -> None:
    with pytest.raises(InvalidMessage) as refused:
        decode_sample(raw)
    assert refused.value.reason == "not_json"
    assert "surrogate" in refused.value.detail


def test_a_surrogate_pair_is_ordinary_unicode() -> None:
    sample = decode_sample(rb'{"id": "p", "features": {"c": "\ud83d\ude00"}}')
    assert sample.features == {"c": "\U0001f600"}
    assert decode_sample(encode(sample)) == sample
