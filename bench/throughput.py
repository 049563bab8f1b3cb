"""Throughput of the service against kafka-python's raw consume rate, side by side.

Usage: python bench/throughput.py [--samples N] [--bootstrap HOST:PORT | --kafka-launcher PATH]
                                  [--services-only] [--answer] [--against GIT_REF [--rounds R]]

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
service run's decision latency (validate + score + decide) p50 / p99, its resident memory
and the Python allocator's blocks at the start and after each tenth. ``--answer`` runs a
labeler in a process of its own that answers every query, so the services learn and their
pending stores drain as in production (without it every query stays pending).
With ``--against GIT_REF`` it measures only the service, on each client, of that revision (in
a temporary git worktree) and of this tree over the same samples: R rounds, each run a fresh
process, the two revisions alternating, then the medians and their ratio (a change's effect
on a shared machine, where one run against another minutes later differs by a tenth).
Targets (issue 12): the librdkafka service <= 35 us CPU per sample, >= 0.5 of kafka-python's
raw consume rate and ahead of the Quix Streams peer; the kafka-python service <= 100 us CPU
per sample; p99 <= 1 ms; memory flat (``--samples 1000000`` for the long run).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import gc
import json
import math
import multiprocessing
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from revision import ROOT, checkout, importing

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.demo.local_broker import local_broker
from stream_al.schemas import LabelMessage, Sample, decode_sample, encode
from stream_al.service import kafka_io
from stream_al.service.app import Service
from stream_al.service.metrics import ServiceMetrics
from stream_al.settings import Settings
from stream_al.sim.datasets import stream


class LatencyRecord:
    """Decision latencies binned by the microsecond, for percentiles in constant memory.

    A list of every latency would grow by 32 MB over a million samples and hide whether the
    service's own memory is flat; to 1 us the percentiles are as good as exact.
    """

    LIMIT_US = 100_000

    def __init__(self) -> None:
        self.counts = [0] * (self.LIMIT_US + 1)  # the last bin: LIMIT_US and beyond
        self.n = 0

    def add(self, latencies: Sequence[float]) -> None:
        counts, limit = self.counts, self.LIMIT_US
        for seconds in latencies:
            counts[min(int(seconds * 1e6), limit)] += 1
        self.n += len(latencies)

    def percentile(self, quantile: float) -> float:
        """The ``quantile`` (0-100) percentile, in ms (the upper edge of its 1 us bin)."""
        rank, running = math.ceil(self.n * quantile / 100), 0
        for microseconds, count in enumerate(self.counts):
            running += count
            if running >= rank:
                return (microseconds + 1) / 1000
        return math.inf


class RecordingMetrics(ServiceMetrics):
    """The service's metrics, also keeping the decision latencies for percentiles."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1", 0)
        self.latencies = LatencyRecord()

    def samples_scored(self, latencies: Sequence[float]) -> None:
        super().samples_scored(latencies)
        self.latencies.add(latencies)


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
    latencies: LatencyRecord
    #: Resident memory at the start and after each tenth of the samples.
    rss_mb: list[float]
    #: Blocks the Python allocator holds, likewise: a leak of Python objects shows here even
    #: where freed memory of an earlier run is reused and the resident size stays put.
    blocks: list[int]
    #: Labels learned during the run, and queries still pending at its end.
    labels_learned: int
    pending: int

    def p(self, quantile: int) -> float:
        """The ``quantile``-th percentile of the decision latency, in ms."""
        return self.latencies.percentile(quantile)


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
    learned_before = service.learner.labels_learned
    gc.collect()
    rss, blocks = [resident_mb()], [sys.getallocatedblocks()]
    started, cpu = time.perf_counter(), time.process_time()
    while service.learner.samples_seen < n:
        service.step(timeout_ms=100)
        if service.learner.samples_seen >= len(rss) * n / 10:
            rss.append(resident_mb())
            blocks.append(sys.getallocatedblocks())
        if time.monotonic() > deadline + 600:
            raise SystemExit(f"only {service.learner.samples_seen} of {n} samples in 10 min")
    measured = Measured.of(n, time.perf_counter() - started, time.process_time() - cpu)
    learned, pending = service.learner.labels_learned - learned_before, len(service.learner.pending)
    service.close()
    return ServiceRun(measured, metrics.latencies, rss, blocks, learned, pending)


