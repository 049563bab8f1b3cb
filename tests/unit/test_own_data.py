"""Your own data and model: files, field mappings, model factories, strategy changes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.durability import LocalCheckpointStore
from stream_al.mapping import FieldMapping
from stream_al.schemas import InvalidMessage, LabelMessage, Sample, decode_label, decode_sample
from stream_al.service.checkpointing import Checkpointer, CheckpointRefused
from stream_al.settings import Settings
from stream_al.sim.datasets import Example, stream
from stream_al.sim.files import DataFileError, read_examples
from stream_al.sim.simulate import simulate
from tests import text_models

# -- files ------------------------------------------------------------------------------


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_csv_of_numbers_is_read_as_numbers_and_learns_as_the_typed_stream(
    tmp_path: Path,
) -> None:
    # Text that stays text would become categories; read back typed, the file gives
    # exactly the simulation of the typed stream it was written from.
    examples = list(stream("bananas", limit=2000))
    path = tmp_path / "bananas.csv"
    _write_csv(path, [{**e.features, "y": e.label} for e in examples])
    data = read_examples(path, target="y")
    assert {c.kind for c in data.columns} == {"number"}
    config = LearnerConfig()
    from_file = simulate(data.examples, config)
    renamed = [
        Example(f.id, e.features, e.label) for e, f in zip(examples, data.examples, strict=True)
    ]
    typed = simulate(renamed, config)
    assert (from_file.accuracy, from_file.labels) == (typed.accuracy, typed.labels)
    as_text = [
        Example(e.id, {k: str(v) for k, v in e.features.items()}, e.label) for e in data.examples
    ]
    assert simulate(as_text, config).accuracy < from_file.accuracy - 0.02


def test_types_missing_values_and_odd_values_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    rows: list[dict[str, object]] = [
        {"id": f"r{i}", "n": "n/a" if i == 3 else i / 2, "b": i % 2 == 0, "s": "x", "y": "a"}
        for i in range(60)
    ]
    rows[5]["n"] = ""
    rows[7]["s"] = ""
    _write_csv(path, rows)
    data = read_examples(path, target="y", id_column="id")
    kinds = {c.name: c.kind for c in data.columns}
    assert kinds == {"n": "number", "b": "boolean", "s": "string"}
    assert data.examples[0].id == "r0" and data.examples[0].features == {
        "n": 0.0,
        "b": True,
        "s": "x",
    }
    assert "n" not in data.examples[3].features and "n" not in data.examples[5].features
    assert "s" not in data.examples[7].features
    report = data.report()
    assert "1 missing" in report and "1 values not numbers, read as missing: 'n/a' x1" in report


def test_json_lines_keep_their_types_and_null_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        {"x": 1.5, "c": "red", "ok": True, "y": 1},
        {"x": None, "c": "blue", "ok": False, "y": 0},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    data = read_examples(path, target="y")
    assert [e.features for e in data.examples] == [
        {"x": 1.5, "c": "red", "ok": True},
        {"c": "blue", "ok": False},
    ]
    assert [e.label for e in data.examples] == ["1", "0"]


def test_parquet_is_read_through_pyarrow(tmp_path: Path) -> None:
    parquet = pytest.importorskip("pyarrow.parquet")
    import pyarrow

    path = tmp_path / "t.parquet"
    parquet.write_table(pyarrow.table({"x": [1.0, None], "y": ["a", "b"]}), path)
    assert [e.features for e in read_examples(path, target="y").examples] == [{"x": 1.0}, {}]


@pytest.mark.parametrize(
    ("name", "content", "target", "says"),
    [
        ("a.txt", "x\n1\n", "x", "unknown file type '.txt'"),
        ("a.csv", "x,y\n1,a\n", "label", "--target 'label' is not a column of a.csv"),
        ("a.csv", "x,y\n1,\n", "y", "row 1: the target 'y' is empty"),
        ("a.jsonl", '{"x": 1}\nnot json\n', "x", "line 2: not JSON"),
    ],
)
def test_a_file_that_cannot_be_read_says_why(
    tmp_path: Path, name: str, content: str, target: str, says: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataFileError) as refused:
        read_examples(path, target=target)
    assert says in str(refused.value)


# -- field mapping ----------------------------------------------------------------------

FLAT = b'{"id": "o-1", "amount": 3.0, "country": "NL", "note": null}'


def test_a_flat_event_is_read_through_a_mapping() -> None:
    mapping = FieldMapping(format="mapped", id_field="id", metadata_fields=["country"])
    sample = decode_sample(FLAT, mapping=mapping)
    assert sample == Sample(id="o-1", features={"amount": 3.0}, metadata={"country": "NL"})
    with pytest.raises(InvalidMessage) as envelope_refuses:
        decode_sample(FLAT)
    assert envelope_refuses.value.detail == "features: Field required"


def test_a_mapping_reads_nested_features_the_key_and_time() -> None:
    mapping = FieldMapping(format="mapped", features_field="payload", timestamp_field="meta.at")
    raw = b'{"payload": {"a": 1, "b": {"c": "x"}}, "meta": {"at": "2026-01-02T03:04:05Z"}}'
    sample = decode_sample(raw, mapping=mapping, key=b"k-9")
    assert sample.id == "k-9" and sample.features == {"a": 1, "b.c": "x"}
    assert sample.timestamp is not None and sample.timestamp.year == 2026
    listed = FieldMapping(format="mapped", id_field="n", feature_fields=["payload.a"])
    assert decode_sample(b'{"n": 7, "payload": {"a": 2, "z": 0}}', mapping=listed).features == {
        "payload.a": 2
    }


@pytest.mark.parametrize(
    ("id_field", "raw", "key", "says"),
    [
        (None, b'{"amount": 3}', None, "the record has no key"),
        ("id", b'{"id": null, "amount": 3}', b"k", "the id field 'id' is missing"),
        ("id", b"[1, 2]", b"k", "must be a JSON object"),
        ("id", b'{"id": "a", "tags": [1, 2]}', None, "features.tags"),
    ],
)
def test_an_event_the_mapping_cannot_read_is_an_invalid_sample(
    id_field: str | None, raw: bytes, key: bytes | None, says: str
) -> None:
    mapping = FieldMapping(format="mapped", id_field=id_field)
    with pytest.raises(InvalidMessage) as refused:
        decode_sample(raw, mapping=mapping, key=key)
    assert refused.value.reason == "invalid_sample"
    assert says in refused.value.detail


def test_labels_of_a_teams_own_topic_are_read_through_the_mapping() -> None:
    mapping = FieldMapping(id_field="order", label_field="is_fraud", annotator_field="by")
    label = decode_label(b'{"order": "o-1", "is_fraud": true, "by": "ann"}', mapping=mapping)
    assert label == LabelMessage(id="o-1", label="true", annotator="ann")


# -- any river model ----------------------------------------------------------------------


def test_a_model_factory_gives_any_river_pipeline_here_text() -> None:
    config = LearnerConfig(
        model=ModelConfig(factory="tests.text_models:bag_of_words"),
        strategy=StrategyConfig(budget=0.5, warmup=4),
    )
    result = simulate(text_models.reviews(400, seed=3), config)
    assert result.accuracy > 0.8
    assert "BagOfWords" in ActiveLearner(config).model.describe()


def test_a_measure_the_factory_model_cannot_serve_is_named() -> None:
    for measure, needs in [("vote-entropy", "committee"), ("expected-gradient-length", "linear")]:
        with pytest.raises(ValueError, match=f"needs a {needs} model.*model.factory"):
            ActiveLearner(
                LearnerConfig(
                    model=ModelConfig(factory="tests.text_models:bag_of_words"),
                    measure=measure,  # type: ignore[arg-type]
                )
            )
    committee = LearnerConfig(
        model=ModelConfig(factory="tests.text_models:committee"), measure="vote-entropy"
    )
    assert ActiveLearner(committee).model.is_committee


@pytest.mark.parametrize(
    ("factory", "says"),
    [
        ("tests.text_models:nothing_here", "has no nothing_here"),
        ("no_such_module:make", "cannot import no_such_module"),
        ("tests.text_models:not_a_classifier", "not a river classifier"),
    ],
)
def test_a_factory_that_gives_no_classifier_is_refused(factory: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        ActiveLearner(LearnerConfig(model=ModelConfig(factory=factory)))


# -- change what may change ---------------------------------------------------------------


def _checkpointed(tmp_path: Path, learner_config: LearnerConfig) -> ActiveLearner:
    settings = Settings(learner=learner_config, checkpoint={"directory": tmp_path / "ckpt"})
    learner = ActiveLearner(learner_config)
    examples = list(stream("sea", limit=3000))
    for example in examples:
        scored = learner.score(Sample(id=example.id, features=example.features), now=0.0)
        for query in scored.queries:
            learner.learn(LabelMessage(id=query.id, label=example.label), now=0.0)
    Checkpointer(settings, LocalCheckpointStore(tmp_path / "ckpt")).save(learner, {})
    return learner


def test_a_checkpoint_takes_a_new_budget_and_keeps_its_model(tmp_path: Path) -> None:
    old = LearnerConfig(strategy=StrategyConfig(budget=0.1))
    before = _checkpointed(tmp_path, old)
    new = LearnerConfig(strategy=StrategyConfig(budget=0.2, exploration=0.2))
    settings = Settings(learner=new, checkpoint={"directory": tmp_path / "ckpt"})
    restored, _ = Checkpointer(settings, LocalCheckpointStore(tmp_path / "ckpt")).restore()
    assert restored is not None and restored.config == new
    probe = {"0": 3.0, "1": 5.0, "2": 1.0}
    assert restored.model.predict_proba_one(probe) == before.model.predict_proba_one(probe)
    ledger = restored.policy.ledger
    assert ledger.seen == 3000 and ledger.queried == before.policy.ledger.queried
    assert ledger.deficit == pytest.approx(before.policy.ledger.deficit)
    asked = 0
    for example in stream("sea", seed=7, limit=4000):
        scored = restored.score(Sample(id="n" + example.id, features=example.features), now=1.0)
        asked += len(scored.queries)
    assert asked / 4000 == pytest.approx(0.2, abs=0.02)  # the new budget, from now on


def test_a_checkpoint_of_another_model_is_still_refused(tmp_path: Path) -> None:
    _checkpointed(tmp_path, LearnerConfig())
    other = LearnerConfig(model=ModelConfig(name="naive-bayes"))
    settings = Settings(learner=other, checkpoint={"directory": tmp_path / "ckpt"})
    with pytest.raises(CheckpointRefused, match=r"model.name: 'logreg' -> 'naive-bayes'"):
        Checkpointer(settings, LocalCheckpointStore(tmp_path / "ckpt")).restore()
