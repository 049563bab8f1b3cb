"""An adversarial corpus of wire messages, and what the decoders make of each.

``golden/decode_corpus.json`` was written by the decoders *before* their fast path
existed (``python -m tests.unit.decode_corpus``): for every input the dead-letter reason
and detail, or the decoded message (its ``repr``, which tells ``True`` from ``1`` and
``-0.0`` from ``0.0``); for every prediction and query built from the decoded samples the
exact bytes ``encode`` wrote. ``test_decode_corpus.py`` checks that today's code gives
the same for every case. Regenerate only for a change meant to change an outcome.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream_al.mapping import FieldMapping
from stream_al.schemas import (
    InvalidMessage,
    Prediction,
    Query,
    decode_label,
    decode_sample,
    encode,
)

GOLDEN = Path(__file__).parent / "golden" / "decode_corpus.json"

MAPPINGS: dict[str, FieldMapping] = {
    "flat": FieldMapping(format="mapped", id_field="id", metadata_fields=["country"]),
    "nested": FieldMapping(
        format="mapped",
        labels_format="mapped",
        features_field="payload",
        timestamp_field="meta.at",
        label_field="is_fraud",
        annotator_field="by",
    ),
    "listed": FieldMapping(format="mapped", id_field="n", feature_fields=["payload.a"]),
}

#: (kind, raw, max_bytes, mapping name or None, key)
Case = tuple[str, bytes, int, str | None, bytes | None]
LIMIT = 1_000_000


def _doc(value: Any) -> bytes:
    return json.dumps(value).encode()


def _sample(features: str, extra: str = "") -> bytes:
    return ('{"id": "a", "features": ' + features + extra + "}").encode()


def _label(label: str, extra: str = "") -> bytes:
    return ('{"id": "a", "label": ' + label + extra + "}").encode()


NUMBERS = [
    "0", "-0", "0.0", "-0.0", "0e0", "-0e0", "1E+2", "1e-2", "1.5", "-1.5", "1e308",
    "1.7976931348623157e308", "1.7976931348623159e308", "1e309", "1e400", "-1e400",
    "1e-400", "-1e-999", "5e-324", "2.2250738585072014e-308", "1.0000000000000002",
    "0.1", "0.30000000000000004", "123456789012345678", "9007199254740993",
    str(2**63 - 1), str(2**63), str(-(2**63)), str(-(2**63) - 1), str(2**64), str(2**64 + 1),
    str(10**30), str(10**308), str(10**309), "9" * 400, "-" + "9" * 400, "9" * 4300,
    "9" * 4301, "9" * 5000, "NaN", "Infinity", "-Infinity", "nan", "inf", "01", "1.",
    ".5", "+1", "1e", "0x10", "true", "false", "null", '"1"', '"NaN"', "[]", "{}", '""',
]  # fmt: skip


def _named_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}

    def sample(name: str, raw: bytes, max_bytes: int = LIMIT, key: bytes | None = None) -> None:
        cases[f"sample/{name}"] = ("sample", raw, max_bytes, None, key)

    def label(name: str, raw: bytes, max_bytes: int = LIMIT) -> None:
        cases[f"label/{name}"] = ("label", raw, max_bytes, None, None)

    # From tests/unit/test_schemas.py and the property tests' examples.
    sample("valid", _sample('{"b": true, "i": 3, "f": 0.5, "s": "red"}'))
    sample("ts-meta", _sample("{}", ', "timestamp": "2026-01-02T03:04:05Z", "metadata": {"n": 1}'))
    sample("not-utf8", b"\xff\xfe\x00")
    sample("empty", b"")
    sample("spaces", b"   ")
    sample("not-json", b"{not json")
    sample("deep-100k", b"[" * 100_000)
    sample("deep-30k-closed", b"[" * 30_000 + b"]" * 30_000)
    for depth in (2, 50, 199, 200, 201, 255, 256, 400, 1000, 5000):
        nested = "[" * depth + "1" + "]" * depth
        sample(f"deep-feature-{depth}", _sample('{"x": ' + nested + "}"))
        objects = '{"a": ' * depth + "1" + "}" * depth
        sample(f"deep-object-{depth}", _sample("{}", ', "metadata": ' + objects))
    sample("nan", _sample('{"x": NaN}'))
    sample("inf", _sample('{"x": Infinity}'))
    sample("list", _sample('{"x": [1, 2]}'))
    sample("dict", _sample('{"x": {"deep": 1}}'))
    sample("id-empty", b'{"id": "", "features": {}}')
    sample("id-int", b'{"id": 7, "features": {}}')
    sample("id-float", b'{"id": 7.5, "features": {}}')
    sample("id-bool", b'{"id": true, "features": {}}')
    sample("id-null", b'{"id": null, "features": {}}')
    sample("id-257", _doc({"id": "x" * 257, "features": {}}))
    sample("id-256", _doc({"id": "x" * 256, "features": {}}))
    sample("id-60k", _doc({"id": "i" * 60_000, "features": {"a": 1}}))
    sample("no-id", b'{"features": {}}')
    sample("no-features", b'{"id": "a"}')
    sample("features-list", b'{"id": "a", "features": [1, 2]}')
    sample("features-null", b'{"id": "a", "features": null}')
    sample("features-string", b'{"id": "a", "features": "x"}')
    for i, value in enumerate(["just a string", [1, 2, 3], 42, None, True, 1.5]):
        sample(f"non-object-{i}", _doc(value))
    sample("nulls-dropped", b'{"id": "a", "features": {"x": null, "y": 2}, "source": "web"}')
    sample("feature-name-empty", _sample('{"": 1}'))
    sample("feature-name-257", _doc({"id": "a", "features": {"n" * 257: 1}}))
    sample("string-4096", _doc({"id": "a", "features": {"s": "x" * 4096}}))
    sample("string-4097", _doc({"id": "a", "features": {"s": "x" * 4097}}))
    sample("string-5000", _doc({"id": "a", "features": {"a": "x" * 5000}}))
    sample("features-10000", _doc({"id": "a", "features": {f"f{i}": i for i in range(10_000)}}))
    sample("features-10001", _doc({"id": "a", "features": {f"f{i}": i for i in range(10_001)}}))
    many = _doc({"id": "a", "features": {f"f{i}": i for i in range(200)}})
    sample("too-large", many, max_bytes=len(many) - 1)
    sample("just-fits", many, max_bytes=len(many))
    sample("huge", _doc({"id": "a", "features": {"a": "x" * 1_100_000}}))
    sample("big-key-bad-value", b"\xff", key=b"k" * 200_000)
    for i, number in enumerate(NUMBERS):
        sample(f"number-{i}-{number[:12]}", _sample('{"a": 1.0, "x": ' + number + "}"))
        sample(
            f"meta-number-{i}-{number[:12]}", _sample("{}", ', "metadata": {"m": ' + number + "}")
        )
        label(f"number-{i}-{number[:12]}", _label(number))
    # Duplicate keys, BOMs and other encodings, surrogates, escapes.
    sample("dup-id", b'{"id": "a", "id": "b", "features": {"x": 1}}')
    sample("dup-feature", b'{"id": "a", "features": {"x": 1, "x": "two"}}')
    sample("dup-features", b'{"id": "a", "features": {"x": 1}, "features": {"y": 2}}')
    sample("bom-utf8", b"\xef\xbb\xbf" + _sample('{"x": 1}'))
    sample("utf16-le", _sample('{"x": 1}').decode().encode("utf-16-le"))
    sample("utf16-bom", _sample('{"x": 1}').decode().encode("utf-16"))
    sample("utf32", _sample('{"x": 1}').decode().encode("utf-32"))
    sample("raw-surrogate-utf8", b'{"id": "a", "features": {"c": "\xed\xa0\x80"}}')
    sample("overlong-utf8", b'{"id": "a", "features": {"c": "\xc0\xaf"}}')
    sample("truncated-utf8", b'{"id": "a", "features": {"c": "\xe2\x82"}}')
    sample("lone-high", rb'{"id": "poison-1", "features": {"c": "\ud800", "0": 0.5}}')
    sample("lone-low-key", rb'{"id": "p", "features": {"\uDFFF": 1}}')
    sample("lone-in-id", rb'{"id": "p\udc00", "features": {}}')
    sample("lone-in-meta", rb'{"id": "p", "features": {}, "metadata": {"note": "\ud83d"}}')
    sample("lone-in-ignored", rb'{"id": "p", "features": {}, "extra": "\ud800"}')
    sample("pair", rb'{"id": "p", "features": {"c": "\ud83d\ude00"}}')
    sample("reversed-pair", rb'{"id": "p", "features": {"c": "\ude00\ud83d"}}')
    sample("escapes", rb'{"id": "a\u0000\/\"", "features": {"c": "\t\n\u00e9\u20ac"}}')
    sample("raw-control", b'{"id": "a\x01", "features": {}}')
    sample("raw-unicode", '{"id": "é€😀", "features": {"ключ": "значение"}}'.encode())
    sample("bad-escape", rb'{"id": "a\q", "features": {}}')
    sample("trailing-comma", b'{"id": "a", "features": {"x": 1,}}')
    sample("trailing-garbage", b'{"id": "a", "features": {}} x')
    sample("two-docs", b'{"id": "a", "features": {}}{"id": "b", "features": {}}')
    sample("trailing-ws", b'{"id": "a", "features": {}} \n\t\r ')
    sample("leading-ws", b' \n{"id": "a", "features": {}}')
    sample("single-quotes", b"{'id': 'a', 'features': {}}")
    sample("comment", b'{"id": "a", /* c */ "features": {}}')
    # Timestamps and metadata.
    for i, stamp in enumerate(
        [
            '"2026-01-02T03:04:05Z"', '"2026-01-02T03:04:05+02:00"', '"2026-01-02T03:04:05"',
            '"2026-01-02T03:04:05.123456789Z"', '"2026-01-02"', '"2026-01-02 03:04:05"',
            '"yesterday"', '""', "1700000000", "1700000000.5", "-1", "0", "1e20", "1e400",
            '"1700000000"', "true", "null", "[]", '"2026-13-01T00:00:00Z"',
            '"9999-12-31T23:59:59Z"',
            "17000000000000", '"2026-01-02T03:04:05-00:00"', '"2026-01-02T03:04:05.5+05:45"',
        ]
    ):  # fmt: skip
        sample(f"timestamp-{i}", _sample('{"x": 1}', ', "timestamp": ' + stamp))
    for i, meta in enumerate(
        [
            '{"s": "web", "i": 1, "f": 1.5, "b": false, "n": null}', '{"m": [1]}',
            '{"m": {"a": 1}}', '{"": 1}', "[]", '"x"', "null",
            "{" + ", ".join(f'"k{i}": {i}' for i in range(1001)) + "}",
            "{" + ", ".join(f'"k{i}": {i}' for i in range(1000)) + "}",
            '{"big": ' + str(10**30) + ', "neg": -0.0, "tiny": 5e-324}',
        ]
    ):  # fmt: skip
        sample(f"metadata-{i}", _sample('{"x": 1}', ', "metadata": ' + meta))
    # Labels (tests/unit/test_schemas.py, tests/integration/test_bad_input.py).
    for i, value in enumerate(["x", "", "s" * 256, "s" * 257, None, [1], {"class": "x"}]):
        label(f"value-{i}", _doc({"id": "a", "label": value}))
    label("missing", b'{"id": "a"}')
    label("skip", b'{"id": "a", "skipped": true}')
    label("skip-and-label", b'{"id": "a", "label": "x", "skipped": true}')
    for i, flag in enumerate(['"true"', "1", "0", '"yes"', "1.0", '"on"', "2", "null", '"t"']):
        label(f"skipped-{i}", _label("null", ', "skipped": ' + flag))
        label(f"corrects-{i}", _label('"x"', ', "corrects": ' + flag))
    label("annotator", b'{"id": "a", "label": "x", "annotator": "ann", "features": {"f": 1}}')
    label("annotator-empty", b'{"id": "a", "label": "x", "annotator": ""}')
    label("annotator-int", b'{"id": "a", "label": "x", "annotator": 3}')
    label("features-list", b'{"id": "a", "label": "x", "features": [1]}')
    label("features-nan", b'{"id": "a", "label": "x", "features": {"a": NaN}}')
    label("features-nulls", b'{"id": "a", "label": "x", "features": {"x": null}, "by": "me"}')
    label("id-int", b'{"id": 7, "label": "x"}')
    label("no-id", b'{"label": "x"}')
    label("array", b'["a", "x"]')
    label("deep", _label("[" * 300 + "]" * 300))
    label("not-utf8", b"\xff")
    label("bom", b"\xef\xbb\xbf" + _label('"x"'))
    label("dup-label", b'{"id": "a", "label": "x", "label": "y"}')
    label("lone-surrogate", rb'{"id": "a", "label": "\ud800"}')
    label("huge", _doc({"id": "a", "label": "x", "annotator": "s" * 1_100_000}))
    # Mapped formats (stream_al/mapping.py).
    flat = b'{"id": "o-1", "amount": 3.0, "country": "NL", "card": {"kind": "visa"}}'
    for name, raw in [
        ("flat", flat),
        ("flat-no-id", b'{"amount": 3.0}'),
        ("flat-array", b"[1]"),
        ("flat-nan", b'{"id": "o", "amount": NaN}'),
        ("flat-big", b'{"id": "o", "amount": ' + b"9" * 400 + b"}"),
        ("flat-deep", b'{"id": "o", "a": ' + b'{"a": ' * 300 + b"1" + b"}" * 300 + b"}"),
        ("flat-list", b'{"id": "o", "a": [1]}'),
        ("flat-id-int", b'{"id": 7, "a": 1}'),
    ]:
        cases[f"mapped/{name}"] = ("sample", raw, LIMIT, "flat", b"key-1")
    nested = b'{"payload": {"a": 1, "b": "x"}, "meta": {"at": "2026-01-02T03:04:05Z"}}'
    for name, raw in [
        ("nested", nested),
        ("nested-no-payload", b'{"meta": {"at": 1}}'),
        ("nested-payload-list", b'{"payload": [1]}'),
        ("nested-bad-time", b'{"payload": {"a": 1}, "meta": {"at": "never"}}'),
    ]:
        cases[f"mapped/{name}"] = ("sample", raw, LIMIT, "nested", b"k-9")
        cases[f"mapped-key-none/{name}"] = ("sample", raw, LIMIT, "nested", None)
    for name, raw in [
        ("label", b'{"is_fraud": true, "by": "ann", "payload": {"a": 1}}'),
        ("label-missing", b'{"by": "ann"}'),
        ("label-number", b'{"is_fraud": 1.0}'),
        ("label-nan", b'{"is_fraud": NaN}'),
    ]:
        cases[f"mapped-label/{name}"] = ("label", raw, LIMIT, "nested", b"k-1")
    cases["mapped/listed"] = (
        "sample",
        b'{"n": 7, "payload": {"a": 2, "z": 0}}',
        LIMIT,
        "listed",
        None,
    )
    return cases


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.15:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3 and roll < 0.3:
        return {_random_text(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return rng.choice(
        [
            None, True, False, rng.randint(-(10**20), 10**20), rng.randint(-5, 5),
            10 ** rng.randint(15, 400), rng.uniform(-1e3, 1e3), rng.choice([1e308, 5e-324, -0.0]),
            float("nan"), float("inf"), _random_text(rng), rng.random(),
        ]
    )  # fmt: skip


def _random_text(rng: random.Random) -> str:
    alphabet = 'ab "\\/\t\u00e9\u20ac\U0001f600\ud800\udfff\x00'
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))


def _random_cases(n: int = 400, seed: int = 12) -> dict[str, Case]:
    """Shaped like samples and labels, with values of any type (seeded)."""
    rng = random.Random(seed)
    cases: dict[str, Case] = {}
    for i in range(n):
        kind = "sample" if i % 2 == 0 else "label"
        doc: dict[str, Any] = {"id": rng.choice(["a", "b-1", _random_value(rng)])}
        if kind == "sample":
            doc["features"] = {
                _random_text(rng) or "x": _random_value(rng) for _ in range(rng.randint(0, 4))
            }
            if rng.random() < 0.3:
                doc["timestamp"] = rng.choice(["2026-01-02T03:04:05Z", _random_value(rng)])
            if rng.random() < 0.3:
                doc["metadata"] = {"m": _random_value(rng)}
        else:
            doc["label"] = rng.choice(["x", _random_value(rng)])
            if rng.random() < 0.3:
                doc["skipped"] = _random_value(rng)
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
        cases[f"random/{i}"] = (kind, text.encode("utf-8", "surrogatepass"), LIMIT, None, b"k")
    return cases


def cases() -> dict[str, Case]:
    return _named_cases() | _random_cases()


def outcome(case: Case) -> list[Any]:
    """``["ok", repr(message)]`` or ``["dead", reason, detail]`` (or what else was raised)."""
    kind, raw, max_bytes, mapping, key = case
    decode = decode_sample if kind == "sample" else decode_label
    try:
        message = decode(raw, max_bytes, MAPPINGS[mapping] if mapping else None, key)
    except InvalidMessage as error:
        return ["dead", error.reason, _short(error.detail)]
    except Exception as error:
        return ["raised", type(error).__name__, str(error)]
    return ["ok", _short(repr(message))]


def _short(text: str) -> str:
    """Long texts by digest (the golden stays small), keeping their start to read."""
    if len(text) <= 2000:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{text[:200]}... sha256:{digest}"


ASKED_AT = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def encodings(case: Case) -> dict[str, str] | None:
    """The bytes of the prediction and the query built from a decoded sample."""
    kind, raw, max_bytes, mapping, key = case
    if kind != "sample":
        return None
    try:
        sample = decode_sample(raw, max_bytes, MAPPINGS[mapping] if mapping else None, key)
    except InvalidMessage:
        return None
    out = {}
    for i, (label, proba, uncertainty) in enumerate(PREDICTIONS):
        prediction = Prediction(
            id=sample.id,
            label=label,
            probabilities=proba,
            uncertainty=uncertainty,
            queried=bool(i % 2),
            model_version=i * 1000,
            timestamp=sample.timestamp,
            metadata=sample.metadata,
        )
        out[f"prediction-{i}"] = _text(prediction)
    query = Query(
        id=sample.id,
        features=sample.features,
        predicted_label="a",
        probabilities={"a": 0.25, "b": 0.75},
        uncertainty=0.5,
        strategy="adaptive",
        reason="uncertain",
        threshold=0.125,
        created_at=ASKED_AT,
        classes=("a", "b"),
        timestamp=sample.timestamp,
        metadata=sample.metadata,
    )
    out["query"] = _text(query)
    return out


def _text(message: Prediction | Query) -> str:
    try:
        return _short(encode(message).decode())
    except Exception as error:
        return f"raised {type(error).__name__}: {error}"


#: (label, probabilities, uncertainty): the floats a model may give.
PREDICTIONS: list[tuple[str | None, dict[str, float], float]] = [
    ("a", {"a": 0.75, "b": 0.25}, 0.5),
    (None, {}, 1.0),
    ("x", {"x": 1.0}, 1.0),
    ("b", {"a": 1e-300, "b": 1.0 - 1e-16}, 2.0000000000000002e-300),
    ("b", {"a": 5e-324, "b": 0.9999999999999999}, 0.0),
    ("c", {"a": 0.1, "b": 0.2, "c": 0.30000000000000004, "d": 0.39999999999999997}, 1 / 3),
    ("é€", {"é€": 0.5, "\U0001f600": 0.5, '"\\/': 0.0}, 1.0),
    ("a", {"a": 1e-7, "b": 123456.789}, 1e-5),
    ("0", {"0": -0.0, "1": 1.0}, 0.0),
]


def record() -> dict[str, Any]:
    golden = {}
    for name, case in cases().items():
        entry: dict[str, Any] = {"outcome": outcome(case)}
        encoded = encodings(case)
        if encoded is not None:
            entry["encoded"] = encoded
        golden[name] = entry
    return golden


def main() -> None:
    golden = record()
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True, ensure_ascii=True) + "\n")
    print(f"wrote {GOLDEN} ({len(golden)} cases)")


if __name__ == "__main__":
    main()
