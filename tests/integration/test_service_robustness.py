"""The service keeps going when the model or the consumer group misbehaves."""

from __future__ import annotations

import json
import random

import pytest
from kafka import KafkaAdminClient
from kafka.consumer.fetcher import ConsumerRecord
from kafka.coordinator.base import MemberState

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.schemas import LabelMessage, Sample, encode
from stream_al.service.app import Service
from stream_al.service.dead_letters import DETAIL_HEADER, REASON_HEADER
from stream_al.service.kafka_io import (
    RECORD_OVERHEAD_BYTES,
    TopicTooSmall,
    topic_configs,
    written_topics,
)
from stream_al.service.metrics import ServiceMetrics
from stream_al.transport import TransportError
from tests.integration.harness import (
    ServiceThread,
    header,
    read_topic,
    send_raw,
    service_settings,
    step_until,
    wait_until,
)
from tests.kafka_broker import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.usefixtures("kafka_client")]


def test_values_the_model_cannot_take_are_dead_lettered_and_the_service_goes_on(
    kafka_bootstrap: str,
) -> None:
    settings = service_settings(
        kafka_bootstrap, LearnerConfig(model=ModelConfig(name="hoeffding-tree")), partitions=1
    )
    service = Service(settings, metrics=ServiceMetrics(port=0))
    service.connect()
    try:
        # River's Gaussian estimator overflows on these finite, schema-valid values.
        extreme = [
            LabelMessage(id=f"x{i}", label=label, features={"x": value})
            for i, (label, value) in enumerate(
                [("a", 1.0), ("b", 2.0), ("a", 1e308), ("b", -1e308), ("a", 1e308)]
            )
        ]
        send_raw(
            kafka_bootstrap, settings.topics.labels, [(m.id.encode(), encode(m)) for m in extreme]
        )
        registry = service.metrics.registry

        def model_errors() -> float:
            value = registry.get_sample_value(
                "stream_al_dead_letters_total", {"reason": "model_error"}
            )
            return value or 0.0

        step_until(
            service,
            lambda: service.learner.labels_learned + model_errors() == len(extreme),
            60,
            "every label to be learned or refused",
        )
        assert model_errors() >= 1
        # ... and the service still scores what comes next.
        send_raw(
            kafka_bootstrap,
            settings.topics.samples,
            [(b"s", encode(Sample(id="s", features={"x": 1.5})))],
        )
        step_until(
            service,
            lambda: service.learner.samples_seen == 1,
            60,
            "the sample after the bad labels to be scored",
        )
    finally:
        service.close()
    dead = read_topic(kafka_bootstrap, settings.topics.dead_letters)
    assert {header(r, REASON_HEADER) for r in dead} == {"model_error"}
    assert all(json.loads(r.value)["features"]["x"] in (1e308, -1e308) for r in dead)


def test_a_query_or_prediction_too_large_to_send_dead_letters_its_sample(
    kafka_bootstrap: str,
) -> None:
    # A sample within max_message_bytes can make a larger query: its features written again
    # (1e15 comes out as 1000000000000000.0) beside the model's probabilities. Sent as it
    # was, such a query went past what the producer takes (max_message_bytes + 64 KiB), the
    # send raised, and the service stopped; after a restart the same sample stopped it again.
    limit = 150_000
    settings = service_settings(
        kafka_bootstrap,
        LearnerConfig(strategy=StrategyConfig(budget=1.0, warmup=10)),  # every sample asked
        partitions=1,
        max_message_bytes=limit,
    )
    features = b",".join(b'"f%04d":1e15' % i for i in range(9000))
    expanding = b'{"id":"expanding","features":{' + features + b"}}"
    assert len(expanding) <= limit
    samples = [(b"s0", encode(Sample(id="s0", features={"x": 1.0})))]
    samples += [(b"expanding", expanding), (b"s2", encode(Sample(id="s2", features={"x": 2.0})))]
    send_raw(kafka_bootstrap, settings.topics.samples, samples)
    service = Service(settings, metrics=ServiceMetrics(port=0))
    service.connect()
    try:
        step_until(
            service, lambda: service.learner.samples_seen == 3, 60, "the three samples scored"
        )
        assert not service.learner.knows("expanding")  # not asked, so not waited for
        assert service.learner.knows("s0") and service.learner.knows("s2")
    finally:
        service.close()
    dead = read_topic(kafka_bootstrap, settings.topics.dead_letters)
    assert [(r.key, header(r, REASON_HEADER)) for r in dead] == [(b"expanding", "too_large")]
    assert "its query about 'expanding' (" in (header(dead[0], DETAIL_HEADER) or "")
    assert dead[0].value == expanding  # the sample itself, as it came
    asked = [r.key for r in read_topic(kafka_bootstrap, settings.topics.oracle)]
    assert asked == [b"s0", b"s2"]
    predicted = [r.key for r in read_topic(kafka_bootstrap, settings.topics.predictions)]
    assert predicted == [b"s0", b"expanding", b"s2"]  # every sample still gets its prediction


