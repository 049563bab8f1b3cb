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

import pytest

from tests.unit.decode_corpus import GOLDEN, cases, encodings, outcome

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
