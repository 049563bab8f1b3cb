"""ActiveLearner: scoring, deciding, joining labels, bookkeeping."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime

import pytest

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner, LabelStatus, ModelError
from stream_al.schemas import LabelMessage, Query, Sample
from stream_al.sim.datasets import stream


def config(**strategy: object) -> LearnerConfig:
    return LearnerConfig(strategy=StrategyConfig.model_validate({"budget": 0.1, **strategy}))


def test_a_cold_learner_asks_with_maximal_uncertainty() -> None:
    learner = ActiveLearner(config())
    scored = learner.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    assert scored.label is None and scored.probabilities == {}
    assert scored.uncertainty == 1.0
    assert scored.queried
    assert scored.queries[0].reason == "warm-up"
    assert "a" in learner.pending


def test_a_label_is_joined_with_the_features_kept_at_query_time() -> None:
    learner = ActiveLearner(config())
    learner.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    outcome = learner.learn(LabelMessage(id="a", label="yes"), now=5.0)
    assert outcome.status is LabelStatus.LEARNED
    assert outcome.asked_at == 0.0
    assert learner.labels_learned == 1
    assert "a" not in learner.pending
    assert learner.model.predict_proba_one({"x": 1.0}) == {"yes": 1.0}


def test_a_second_label_for_an_id_is_not_learned_twice() -> None:
    learner = ActiveLearner(config())
    learner.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    assert learner.learn(LabelMessage(id="a", label="yes"), now=1.0).status is LabelStatus.LEARNED
    again = learner.learn(LabelMessage(id="a", label="no", features={"x": 1.0}), now=2.0)
    assert again.status is LabelStatus.DUPLICATE
    assert learner.labels_learned == 1
    assert learner.model.classes == frozenset({"yes"})


def test_a_label_for_an_unknown_id_is_reported_not_learned() -> None:
    learner = ActiveLearner(config())
    assert learner.learn(LabelMessage(id="ghost", label="yes"), now=0.0).status is (
        LabelStatus.UNKNOWN_ID
    )
    assert learner.labels_learned == 0


def test_a_label_carrying_features_is_learned_even_if_never_queried() -> None:
    learner = ActiveLearner(config())
    outcome = learner.learn(LabelMessage(id="b", label="no", features={"x": 2.0}), now=0.0)
    assert outcome.status is LabelStatus.LEARNED
    assert outcome.correct is None  # no prediction was made for it
    assert learner.labels_learned == 1


def test_pending_queries_expire_after_their_time_to_live() -> None:
    learner = ActiveLearner(config().model_copy(update={"pending_ttl_seconds": 10.0}))
    learner.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    outcome = learner.learn(LabelMessage(id="a", label="yes"), now=11.0)
    assert outcome.status is LabelStatus.EXPIRED
    assert learner.pending.evicted == 1


def test_prequential_bookkeeping_records_whether_the_query_time_prediction_was_right() -> None:
    learner = ActiveLearner(config(warmup=100))
    for i, label in enumerate(["yes", "yes", "yes", "no"]):
        learner.score(Sample(id=str(i), features={"x": 1.0}), now=float(i))
        learner.learn(LabelMessage(id=str(i), label=label), now=float(i))
    # Predictions at query time: none (cold), yes, yes, yes -> right twice of four.
    assert learner.recent_accuracy.value == pytest.approx(2 / 4)


def test_same_inputs_give_the_same_decisions_and_a_pickled_learner_continues_identically() -> None:
    examples = list(stream("phishing", limit=600))

    def run(learner: ActiveLearner, part: list) -> list[tuple[str, bool]]:
        decisions = []
        for step, example in enumerate(part):
            scored = learner.score(Sample(id=example.id, features=example.features), now=step)
            decisions.append((example.id, scored.queried))
            for query in scored.queries:
                learner.learn(LabelMessage(id=query.id, label=example.label), now=step)
        return decisions

    first, second = ActiveLearner(config()), ActiveLearner(config())
    assert run(first, examples) == run(second, examples)

    third = ActiveLearner(config())
    head = run(third, examples[:300])
    restored = pickle.loads(pickle.dumps(third))
    assert head + run(restored, examples[300:]) == run(ActiveLearner(config()), examples)


@pytest.mark.parametrize(
    "model", ["logreg", "hoeffding-tree", "naive-bayes", "bagging-logreg", "adaptive-random-forest"]
)
def test_every_model_learns_through_the_learner(model: str) -> None:
    learner = ActiveLearner(
        LearnerConfig(
            model=ModelConfig(name=model, n_models=3),  # type: ignore[arg-type]
            strategy=StrategyConfig(budget=0.3),
        )
    )
    for step, example in enumerate(stream("phishing", limit=300)):
        scored = learner.score(Sample(id=example.id, features=example.features), now=step)
        for query in scored.queries:
            learner.learn(LabelMessage(id=query.id, label=example.label), now=step)
    assert learner.labels_learned > 50
    assert learner.recent_accuracy.value > 0.6


def test_summary_is_json_able_and_names_the_configuration() -> None:
    import json

    learner = ActiveLearner(config())
    learner.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    summary = json.loads(json.dumps(learner.summary()))
    assert summary["samples_seen"] == 1
    assert summary["config"]["strategy"]["budget"] == 0.1
    assert summary["queries_by_reason"] == {"warm-up": 1}


def test_a_label_outside_the_configured_classes_is_refused() -> None:
    learner = ActiveLearner(config().model_copy(update={"classes": ("yes", "no")}))
    learner.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    outcome = learner.learn(LabelMessage(id="a", label="maybe"), now=1.0)
    assert outcome.status is LabelStatus.INVALID
    assert "maybe" in outcome.detail
    assert learner.labels_learned == 0
    assert learner.learn(LabelMessage(id="a", label="no"), now=1.0).status is LabelStatus.LEARNED


def _logged_queries(learner: ActiveLearner, samples: list[Sample]) -> list[tuple[Query, int, int]]:
    """Score ``samples``; each query with the number and samples seen the service logs."""
    logged = []
    for sample in samples:
        before = learner.policy.queries
        scored = learner.score(sample, now=0.0)
        for number, query in enumerate(scored.queries, start=before + 1):
            logged.append((query, number, learner.samples_seen))
    return logged


def test_queries_read_back_after_a_restart_are_pending_and_counted_once() -> None:
    examples = list(stream("phishing", limit=600))
    samples = [Sample(id=e.id, features=e.features) for e in examples]
    truth = {e.id: e.label for e in examples}
    running = ActiveLearner(config(warmup=20))
    _logged_queries(running, samples[:200])
    checkpoint = pickle.loads(pickle.dumps(running))
    logged = _logged_queries(running, samples[200:])
    assert logged, "the stream after the checkpoint must have queries"

    # The restarted learner reads the oracle log back, twice (a replay after a seek), in
    # another order (the topic's partitions come one after the other), as the service does:
    # its own queries numbered beyond the checkpoint's count are charged.
    restarted: ActiveLearner = pickle.loads(pickle.dumps(checkpoint))
    made_before = checkpoint.policy.queries
    shuffled = random.Random(3).sample(logged, len(logged))
    for _ in range(2):
        for query, number, seen in shuffled:
            restarted.recover_query(query, seen, charge=number > made_before)
    assert restarted.policy.queries == running.policy.queries
    assert restarted.queries_by_reason == running.queries_by_reason
    # Seen as far as the last query tells: samples scored after it are not in the log.
    assert restarted.samples_seen == logged[-1][2]
    assert set(restarted.pending._entries) == set(running.pending._entries)
    assert not restarted.policy.in_warmup  # type: ignore[attr-defined]
    assert restarted.policy.queries > made_before

    # Labels without features are learned for every query, made before or after.
    for query, _number, _seen in logged:
        label = LabelMessage(id=query.id, label=truth[query.id])
        assert restarted.learn(label, now=1.0).status is LabelStatus.LEARNED
    # A sample scored again after the restart is not asked about again.
    again = restarted.score(samples[-1], now=2.0)
    assert again.queries == () or samples[-1].id not in {q.id for q, _, _ in logged}


def test_another_replicas_queries_are_pending_but_not_charged() -> None:
    asking, other = ActiveLearner(config()), ActiveLearner(config())
    (query, _number, seen), *_ = _logged_queries(asking, [Sample(id="a", features={"x": 1.0})])
    assert other.recover_query(query, seen, charge=False)
    assert "a" in other.pending and other.policy.queries == 0 and other.samples_seen == 0
    assert not other.recover_query(query, seen, charge=False)
    outcome = other.learn(LabelMessage(id="a", label="yes"), now=1.0)
    assert outcome.status is LabelStatus.LEARNED


def test_a_sample_asked_about_before_is_not_offered_to_the_policy_again() -> None:
    learner = ActiveLearner(config())
    first = learner.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    state = learner.policy.state()
    again = learner.score(Sample(id="a", features={"x": 1.0}), now=1.0)
    assert first.queried and again.queried and again.asked_before
    assert again.queries == ()
    assert learner.samples_seen == 1 and learner.policy.state() == state


def test_non_finite_probabilities_are_a_model_error_and_change_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    learner = ActiveLearner(config())
    learner.learn(LabelMessage(id="t", label="yes", features={"x": 1.0}), now=0.0)
    monkeypatch.setattr(
        learner.model, "predict_proba_one", lambda x: {"yes": float("nan"), "no": 0.5}
    )
    state = learner.policy.state()
    with pytest.raises(ModelError, match="non-finite"):
        learner.score(Sample(id="a", features={"x": 1e308}), now=1.0)
    assert learner.samples_seen == 0 and learner.policy.state() == state
    assert "a" not in learner.pending


def test_a_label_whose_features_would_overflow_the_model_is_refused() -> None:
    learner = ActiveLearner(config())
    for i in range(40):
        x = {"a": float(i % 3), "b": float(i % 5)}
        learner.learn(LabelMessage(id=f"t{i}", label=str(int(i % 3 > 0)), features=x), now=0.0)
    with pytest.raises(ModelError, match="overflow"):
        learner.learn(LabelMessage(id="x", label="1", features={"a": 1e200, "b": 1.0}), now=1.0)
    assert learner.labels_learned == 40
    # Learned, it would make the scaler's variance of "a" infinite: "a" would count for
    # nothing from then on. Refused, "a" still tells the classes apart.
    learner.learn(LabelMessage(id="y", label="0", features={"a": 1.0, "b": 1.0}), now=2.0)
    low = learner.model.predict_proba_one({"a": 0.0, "b": 2.0})
    high = learner.model.predict_proba_one({"a": 2.0, "b": 2.0})
    assert abs(low["1"] - high["1"]) > 0.05


def test_a_query_carries_the_samples_metadata_time_and_the_classes_to_choose_from() -> None:
    learner = ActiveLearner(config(warmup=3))
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = learner.score(Sample(id="a", features={"x": 1.0}, metadata={"text": "hi"}), now=0.0)
    assert first.queries[0].metadata == {"text": "hi"}
    assert first.queries[0].classes == ()  # nothing learned yet: a labeler names the class
    learner.learn(LabelMessage(id="a", label="cat"), now=1.0)
    second = learner.score(Sample(id="b", features={"x": 2.0}, timestamp=stamp), now=2.0)
    assert second.queries[0].timestamp == stamp and second.queries[0].metadata is None
    assert second.queries[0].classes == ("cat",)
    configured = ActiveLearner(LearnerConfig(classes=("dog", "cat")))
    assert configured.score(Sample(id="c", features={}), now=0.0).queries[0].classes == (
        "dog",
        "cat",
    )


def test_a_skip_stops_the_wait_for_that_label_and_learns_nothing() -> None:
    learner = ActiveLearner(config())
    learner.score(Sample(id="a", features={"x": 1.0}), now=0.0)
    skipped = learner.learn(LabelMessage(id="a", skipped=True, annotator="ann"), now=3.0)
    assert skipped.status is LabelStatus.SKIPPED and skipped.asked_at == 0.0
    assert "a" not in learner.pending and learner.labels_learned == 0
    assert learner.learn(LabelMessage(id="ghost", skipped=True), now=4.0).status is (
        LabelStatus.UNKNOWN_ID
    )