def test_a_sample_whose_query_and_prediction_are_too_large_gets_one_dead_letter(
    kafka_bootstrap: str,
) -> None:
    # Metadata travels into both the query and the prediction, written again: 1000 values of
    # 1e15 make each of them about twice the sample. One dead letter says what was not sent.
    limit = 20_000
    settings = service_settings(
        kafka_bootstrap,
        LearnerConfig(strategy=StrategyConfig(budget=1.0, warmup=10)),
        partitions=1,
        max_message_bytes=limit,
    )
    metadata = b",".join(b'"m%03d":1e15' % i for i in range(1000))
    wide = b'{"id":"wide","features":{"x":1.0},"metadata":{' + metadata + b"}}"
    assert len(wide) <= limit
    after = encode(Sample(id="after", features={"x": 2.0}))
    send_raw(kafka_bootstrap, settings.topics.samples, [(b"wide", wide), (b"after", after)])
    service = Service(settings, metrics=ServiceMetrics(port=0))
    service.connect()
    try:
        step_until(service, lambda: service.learner.samples_seen == 2, 60, "both samples scored")
    finally:
        service.close()
    dead = read_topic(kafka_bootstrap, settings.topics.dead_letters)
    assert [(r.key, header(r, REASON_HEADER)) for r in dead] == [(b"wide", "too_large")]
    detail = header(dead[0], DETAIL_HEADER) or ""
    assert "its query about 'wide' (" in detail and "its prediction (" in detail
    assert [r.key for r in read_topic(kafka_bootstrap, settings.topics.oracle)] == [b"after"]
    predicted = read_topic(kafka_bootstrap, settings.topics.predictions)
    assert [r.key for r in predicted] == [b"after"]


def test_a_topic_too_small_for_the_largest_message_ends_the_start(
    kafka_bootstrap: str,
) -> None:
    # The broker refuses a message over a topic's max.message.bytes, and the service would
    # replay the batch that holds it for ever: a topic that cannot take what the service may
    # write is a configuration error, named at the start.
    settings = service_settings(kafka_bootstrap, LearnerConfig(), partitions=1)
    create_topics(
        kafka_bootstrap, [settings.topics.oracle], configs={"max.message.bytes": "100000"}
    )
    service = Service(settings, metrics=ServiceMetrics(port=0))
    try:
        with pytest.raises(
            TopicTooSmall,
            match=rf"topic '{settings.topics.oracle}' takes messages of at most 100000 bytes",
        ):
            service.connect()
    finally:
        service.close()


def test_the_topics_it_writes_are_created_for_its_largest_message(kafka_bootstrap: str) -> None:
    settings = service_settings(
        kafka_bootstrap, LearnerConfig(), partitions=1, max_message_bytes=3_000_000
    )
    service = Service(settings, metrics=ServiceMetrics(port=0))
    service.connect()
    service.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        limits = {
            name: topic_configs(admin, name, ("max.message.bytes",))["max.message.bytes"]
            for name in written_topics(settings)
        }
    finally:
        admin.close()
    wanted = str(3_000_000 + RECORD_OVERHEAD_BYTES)
    assert limits == dict.fromkeys(written_topics(settings), wanted)


def test_a_member_stuck_in_a_rebalance_joins_the_group_afresh(
    kafka_bootstrap: str, kafka_client: str
) -> None:
    if kafka_client != "kafka-python":
        pytest.skip("a stall of kafka-python 3.0's coordinator; librdkafka rejoins by itself")
    settings = service_settings(kafka_bootstrap, LearnerConfig(), partitions=2)
    service = Service(settings, metrics=ServiceMetrics(port=0))
    service.connect()
    try:
        step_until(
            service,
            lambda: service.readiness()["partitions_assigned"],
            60,
            "the first assignment",
        )
        stuck = service._samples
        assert stuck is not None
        # What kafka-python 3.0 rarely leaves behind: a join that never completes.
        stuck._consumer._coordinator.state = MemberState.REBALANCING  # type: ignore[attr-defined]
        service._unstable_since = 0.0  # since long ago
        service._watch_group_membership()
        assert service._samples is not stuck
        step_until(
            service,
            lambda: service.readiness()["partitions_assigned"],
            60,
            "the assignment after joining afresh",
        )
        send_raw(
            kafka_bootstrap,
            settings.topics.samples,
            [(b"s", encode(Sample(id="s", features={"x": 1.0})))],
        )
        step_until(
            service,
            lambda: service.learner.samples_seen == 1,
            60,
            "a sample to be scored by the new member",
        )
    finally:
        service.close()


