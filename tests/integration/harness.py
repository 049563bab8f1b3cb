"""Helpers for tests that run the service against a real broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from stream_al.core.config import LearnerConfig
from stream_al.service.app import Service
from stream_al.service.metrics import ServiceMetrics
from stream_al.settings import Settings

#: The Kafka client of the service under test: set per test by the ``kafka_client``
#: fixture, which runs a module's tests on each client.
CLIENT: ContextVar[str] = ContextVar("CLIENT", default="kafka-python")


def service_settings(
    bootstrap: str, learner: LearnerConfig, partitions: int = 3, **overrides: Any
) -> Settings:
    """Settings with topics and a consumer group no other test uses, on ``CLIENT``."""
    run = uuid.uuid4().hex[:10]
    topics = {
        name: f"test-{run}.{name}"
        for name in ("samples", "oracle", "labels", "predictions", "dead_letters")
    }
    values: dict[str, Any] = {
        # The tests write samples before the service joins its group.
        "kafka": {
            "bootstrap_servers": bootstrap,
            "auto_offset_reset": "earliest",
            "client": CLIENT.get(),
        },
        "topics": {**topics, "partitions": partitions},
        "group_id": f"test-{run}",
        "replica_id": f"replica-{run}",
        "learner": learner,
        "metrics": {"host": "127.0.0.1", "port": 0},
    }
    values.update(overrides)
    return Settings(**values)


class ServiceThread:
    """The service's loop in a background thread, with its metrics endpoint served."""

    def __init__(self, settings: Settings, **service_args: Any) -> None:
        self.metrics = ServiceMetrics("127.0.0.1", 0)
        self.service = Service(settings, metrics=self.metrics, **service_args)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="service", daemon=True)

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as error:  # surfaced by stop()
            self.error = error

    @property
    def alive(self) -> bool:
        """The loop is still running and has not failed."""
        return self._thread.is_alive() and self.error is None

    def __enter__(self) -> ServiceThread:
        self.metrics.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 60) -> None:
        self.service.stop()
        self._thread.join(timeout)
        self.metrics.stop()
        if self._thread.is_alive():
            raise AssertionError("the service did not stop")
        if self.error is not None:
            raise AssertionError("the service failed") from self.error


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def step_until(
    service: Service,
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    poll_ms: int = 100,
) -> None:
    """Drive ``service``'s loop from the test thread until ``condition`` holds."""
    wait_until(
        lambda: service.step(timeout_ms=poll_ms) >= 0 and condition(), timeout, what, interval=0
    )


def until_learned(service: Service, samples: int, timeout: float = 60) -> None:
    """Step ``service`` until it has scored ``samples`` and learned every label it asked for."""
    state = service.learner
    step_until(
        service,
        lambda: state.samples_seen == samples and state.labels_learned == state.policy.queries,
        timeout=timeout,
        what=f"samples up to {samples} scored and their labels learned",
        poll_ms=5,
    )


def send_raw(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def read_topic(bootstrap: str, topic: str, idle_seconds: float = 3.0) -> list[ConsumerRecord]:
    """Every record on ``topic`` now, read from the beginning of each partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end")
            for batch in consumer.poll(timeout_ms=int(idle_seconds * 1000)).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or []:
        if key == name:
            return bytes(value).decode()
    return None
