"""Throughput of the service against kafka-python's raw consume rate, side by side.

Usage: python bench/throughput.py [--samples N] [--bootstrap HOST:PORT | --kafka-launcher PATH]

It writes N samples to a fresh topic, then measures in one run:
  1. raw: a bare kafka-python consumer reading the N messages (messages/s);
  2. service: the real ``Service`` loop on the same topic: samples validated, scored,
     predictions and queries published, delivery confirmed and offsets committed (samples/s);
  3. their ratio, and the decision latency (validate + score + decide) p50 / p99.
Targets: ratio >= 0.5, service >= 5,000 samples/s with the logistic regression, p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.demo.local_broker import local_broker
from stream_al.schemas import Sample, encode
from stream_al.service import kafka_io
from stream_al.service.app import Service
from stream_al.service.metrics import ServiceMetrics
from stream_al.settings import Settings
from stream_al.sim.datasets import stream


class RecordingMetrics(ServiceMetrics):
    """The service's metrics, also keeping every decision latency for exact percentiles."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1", 0)
        self.latencies: list[float] = []

    def observe_decision_latency(self, seconds: float) -> None:
        super().observe_decision_latency(seconds)
        self.latencies.append(seconds)


def fill_topic(bootstrap: str, topic: str, n: int) -> None:
    examples = list(stream("hyperplane"))
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024)
    for i in range(n):
        example = examples[i % len(examples)]
        sample = Sample(id=f"s-{i}", features=example.features)
        producer.send(topic, key=sample.id.encode(), value=encode(sample))
    producer.flush()
    producer.close()


def pipe_rate(bootstrap: str, topic: str, n: int, out_topic: str | None = None) -> float:
    """Read the n messages of ``topic`` with a bare kafka-python consumer (messages/s).

    With ``out_topic``, also produce one copy of each message there, with the producer
    settings the service uses: the ceiling of any kafka-python process that publishes one
    message per sample, as the service does with its predictions.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, max_poll_records=500
    )
    producer = kafka_io.producer(Settings(kafka={"bootstrap_servers": bootstrap}))
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen = 0
    started = time.perf_counter()
    while seen < n:
        for batch in consumer.poll(timeout_ms=1000).values():
            if out_topic is not None:
                for record in batch:
                    producer.send(out_topic, key=record.key, value=record.value)
            seen += len(batch)
        producer.flush()
    elapsed = time.perf_counter() - started
    consumer.close()
    producer.close()
    return n / elapsed


def service_rate(settings: Settings, n: int) -> tuple[float, list[float]]:
    metrics = RecordingMetrics()
    service = Service(settings, metrics=metrics)
    service.connect()
    # Wait for the partition assignment before the clock starts, as the raw consumer did.
    deadline = time.monotonic() + 120
    while not service.readiness()["partitions_assigned"]:
        service.step(timeout_ms=100)
        if time.monotonic() > deadline:
            raise SystemExit("the service was never assigned the samples partition")
    started = time.perf_counter()
    while service.learner.samples_seen < n:
        service.step(timeout_ms=100)
        if time.monotonic() > deadline + 600:
            raise SystemExit(f"only {service.learner.samples_seen} of {n} samples in 10 min")
    elapsed = time.perf_counter() - started
    service.close()
    return n / elapsed, metrics.latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--bootstrap", help="an already running broker")
    parser.add_argument("--kafka-launcher", type=Path, default=Path("deploy/kafka/kafka-local"))
    args = parser.parse_args()
    if args.bootstrap:
        return run(args.bootstrap, args.samples)
    with local_broker(args.kafka_launcher, "bench") as bootstrap:
        return run(bootstrap, args.samples)


def run(bootstrap: str, samples: int) -> int:

    run = uuid.uuid4().hex[:8]
    learner = LearnerConfig(model=ModelConfig(name="logreg"), strategy=StrategyConfig(budget=0.05))
    settings = Settings(
        kafka={"bootstrap_servers": bootstrap, "auto_offset_reset": "earliest"},
        topics={
            name: f"bench-{run}.{name}"
            for name in ("samples", "oracle", "labels", "predictions", "dead_letters")
        }
        | {"partitions": 1},
        group_id=f"bench-{run}",
        learner=learner,
    )
    kafka_io.ensure_topics(settings)
    print(f"writing {samples} samples to {settings.topics.samples} ...", flush=True)
    fill_topic(bootstrap, settings.topics.samples, samples)

    raw = pipe_rate(bootstrap, settings.topics.samples, samples)
    relay = pipe_rate(
        bootstrap, settings.topics.samples, samples, out_topic=settings.topics.dead_letters
    )
    rate, latencies = service_rate(settings, samples)
    quantiles = statistics.quantiles(latencies, n=100)
    p50, p99 = quantiles[49] * 1000, quantiles[98] * 1000
    ratio = rate / raw
    print(
        f"\nsamples                       {samples} (hyperplane, 10 features, 1 partition)\n"
        f"raw kafka-python consume      {raw:10,.0f} messages/s\n"
        f"service end to end            {rate:10,.0f} samples/s "
        "(validated, scored, published, delivered, committed)\n"
        f"service / raw                 {ratio:10.2f}   (target >= 0.50)\n"
        f"raw consume + produce 1 each  {relay:10,.0f} messages/s (kafka-python's ceiling "
        "for one message out per message in)\n"
        f"service / consume+produce     {rate / relay:10.2f}\n"
        f"decision latency p50          {p50:10.3f} ms\n"
        f"decision latency p99          {p99:10.3f} ms (target <= 5 ms)\n"
        f"service rate target           {'met' if rate >= 5000 else 'NOT met'} (>= 5,000/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