def answer_queries(
    bootstrap: str, oracle_topic: str, labels_topic: str, ready: Any, stop: Any
) -> None:
    """A labeler in a process of its own: answer every query with the sample's true label.

    With the answers coming back the pending store stays small, as in production; without
    them the 5 % of a million samples asked about (and their features) stay in it.
    """
    truth = [example.label for example in stream("hyperplane")]
    consumer = KafkaConsumer(
        oracle_topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    while not consumer.assignment():
        consumer.poll(timeout_ms=100)  # nothing is written to the topic before ready is set
    ready.set()
    while not stop.is_set():
        for records in consumer.poll(timeout_ms=200).values():
            for record in records:
                sample_id = json.loads(record.value)["id"]
                label = truth[int(sample_id.removeprefix("s-")) % len(truth)]
                answer = LabelMessage(id=sample_id, label=label)
                producer.send(labels_topic, key=record.key, value=encode(answer))
        producer.flush()
    consumer.close()
    producer.close()


@contextlib.contextmanager
def labeler(bootstrap: str, settings: Settings, enabled: bool) -> Iterator[None]:
    """``answer_queries`` in a process of its own while the block runs (if ``enabled``):
    its CPU is not the service's."""
    if not enabled:
        yield
        return
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    topics = settings.topics
    process = context.Process(
        target=answer_queries,
        args=(bootstrap, topics.oracle, topics.labels, ready, stop),
        daemon=True,
    )
    process.start()
    try:
        if not ready.wait(120):
            raise SystemExit("the labeler was not ready in 120 s")
        yield
    finally:
        stop.set()
        process.join(10)
        if process.is_alive():
            process.kill()


def one_service(bootstrap: str, run: str, client: str, samples: int) -> Measured:
    """The service on ``client`` over the samples of run ``run``, in a fresh group."""
    settings = bench_settings(bootstrap, run)
    group = f"{client}-{uuid.uuid4().hex[:6]}"
    return service_rate(
        on_client(settings, client, group), samples, warm_learner(settings.learner)
    ).measured


def against(bootstrap: str, samples: int, ref: str, rounds: int) -> int:
    """The service loop of ``ref`` and of this tree on the same samples, side by side.

    Each run is a fresh process importing ``stream_al`` from one revision (this script's
    ``--one-service``), the two revisions alternating round after round, so that the load
    of a shared machine hits both alike; the medians and their ratio are the figures.
    """
    run = uuid.uuid4().hex[:8]
    write_samples(bench_settings(bootstrap, run), samples)
    runs: dict[tuple[str, str], list[Measured]] = {}
    with checkout(ref) as tree:
        for _ in range(rounds):
            for client in CLIENTS:
                for name, source in ((ref, tree), ("this tree", ROOT)):
                    command = [sys.executable, __file__, "--bootstrap", bootstrap]
                    command += ["--samples", str(samples), "--one-service", client, run]
                    done = subprocess.run(
                        command, env=importing(source), capture_output=True, text=True
                    )
                    if done.returncode:
                        raise SystemExit(f"the run of {name} failed:\n{done.stderr[-3000:]}")
                    figures = json.loads(done.stdout.splitlines()[-1])
                    runs.setdefault((client, name), []).append(Measured(**figures))
    print(
        f"\nthe service, CPU us per sample: median of {rounds} runs (each run), {samples} samples"
    )
    print(f"{'client':<14} {ref:>28} {'this tree':>28} {'ratio':>6}")
    for client in CLIENTS:
        before, after = (sorted(m.cpu_us for m in runs[client, n]) for n in (ref, "this tree"))
        old, new = statistics.median(before), statistics.median(after)
        cells = [
            f"{m:.1f} ({' '.join(f'{v:.1f}' for v in r)})" for m, r in ((old, before), (new, after))
        ]
        print(f"{client:<14} {cells[0]:>28} {cells[1]:>28} {old / new:5.2f}x")
    return 0


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
    parser.add_argument(
        "--answer",
        action="store_true",
        help="a labeler process answers every query, so the services learn as in production",
    )
    parser.add_argument(
        "--against",
        metavar="GIT_REF",
        help="instead: the service of this revision and of this tree, alternating runs",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --against")
    parser.add_argument("--one-service", nargs=2, metavar=("CLIENT", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_service:
        measured = one_service(
            args.bootstrap, args.one_service[1], args.one_service[0], args.samples
        )
        print(json.dumps(dataclasses.asdict(measured)))
        return 0

    def chosen(bootstrap: str) -> int:
        if args.against:
            return against(bootstrap, args.samples, args.against, args.rounds)
        return run(bootstrap, args.samples, args.services_only, args.answer)

    if args.bootstrap:
        return chosen(args.bootstrap)
    with local_broker(args.kafka_launcher, "bench") as bootstrap:
        return chosen(bootstrap)


CLIENTS = ("kafka-python", "librdkafka")


def bench_settings(bootstrap: str, run: str) -> Settings:
    """The service's settings for the run ``run``: its own topics, one partition each."""
    learner = LearnerConfig(model=ModelConfig(name="logreg"), strategy=StrategyConfig(budget=0.05))
    return Settings(
        kafka={"bootstrap_servers": bootstrap, "auto_offset_reset": "earliest"},
        topics={
            name: f"bench-{run}.{name}"
            for name in ("samples", "oracle", "labels", "predictions", "dead_letters")
        }
        | {"partitions": 1},
        group_id=f"bench-{run}",
        learner=learner,
    )


def on_client(settings: Settings, client: str, group: str) -> Settings:
    """``settings`` on ``client``, in a consumer group of its own (it reads every sample)."""
    return settings.model_copy(
        update={
            "group_id": f"{settings.group_id}-{group}",
            "kafka": settings.kafka.model_copy(update={"client": client}),
        }
    )


def write_samples(settings: Settings, samples: int) -> None:
    kafka_io.ensure_topics(settings)
    print(f"writing {samples} samples to {settings.topics.samples} ...", flush=True)
    fill_topic(settings.kafka.bootstrap_servers, settings.topics.samples, samples)


def run(bootstrap: str, samples: int, services_only: bool = False, answer: bool = False) -> int:
    run = uuid.uuid4().hex[:8]
    settings = bench_settings(bootstrap, run)
    write_samples(settings, samples)
    topic, out = settings.topics.samples, settings.topics.dead_letters
    warmed = warm_learner(settings.learner)
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
    with labeler(bootstrap, settings, enabled=answer):
        for client in CLIENTS:
            services[client] = service_rate(
                on_client(settings, client, client), samples, copy.deepcopy(warmed)
            )
            rows.append((f"stream_al service, {client}", services[client].measured))
    print(f"\nsamples {samples} (hyperplane, 10 features, 1 partition), logreg warmed on 2,000")
    print(f"{'loop':<34} {'per second':>12} {'/ raw':>7} {'CPU us/sample':>14}")
    for name, measured in rows:
        print(
            f"{name:<34} {measured.rate:12,.0f} {measured.rate / raw.rate:7.2f} "
            f"{measured.cpu_us:14.1f}"
        )
    learned = ", ".join(
        f"{c} {r.labels_learned} ({r.pending} pending at the end)" for c, r in services.items()
    )
    print(f"\nlabels learned during the run: {learned}")
    print(f"{'service on':<14} {'p50 ms':>8} {'p99 ms':>8}  resident MB, start then each tenth")
    for client, result in services.items():
        trace = " ".join(f"{mb:.0f}" for mb in result.rss_mb)
        print(f"{client:<14} {result.p(50):8.3f} {result.p(99):8.3f}  {trace}")
    print(f"\n{'service on':<14} Python allocator blocks (thousands), start then each tenth")
    for client, result in services.items():
        print(f"{client:<14} {' '.join(f'{b / 1000:.0f}' for b in result.blocks)}")
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