def test_a_step_cut_short_by_kafka_loses_none_of_the_samples_it_had_polled(
    kafka_bootstrap: str,
) -> None:
    settings = service_settings(kafka_bootstrap, LearnerConfig(), partitions=1)
    ids = [f"s{i}" for i in range(20)]
    running = ServiceThread(settings)
    service = running.service
    handle_sample = service._handle_sample
    handled: list[str] = []

    def times_out_once(record: ConsumerRecord) -> None:
        # The producer gives up on the fifth sample, in the middle of a polled batch.
        if len(handled) == 4 and "timeout" not in handled:
            handled.append("timeout")
            raise TransportError("metadata not available", retriable=True)
        handled.append(record.key.decode())
        handle_sample(record)

    service._handle_sample = times_out_once  # type: ignore[method-assign]
    with running:
        wait_until(lambda: service.readiness()["partitions_assigned"], 60, "assignment")
        send_raw(
            kafka_bootstrap,
            settings.topics.samples,
            [(i.encode(), encode(Sample(id=i, features={"x": 1.0}))) for i in ids],
        )
        wait_until(lambda: set(ids) <= set(handled), 60, "every sample to be handled")
    assert "timeout" in handled, "the step was never cut short"
    predicted = {
        json.loads(r.value)["id"] for r in read_topic(kafka_bootstrap, settings.topics.predictions)
    }
    assert predicted == set(ids), "a sample polled before the error was skipped"


def test_a_sample_that_poisons_encoding_or_the_model_is_dead_lettered_and_the_service_goes_on(
    kafka_bootstrap: str,
) -> None:
    settings = service_settings(kafka_bootstrap, LearnerConfig(), partitions=1)
    # Opposite weights on two features: both at 1e308, the logit is inf - inf = NaN.
    rng = random.Random(1)
    points = [{"0": rng.random(), "1": rng.random()} for _ in range(200)]
    trained = [
        LabelMessage(id=f"t{i}", label=str(x["0"] > x["1"]), features=x)
        for i, x in enumerate(points)
    ]
    # A lone surrogate: valid JSON, no Unicode; asked about in warm-up, it could never be
    # encoded into the query. Then values that drive the trained model to NaN.
    surrogate = b'{"id": "poison-1", "features": {"c": "\\ud800", "0": 0.5}}'
    overflow = encode(Sample(id="poison-2", features={"0": 1e308, "1": 1e308}))
    good = [f"s{i}" for i in range(30)]
    samples = [
        (b"poison-1", surrogate),
        *[(i.encode(), encode(Sample(id=i, features={"0": 0.3, "1": 0.5}))) for i in good[:15]],
        (b"poison-2", overflow),
        *[(i.encode(), encode(Sample(id=i, features={"0": 1.1, "1": 0.5}))) for i in good[15:]],
    ]
    running = ServiceThread(settings)
    with running:
        service = running.service
        wait_until(lambda: service.readiness()["partitions_assigned"], 60, "assignment")
        send_raw(
            kafka_bootstrap, settings.topics.labels, [(m.id.encode(), encode(m)) for m in trained]
        )
        wait_until(lambda: service.learner.labels_learned == len(trained), 60, "training")
        send_raw(kafka_bootstrap, settings.topics.samples, samples)
        wait_until(lambda: service.learner.samples_seen == len(good), 60, "the good samples")
        wait_until(
            lambda: len(read_topic(kafka_bootstrap, settings.topics.dead_letters, 0.5)) == 2,
            60,
            "two dead letters",
        )
        assert running.alive
    predicted = {
        json.loads(r.value)["id"] for r in read_topic(kafka_bootstrap, settings.topics.predictions)
    }
    assert predicted == set(good)
    dead = {
        r.key: header(r, REASON_HEADER)
        for r in read_topic(kafka_bootstrap, settings.topics.dead_letters)
    }
    assert dead == {b"poison-1": "not_json", b"poison-2": "model_error"}


def test_an_unexpected_error_commits_none_of_the_records_it_did_not_handle(
    kafka_bootstrap: str,
) -> None:
    settings = service_settings(kafka_bootstrap, LearnerConfig(), partitions=1)
    ids = [f"s{i}" for i in range(200)]
    send_raw(
        kafka_bootstrap,
        settings.topics.samples,
        [(i.encode(), encode(Sample(id=i, features={"x": 1.0}))) for i in ids],
    )
    failing = ServiceThread(settings)
    handle_sample = failing.service._handle_sample
    handled: list[str] = []

    def breaks_at_the_fiftieth(record: ConsumerRecord) -> None:
        if len(handled) == 50:
            raise RuntimeError("a bug in the middle of a batch")
        handled.append(record.key.decode())
        handle_sample(record)

    failing.service._handle_sample = breaks_at_the_fiftieth  # type: ignore[method-assign]
    failing.metrics.start()
    failing._thread.start()
    failing._thread.join(60)
    failing.metrics.stop()
    assert isinstance(failing.error, RuntimeError), failing.error
    assert len(handled) == 50
    assert not failing.service.readiness()["loop_progressing"], "ready with a dead loop"

    # The next run of the group gets every sample the failed one did not handle.
    with ServiceThread(settings) as running:
        wait_until(
            lambda: (
                {
                    json.loads(r.value)["id"]
                    for r in read_topic(kafka_bootstrap, settings.topics.predictions, 0.5)
                }
                >= set(ids)
            ),
            60,
            "every sample to get a prediction",
        )
        assert running.alive
