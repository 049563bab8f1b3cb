"""The transport layer without a broker: settings, errors and the mapping of options."""

from __future__ import annotations

import importlib.util
import threading
import time

import confluent_kafka as ck
import pytest
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaConnectionError, SaslAuthenticationFailedError
from pydantic import ValidationError

from stream_al.settings import Settings
from stream_al.transport import TopicPartition, TransportError, open_transport
from stream_al.transport.kafka_python import KafkaPythonTransport, translated
from stream_al.transport.librdkafka import LibrdkafkaTransport, _GroupConsumer, client_config
from stream_al.transport.librdkafka import _error as librdkafka_error


def test_the_client_is_chosen_by_the_settings() -> None:
    assert isinstance(open_transport(Settings()), KafkaPythonTransport)
    chosen = open_transport(Settings(kafka={"client": "librdkafka"}))
    assert isinstance(chosen, LibrdkafkaTransport)
    assert chosen.name == "librdkafka"


def test_an_unknown_client_is_refused() -> None:
    with pytest.raises(ValidationError, match="kafka-python"):
        Settings(kafka={"client": "java"})


def test_partitions_are_interchangeable_with_kafka_pythons() -> None:
    # kafka-python hands its own TopicPartition to the service: equal keys, one dict.
    offsets = {TopicPartition("t", 1): 5}
    assert offsets[KafkaTopicPartition("t", 1)] == 5
    assert KafkaTopicPartition("t", 1) in {TopicPartition("t", 1)}


@pytest.mark.parametrize(
    ("error", "retriable"),
    [(KafkaConnectionError("111 ECONNREFUSED"), True), (SaslAuthenticationFailedError(), False)],
)
def test_kafka_python_errors_keep_whether_they_are_retriable(
    error: Exception, retriable: bool
) -> None:
    @translated
    def call() -> None:
        raise error

    with pytest.raises(TransportError) as raised:
        call()
    assert raised.value.retriable is retriable
    assert raised.value.__cause__ is error


@pytest.mark.parametrize(
    ("code", "retriable"),
    [
        (ck.KafkaError._TRANSPORT, True),
        (ck.KafkaError._ALL_BROKERS_DOWN, True),
        (ck.KafkaError.NOT_COORDINATOR, True),
        (ck.KafkaError.SASL_AUTHENTICATION_FAILED, False),
        (ck.KafkaError.TOPIC_AUTHORIZATION_FAILED, False),
        (ck.KafkaError._INVALID_ARG, False),
    ],
)
def test_librdkafka_errors_say_whether_retrying_can_mend_them(code: int, retriable: bool) -> None:
    error = librdkafka_error(ck.KafkaException(ck.KafkaError(code)))
    assert error.retriable is retriable
    assert ck.KafkaError(code).name() in str(error)


def test_librdkafka_gets_the_same_cluster_settings_under_its_own_names() -> None:
    settings = Settings(
        kafka={
            "bootstrap_servers": "a:9093,b:9093",
            "client_id": "svc",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "user",
            "sasl_plain_password": "secret",
            "ssl_cafile": "ca.pem",
            "ssl_check_hostname": False,
            "request_timeout_ms": 15_000,
        }
    )
    config = client_config(settings)
    assert {key: config[key] for key in config if key not in ("logger", "error_cb")} == {
        "bootstrap.servers": "a:9093,b:9093",
        "client.id": "svc",
        "security.protocol": "SASL_SSL",
        "socket.timeout.ms": 15_000,
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "user",
        "sasl.password": "secret",
        "ssl.endpoint.identification.algorithm": "none",
        "ssl.ca.location": "ca.pem",
    }


def test_librdkafka_properties_pass_through_but_not_over_what_the_service_sets() -> None:
    settings = Settings(kafka={"client": "librdkafka", "librdkafka": {"statistics.interval.ms": 0}})
    assert settings.kafka.librdkafka == {"statistics.interval.ms": 0}
    managed_ones = ("enable.auto.commit", "group.id", "sasl.password", "security.protocol")
    for managed in (*managed_ones, "partitioner"):
        with pytest.raises(ValidationError, match="set by the service"):
            Settings(kafka={"client": "librdkafka", "librdkafka": {managed: "x"}})


def test_an_unknown_librdkafka_property_ends_the_start_with_its_name() -> None:
    settings = Settings(kafka={"client": "librdkafka", "librdkafka": {"linger.mss": 5}})
    with pytest.raises(TransportError, match=r"linger\.mss") as raised:
        open_transport(settings).producer()
    assert not raised.value.retriable


def test_the_librdkafka_client_without_confluent_kafka_installed_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "confluent_kafka" else real_find_spec(name, *args),
    )
    with pytest.raises(ValidationError, match=r"pip install 'stream_al\[librdkafka\]'"):
        Settings(kafka={"client": "librdkafka"})


class _StuckCommits:
    """A librdkafka consumer whose synchronous commit waits for a coordinator that is away."""

    def __init__(self, error: Exception | None = None) -> None:
        self.release = threading.Event()
        self.error = error

    def commit(self, offsets: list[ck.TopicPartition], asynchronous: bool) -> None:
        assert not asynchronous
        if self.error is not None:
            raise self.error
        self.release.wait(30)


def test_a_librdkafka_commit_is_bounded_by_its_timeout_as_kafka_pythons_is() -> None:
    consumer = _StuckCommits()
    group = _GroupConsumer(consumer, max_records=10)
    started = time.monotonic()
    try:
        with pytest.raises(TransportError, match=r"longer than 0\.2 s") as raised:
            group.commit({TopicPartition("samples", 0): 5}, timeout=0.2)
    finally:
        consumer.release.set()
    assert time.monotonic() - started < 5
    assert raised.value.retriable  # the batch comes again, as after any failed commit


def test_a_librdkafka_commit_that_fails_says_why() -> None:
    refused = ck.KafkaException(ck.KafkaError(ck.KafkaError.REBALANCE_IN_PROGRESS))
    group = _GroupConsumer(_StuckCommits(refused), max_records=10)
    with pytest.raises(TransportError, match="REBALANCE_IN_PROGRESS"):
        group.commit({TopicPartition("samples", 0): 5}, timeout=5)
