"""Property tests of the wire decoders: whatever the bytes, ``InvalidMessage`` or a usable message.

The service catches ``InvalidMessage`` and dead-letters the message; any other exception
would stop it, and since the offending record is replayed after a restart, stop it for
good. So the contract checked here is: on any input, ``decode_sample``/``decode_label``
either raise ``InvalidMessage`` (with one of the dead-letter reason codes) or return a
message that the learner can score or learn and that the service can publish.
"""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner, ModelError
from stream_al.schemas import (
    MAX_ID_LENGTH,
    DeadLetterReason,
    InvalidMessage,
    LabelMessage,
    Query,
    Sample,
    decode_label,
    decode_sample,
    encode,
)

REASONS = set(get_args(DeadLetterReason))
ASKED_AT = datetime(2024, 1, 1, tzinfo=UTC)
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# -- strategies ----------------------------------------------------------------------------

#: Integers well past a float's range (10**400) included: JSON has no size limit on them.
big_integers = st.integers() | st.integers(min_value=-(10**400), max_value=10**400)
#: Any text, lone surrogates included (they reach Python through ``\\ud800`` escapes).
any_text = st.text(st.characters(codec=None), max_size=30)
json_scalars = (
    st.none()
    | st.booleans()
    | big_integers
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)


def _dump(value: Any, ascii_only: bool) -> bytes:
    """JSON text of ``value``; non-ASCII text raw (lone surrogates become invalid UTF-8)."""
    text = json.dumps(value, ensure_ascii=ascii_only)  # NaN and Infinity as Python writes them
    return text.encode("utf-8", errors="surrogatepass")


#: Objects shaped like samples and labels, with values of any type: these reach the
#: validators, not just the parser, and a good share of them decode.
feature_like = st.one_of(st.dictionaries(any_text, json_scalars, max_size=6), json_values)
sample_like = st.fixed_dictionaries(
    {"id": st.one_of(st.text(min_size=1, max_size=8), json_values), "features": feature_like},
    optional={"timestamp": json_values, "metadata": json_values},
)
label_like = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(min_size=1, max_size=8), json_values),
        "label": st.one_of(json_scalars, json_values),
    },
    optional={"annotator": st.one_of(st.text(max_size=8), json_values), "features": feature_like},
)

ids = st.text(min_size=1, max_size=MAX_ID_LENGTH)
feature_values = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
features = st.dictionaries(st.text(min_size=1, max_size=20), feature_values, max_size=8)
metadata_values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
valid_samples = st.builds(
    Sample,
    id=ids,
    features=features,
    timestamp=st.none() | st.datetimes() | st.datetimes(timezones=st.just(UTC)),
    metadata=st.none()
    | st.dictionaries(st.text(min_size=1, max_size=20), metadata_values, max_size=4),
)
valid_labels = st.builds(
    LabelMessage,
    id=ids,
    label=st.text(min_size=1, max_size=256),
    annotator=st.none() | st.text(min_size=1, max_size=40),
    features=st.none() | features,
)

# -- helpers -------------------------------------------------------------------------------


def _trained_learner() -> ActiveLearner:
    """A logistic learner (the service's default model) that has learned both classes."""
    learner = ActiveLearner(LearnerConfig(strategy=StrategyConfig(budget=1.0, warmup=0)))
    for i in range(20):
        x = {"x": float(i), "y": float(i % 3), "colour": "red" if i % 2 else "blue"}
        learner.learn(LabelMessage(id=f"train-{i}", label=str(i % 2), features=x), now=0.0)
    return learner


def _decode_or_reason(decode: Any, raw: bytes, max_bytes: int = 1_000_000) -> Any:
    """The decoded message, or the ``InvalidMessage`` (anything else propagates and fails)."""
    try:
        return decode(raw, max_bytes)
    except InvalidMessage as error:
        assert error.reason in REASONS
        assert error.detail
        error.detail.encode()  # it travels as a dead-letter header
        return error


def _usable_sample(sample: Sample) -> None:
    """What the service does with a decoded sample must not raise."""
    for learner in (ActiveLearner(LearnerConfig()), _trained_learner()):
        scored = learner.score(sample, now=0.0)
        assert all(math.isfinite(p) for p in scored.probabilities.values())
        encode(scored.prediction(sample, learner.labels_learned))
        # Every sample may be queried: its features must travel to the oracle.
        encode(
            Query(
                id=sample.id,
                features=sample.features,
                predicted_label=scored.label,
                probabilities=scored.probabilities,
                uncertainty=scored.uncertainty,
                strategy="adaptive",
                reason="uncertain",
                threshold=None,
                created_at=ASKED_AT,
            )
        )
    sample.id.encode()  # the key of its prediction and query
    encode(sample)


