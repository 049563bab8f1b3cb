"""The decoders and encoders give, for every message of an adversarial corpus, exactly what
they gave before their fast path existed.

See ``decode_corpus.py``: NaN and infinities, 1e400 and -1e-999, integers past 64 bits and
past Python's 4,300 digits, -0, duplicate keys, BOMs and UTF-16, invalid UTF-8, lone
surrogates, deep nesting, non-object JSON, wrong types, sizes at and past every bound,
mapped formats, and 400 seeded random messages. For each: the same dead-letter reason and
detail, or the same decoded message (types and float bits included), and the same bytes
for the predictions and queries built from it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_al import schemas
from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner, ModelError
from stream_al.schemas import (
    InvalidMessage,
    LabelMessage,
    Sample,
    decode_sample,
    encode,
    encode_prediction,
)
from tests.unit.decode_corpus import (
    GOLDEN,
    MAPPINGS,
    PREDICTIONS,
    _short,
    cases,
    encodings,
    outcome,
)
from tests.unit.test_bad_input_properties import (
    PROPERTY_SETTINGS,
    _dump,
    json_values,
    label_like,
    sample_like,
    valid_samples,
)

_golden = json.loads(GOLDEN.read_text())
_cases = cases()


def test_the_golden_covers_every_case_and_the_corpus_is_adversarial() -> None:
    assert sorted(_golden) == sorted(_cases)
    kinds = {entry["outcome"][0] for entry in _golden.values()}
    reasons = {entry["outcome"][1] for entry in _golden.values() if entry["outcome"][0] == "dead"}
    assert kinds == {"ok", "dead"}, "no decoder may raise anything but InvalidMessage"
    assert reasons == {"not_json", "invalid_sample", "invalid_label", "too_large"}


@pytest.mark.parametrize("name", sorted(_cases))
def test_each_message_decodes_as_before(name: str) -> None:
    case = _cases[name]
    assert outcome(case) == _golden[name]["outcome"]
    assert encodings(case) == _golden[name].get("encoded")


# -- the fast path against the reference path, on generated messages ---------------------


def _either(decode: Any, raw: bytes, model: Any, reason: Any) -> tuple[str, str, str]:
    try:
        message = decode(raw, model, reason, 1_000_000)
    except InvalidMessage as error:
        return ("dead", error.reason, error.detail)
    return ("ok", repr(message), "")


def _same_both_ways(raw: bytes) -> None:
    for model, reason in ((Sample, "invalid_sample"), (LabelMessage, "invalid_label")):
        fast = _either(schemas._decode, raw, model, reason)
        assert fast == _either(schemas._decode_reference, raw, model, reason)


@PROPERTY_SETTINGS
@given(value=st.one_of(sample_like, label_like, json_values), ascii_only=st.booleans())
def test_the_fast_decoder_agrees_with_the_reference_on_any_json(
    value: Any, ascii_only: bool
) -> None:
    _same_both_ways(_dump(value, ascii_only))


@PROPERTY_SETTINGS
@given(sample=valid_samples)
def test_the_fast_decoder_agrees_with_the_reference_on_valid_samples(sample: Sample) -> None:
    _same_both_ways(encode(sample))


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=200))
def test_the_fast_decoder_agrees_with_the_reference_on_any_bytes(raw: bytes) -> None:
    _same_both_ways(raw)


# -- the fast prediction encoder against the golden bytes --------------------------------


@pytest.mark.parametrize("name", sorted(n for n in _golden if "encoded" in _golden[n]))
def test_encode_prediction_writes_the_golden_bytes(name: str) -> None:
    _, raw, max_bytes, mapping, key = _cases[name]
    sample = decode_sample(raw, max_bytes, MAPPINGS[mapping] if mapping else None, key)
    for i, (label, proba, uncertainty) in enumerate(PREDICTIONS):
        fields = (sample.id, label, proba, uncertainty, bool(i % 2), i * 1000)
        written = encode_prediction(*fields, sample.timestamp, sample.metadata)
        assert _short(written.decode()) == _golden[name]["encoded"][f"prediction-{i}"]


@PROPERTY_SETTINGS
@given(sample=valid_samples)
def test_a_scored_sample_encodes_as_its_prediction_model(sample: Sample) -> None:
    learner = ActiveLearner(LearnerConfig(strategy=StrategyConfig(budget=0.5, warmup=1)))
    learner.learn(LabelMessage(id="t", label="yes", features={"x": 1.0}), now=0.0)
    learner.learn(LabelMessage(id="u", label="no", features={"x": -1.0}), now=0.0)
    try:
        scored = learner.score(sample, now=1.0)
    except ModelError:
        return
    version = learner.labels_learned
    assert scored.encoded_prediction(sample, version) == encode(scored.prediction(sample, version))


# -- surrogates written as raw bytes -----------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "a", "features": {"c": "\xed\xa0\x80"}}',  # U+D800 as 3 bytes
        b'{"id": "a\xed\xbf\xbf", "features": {}}',  # U+DFFF in the id
        b'{"id": "a", "features": {"\xed\xa0\xbd\xed\xb8\x80": 1}}',  # a pair, CESU-8
        b'{"id": "a", "features": {}, "metadata": {"m": "\xed\xb0\x80"}}',
    ],
)
def test_a_surrogate_in_raw_bytes_is_refused_like_an_escaped_one(raw: bytes) -> None:
    # json.loads reads bytes with "surrogatepass": without this refusal the sample decoded,
    # and its query (or prediction) could not be encoded: the service would stop on it.
    # (pydantic refuses some of them itself, as strings it cannot read: invalid_sample.)
    with pytest.raises(InvalidMessage) as caught:
        decode_sample(raw)
    if caught.value.reason != "invalid_sample":
        assert caught.value.reason == "not_json"
        assert "surrogate" in caught.value.detail
    caught.value.detail.encode()


@pytest.mark.parametrize(
    "extra",
    [
        b"9" * 4301,
        b"-" + b"9" * 5000,
        b"1e400",
        b"NaN",
        b"-Infinity",
        b"[" * 500 + b"]" * 500,
        b"[" * 3000 + b"]" * 3000,
        rb'"\ud800"',
        b"1." + b"9" * 5000,
        b'{"a": ' * 300 + b"1" + b"}" * 300,
    ],
)
def test_an_ignored_field_is_read_alike_by_both_paths(extra: bytes) -> None:
    # Top-level fields other than the schema's are ignored, but they are still parsed:
    # whatever json.loads refuses in them (too many digits, too deep), the fast path must
    # not let through.
    _same_both_ways(b'{"id": "a", "features": {}, "label": "x", "extra": ' + extra + b"}")


_FLOAT_MAX = int(sys.float_info.max)


@pytest.mark.parametrize(
    "features",
    [
        {"x": _FLOAT_MAX},  # the largest integer a float holds: accepted
        {"x": _FLOAT_MAX + 1},  # one more: refused
        {"x": -_FLOAT_MAX - 1},
        {"x": _FLOAT_MAX + 2**969},  # still the largest float when read as one
        {"x": sys.float_info.max},  # the largest float: the fast path leaves it
        {"x": -sys.float_info.max},
        {"x": 1.7976931348623158e308},  # rounds to the largest float
        {"x": 1, "y": 1.0, "z": True, "w": "1", "n": None},  # JSON's types kept
        {"x": 0, "y": -0.0, "z": False, "w": ""},
        {"s": "a" * schemas.MAX_STRING_VALUE_LENGTH},
        {"s": "a" * (schemas.MAX_STRING_VALUE_LENGTH + 1)},
        {"x": [1.0]},
        {"x": {"y": 1.0}},
        {"": 1.0},
        {"n" * schemas.MAX_NAME_LENGTH: 1.0},
        {"n" * (schemas.MAX_NAME_LENGTH + 1): 1.0},
        {f"f{i}": 1.0 for i in range(schemas.MAX_FEATURES)},
        {f"f{i}": 1.0 for i in range(schemas.MAX_FEATURES + 1)},
        # Nulls are missing values: they do not count against the limit.
        {**{f"f{i}": 1.0 for i in range(schemas.MAX_FEATURES)}, "a": None, "b": None},
        {f"f{i}": None for i in range(schemas.MAX_FEATURES + 1)},
    ],
    ids=lambda features: _short(json.dumps(features))[:40],
)
def test_the_fast_schema_keeps_every_bound_of_the_reference(features: dict[str, Any]) -> None:
    # JSON features are validated with pydantic-core's own types (strict bool, int
    # within the float range, finite float, bounded string); the reference with a Python
    # check per value (Python input, and the reference decoder). Both must accept and
    # refuse alike, at and past every bound, with the same values.
    raw = json.dumps({"id": "a", "features": features, "label": "x"}).encode()
    _same_both_ways(raw)
