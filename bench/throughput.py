"""Throughput of the service against kafka-python's raw consume rate, side by side.

Usage: python bench/throughput.py [--samples N] [--bootstrap HOST:PORT | --kafka-launcher PATH]

It writes N samples to a fresh topic, then measures in one run, each loop reading the same
N messages, with the same learner (logistic regression warmed on 2,000 labels):
  1. raw: a bare kafka-python consumer reading the N messages;
  2. raw consume + produce one message per message (kafka-python's ceiling for a loop that
     publishes a prediction per sample);
  3. the minimal loop a user would write with kafka-python: decode, score, publish the
     prediction (no delivery check, no commit);
  4. the same learner inside a Quix Streams application (``sdf.apply``, ``to_topic``; on
     confluent-kafka), at-least-once as Quix ships it;
  5. the real ``Service`` loop: samples validated, scored, predictions and queries
     published, delivery confirmed and offsets committed, on each of its two transports
     (``kafka.client``: kafka-python and librdkafka), each in a fresh consumer group.
Each row: rate, ratio to raw consume, and process CPU time per sample (the steadiest figure
on a shared machine: it counts every thread of the process, librdkafka's too); then each
service run's decision latency (validate + score + decide) p50 / p99 and its resident
memory before and after.
Targets (issue 12): the librdkafka service <= 35 us CPU per sample, >= 0.5 of kafka-python's
raw consume rate and ahead of the Quix Streams peer; the kafka-python service <= 100 us CPU
per sample; p99 <= 1 ms; memory flat (``--samples 1000000`` for the long run).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.demo.local_broker import local_broker
from stream_al.schemas import LabelMessage, Sample, decode_sample, encode
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


@dataclass(frozen=True)
class Measured:
    """One loop's run over the n samples."""

    rate: float
    cpu_us: float

    @classmethod
    def of(cls, n: int, wall: float, cpu: float) -> Measured:
        return cls(n / wall, cpu / n * 1e6)


def warm_learner(config: LearnerConfig, labels: int = 2000) -> ActiveLearner:
    """The learner every loop uses: ``config``, warmed on ``labels`` labelled samples."""
    learner = ActiveLearner(config)
    history = stream("hyperplane", seed=7, limit=labels)
    learner.warm_start(
        (LabelMessage(id=f"w-{e.id}", label=e.label, features=e.features) for e in history),
        now=0.0,
    )
    return learner


#: What a loop makes of one record: the (key, value) to publish, or None to publish nothing.
Handler = Callable[[ConsumerRecord], tuple[bytes | None, bytes] | None]


def loop_rate(bootstrap: str, topic: str, n: int, handle: Handler, out_topic: str) -> Measured:
    """Read the n messages of ``topic`` with a bare kafka-python consumer, ``handle`` each,
    and publish what it returns to ``out_topic`` with the producer settings the service uses.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, max_poll_records=500
    )
    producer = kafka_io.producer(Settings(kafka={"bootstrap_servers": bootstrap}))
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen = 0
    started, cpu = time.perf_counter(), time.process_time()
    while seen < n:
        for batch in consumer.poll(timeout_ms=1000).values():
            for record in batch:
                if (message := handle(record)) is not None:
                    producer.send(out_topic, key=message[0], value=message[1])
            seen += len(batch)
        producer.flush()
    measured = Measured.of(n, time.perf_counter() - started, time.process_time() - cpu)
    consumer.close()
    producer.close()
    return measured


def consume_only(record: ConsumerRecord) -> None:
    return None


def relay(record: ConsumerRecord) -> tuple[bytes | None, bytes]:
    """One copy of each message: kafka-python's ceiling for one message out per message in."""
    return record.key, record.value


def predict_with(learner: ActiveLearner) -> Handler:
    """The loop a user would write with kafka-python: decode, score, publish the prediction."""

    def handle(record: ConsumerRecord) -> tuple[bytes | None, bytes]:
        key, value = _prediction(learner, record.value)
        return key.encode(), value

    return handle


def _prediction(learner: ActiveLearner, raw: bytes) -> tuple[str, bytes]:
    sample = decode_sample(raw)
    scored = learner.score(sample, now=0.0)
    return sample.id, encode(scored.prediction(sample, learner.labels_learned))


def quix_rate(
    bootstrap: str, topic: str, n: int, learner: ActiveLearner, out_topic: str, group: str
) -> Measured:
    """The same learner in a Quix Streams application, timed from its first message."""
    from quixstreams import Application

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        loglevel="WARNING",
        use_changelog_topics=False,
    )
    source = app.topic(topic, value_deserializer="bytes", key_deserializer="bytes")
    sink = app.topic(out_topic, value_serializer="bytes", key_serializer="bytes")
    seen = 0
    clock: dict[str, float] = {}

    def score(value: bytes) -> bytes:
        nonlocal seen
        if not seen:
            clock["started"], clock["cpu"] = time.perf_counter(), time.process_time()
        seen += 1
        if seen == n:
            clock["wall"] = time.perf_counter() - clock["started"]
            clock["cpu"] = time.process_time() - clock["cpu"]
            app.stop()
        return _prediction(learner, value)[1]

    app.dataframe(source).apply(score).to_topic(sink)
    app.run()
    return Measured.of(n, clock["wall"], clock["cpu"])