def _usable_label(label: LabelMessage) -> None:
    learner = _trained_learner()
    # Refused by the learner (features that would overflow it) is fine: the service
    # dead-letters it as model_error, and the model is unchanged.
    with contextlib.suppress(ModelError):
        learner.learn(label, now=0.0)
    scored = learner.score(Sample(id="probe", features={"x": 1.0, "y": 2.0}), now=0.0)
    assert all(math.isfinite(p) for p in scored.probabilities.values())
    label.id.encode()


# -- never anything but InvalidMessage -----------------------------------------------------


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=200), max_bytes=st.integers(min_value=1, max_value=400))
@example(raw=b"", max_bytes=1024)
@example(raw=b"\xff\xfe", max_bytes=1024)
@example(raw=b"[" * 100_000, max_bytes=1_000_000)
def test_arbitrary_bytes_decode_or_raise_invalid_message(raw: bytes, max_bytes: int) -> None:
    for decode in (decode_sample, decode_label):
        outcome = _decode_or_reason(decode, raw, max_bytes)
        if len(raw) > max_bytes:
            assert isinstance(outcome, InvalidMessage)
            assert outcome.reason == "too_large"


@PROPERTY_SETTINGS
@given(value=json_values, ascii_only=st.booleans())
def test_arbitrary_json_decodes_or_raises_invalid_message(value: Any, ascii_only: bool) -> None:
    raw = _dump(value, ascii_only)
    for decode in (decode_sample, decode_label):
        _decode_or_reason(decode, raw)


@PROPERTY_SETTINGS
@given(value=sample_like, ascii_only=st.booleans())
@example(value={"id": "big", "features": {"x": 10**400}}, ascii_only=True)
@example(value={"id": "surrogate", "features": {"\ud800": 1}}, ascii_only=True)
def test_sample_shaped_json_is_refused_or_usable(value: dict[str, Any], ascii_only: bool) -> None:
    outcome = _decode_or_reason(decode_sample, _dump(value, ascii_only))
    if isinstance(outcome, Sample):
        _usable_sample(outcome)


@PROPERTY_SETTINGS
@given(value=label_like, ascii_only=st.booleans())
@example(value={"id": "a", "label": 10**400}, ascii_only=True)
@example(value={"id": "a", "label": 1.5e300, "features": {"x": 1e308}}, ascii_only=True)
def test_label_shaped_json_is_refused_or_usable(value: dict[str, Any], ascii_only: bool) -> None:
    outcome = _decode_or_reason(decode_label, _dump(value, ascii_only))
    if isinstance(outcome, LabelMessage):
        _usable_label(outcome)


@pytest.mark.parametrize("digits", [4301, 20_000])
@pytest.mark.parametrize("decode", [decode_sample, decode_label])
def test_integers_longer_than_python_parses_are_invalid(digits: int, decode: Any) -> None:
    # Python refuses to turn more than 4300 digits into an int (a ValueError, not a
    # JSONDecodeError): the decoder must still answer with InvalidMessage.
    number = b"9" * digits
    raw = b'{"id": "a", "features": {"x": ' + number + b'}, "label": ' + number + b"}"
    with pytest.raises(InvalidMessage):
        decode(raw)


def test_integer_features_beyond_the_float_range_are_invalid() -> None:
    # A linear model multiplies features by float weights: 10**400 would raise
    # OverflowError in the middle of scoring.
    with pytest.raises(InvalidMessage) as raised:
        decode_sample(json.dumps({"id": "a", "features": {"x": 10**400}}).encode())
    assert raised.value.reason == "invalid_sample"
    assert "features.x" in raised.value.detail
    largest = decode_sample(json.dumps({"id": "b", "features": {"x": 10**308}}).encode())
    _usable_sample(largest)


# -- valid messages round-trip -------------------------------------------------------------


@PROPERTY_SETTINGS
@given(sample=valid_samples)
def test_valid_samples_round_trip(sample: Sample) -> None:
    assert decode_sample(encode(sample)) == sample


@PROPERTY_SETTINGS
@given(label=valid_labels)
def test_valid_labels_round_trip(label: LabelMessage) -> None:
    assert decode_label(encode(label)) == label


@PROPERTY_SETTINGS
@given(sample=valid_samples, slack=st.integers(min_value=0, max_value=10))
def test_the_size_limit_is_exact(sample: Sample, slack: int) -> None:
    raw = encode(sample)
    assume(len(raw) > slack + 1)
    assert decode_sample(raw, len(raw) + slack) == sample
    with pytest.raises(InvalidMessage) as raised:
        decode_sample(raw, len(raw) - 1 - slack)
    assert raised.value.reason == "too_large"