@dataclass(frozen=True)
class ServiceRun:
    measured: Measured
    latencies: list[float]
    #: Resident memory at the start and after each tenth of the samples.
    rss_mb: list[float]

    def p(self, quantile: int) -> float:
        """The ``quantile``-th percentile of the decision latency, in ms."""
        return statistics.quantiles(self.latencies, n=100)[quantile - 1] * 1000


def resident_mb() -> float:
    """This process's resident memory now (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def service_rate(settings: Settings, n: int, learner: ActiveLearner) -> ServiceRun:
    metrics = RecordingMetrics()
    service = Service(settings, metrics=metrics)
    service.connect()
    service.learner = learner
    # Wait for the partition assignment before the clock starts, as the raw consumer did.
    deadline = time.monotonic() + 120
    while not service.readiness()["partitions_assigned"]:
        service.step(timeout_ms=100)
        if time.monotonic() > deadline:
            raise SystemExit("the service was never assigned the samples partition")
    rss = [resident_mb()]
    started, cpu = time.perf_counter(), time.process_time()
    while service.learner.samples_seen < n:
        service.step(timeout_ms=100)
        if service.learner.samples_seen >= len(rss) * n / 10:
            rss.append(resident_mb())
        if time.monotonic() > deadline + 600:
            raise SystemExit(f"only {service.learner.samples_seen} of {n} samples in 10 min")
    measured = Measured.of(n, time.perf_counter() - started, time.process_time() - cpu)
    service.close()
    return ServiceRun(measured, metrics.latencies, rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--bootstrap", help="an already running broker")
    parser.add_argument("--kafka-launcher", type=Path, default=Path("deploy/kafka/kafka-local"))
    parser.add_argument(
        "--services-only",
        action="store_true",
        help="only the service on each client (the long memory run), against raw consume",
    )
    args = parser.parse_args()
    if args.bootstrap:
        return run(args.bootstrap, args.samples, args.services_only)
    with local_broker(args.kafka_launcher, "bench") as bootstrap:
        return run(bootstrap, args.samples, args.services_only)


def run(bootstrap: str, samples: int, services_only: bool = False) -> int:

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

    topic, out = settings.topics.samples, settings.topics.dead_letters
    warmed = warm_learner(learner)
    raw = loop_rate(bootstrap, topic, samples, consume_only, out)
    rows = [("raw kafka-python consume", raw)]
    quix = None
    if not services_only:
        rows.append(
            ("raw consume + produce 1 each", loop_rate(bootstrap, topic, samples, relay, out))
        )
        bare = predict_with(copy.deepcopy(warmed))
        rows.append(
            ("kafka-python loop + learner", loop_rate(bootstrap, topic, samples, bare, out))
        )
        quix = quix_rate(bootstrap, topic, samples, copy.deepcopy(warmed), out, f"bench-quix-{run}")
        rows.append(("Quix Streams app + learner", quix))
    services: dict[str, ServiceRun] = {}
    for client in ("kafka-python", "librdkafka"):
        on_client = settings.model_copy(
            update={
                "group_id": f"{settings.group_id}-{client}",
                "kafka": settings.kafka.model_copy(update={"client": client}),
            }
        )
        services[client] = service_rate(on_client, samples, copy.deepcopy(warmed))
        rows.append((f"stream_al service, {client}", services[client].measured))
    print(f"\nsamples {samples} (hyperplane, 10 features, 1 partition), logreg warmed on 2,000")
    print(f"{'loop':<34} {'per second':>12} {'/ raw':>7} {'CPU us/sample':>14}")
    for name, measured in rows:
        print(
            f"{name:<34} {measured.rate:12,.0f} {measured.rate / raw.rate:7.2f} "
            f"{measured.cpu_us:14.1f}"
        )
    print(f"\n{'service on':<14} {'p50 ms':>8} {'p99 ms':>8}  resident MB, start then each tenth")
    for client, result in services.items():
        trace = " ".join(f"{mb:.0f}" for mb in result.rss_mb)
        print(f"{client:<14} {result.p(50):8.3f} {result.p(99):8.3f}  {trace}")
    fast, lean = services["librdkafka"].measured, services["kafka-python"].measured
    targets = [
        ("librdkafka service CPU <= 35 us/sample", fast.cpu_us <= 35),
        ("librdkafka service >= 0.5 of raw kafka-python consume", fast.rate >= 0.5 * raw.rate),
        *(
            [("librdkafka service ahead of the Quix Streams peer", fast.rate > quix.rate)]
            if quix is not None
            else []
        ),
        ("kafka-python service CPU <= 100 us/sample", lean.cpu_us <= 100),
        ("p99 decision latency <= 1 ms", all(r.p(99) <= 1 for r in services.values())),
    ]
    print()
    for target, met in targets:
        print(f"{'met    ' if met else 'NOT met'}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
