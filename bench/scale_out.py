"""Scale-out: 1, 2 and 4 replicas of the service in one consumer group, side by side.

Usage: python bench/scale_out.py [--samples N] [--replicas 1,2,4] [--budget B]
                                 [--kafka-launcher PATH]

It starts its own broker on free ports (stopped on every way out, Ctrl-C included). For
each replica count it makes fresh topics (samples with 4 partitions) and a fresh consumer
group, starts that many replicas of the real service, each a separate OS process
(``stream-al run``) with its own replica id, metrics port and checkpoint folder, and a
simulated oracle answering their queries. Once the group is stable it writes N labelled
hyperplane samples, waits until every one is scored and every label is learned, and reads:

- total rate: N / (last - first prediction's timestamp), from the predictions topic;
- CPU per sample: each replica's process CPU (utime + stime of /proc/PID/stat) over the run,
  divided by the samples it scored;
- query rate: all replicas' queries / N, against the budget (it must hold across replicas);
- labels: each replica's ``labels_learned`` against the labels the oracle answered;
- cores busy: the replicas' CPU seconds summed over the run's wall time, and the machine's
  busy share (from /proc/stat) over the same time.

Nothing is serialised across replicas when CPU per sample stays flat as replicas grow and
the replicas together keep the cores busy: on a machine with few cores the total rate is
then bounded by the cores, not by the group.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from stream_al.demo.local_broker import free_port, local_broker
from stream_al.demo.oracle import answer_queries
from stream_al.schemas import Sample, encode
from stream_al.service import kafka_io
from stream_al.settings import ENV_PREFIX, Settings
from stream_al.sim.datasets import Example, stream

PARTITIONS = 4
TOPICS = ("samples", "oracle", "labels", "predictions", "dead_letters")
#: The query rate may stray this far (relative) from the budget over the whole run.
BUDGET_TOLERANCE = 0.10
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: ``stream-al run``, with this interpreter (the console script may not be on PATH).
_RUN_SERVICE = "import sys; from stream_al.cli import main; sys.exit(main(['run']))"


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (every thread of it), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


class Replica:
    """One ``stream-al run`` process: own replica id, metrics port and checkpoint folder."""

    def __init__(self, settings: Settings, name: str, workdir: Path, hmac_key: str) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = workdir / f"{name}.log"
        checkpoints = workdir / f"{name}-checkpoints"
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env |= {f"{ENV_PREFIX}TOPICS__{t.upper()}": getattr(settings.topics, t) for t in TOPICS}
        env |= {
            f"{ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            f"{ENV_PREFIX}KAFKA__AUTO_OFFSET_RESET": "earliest",
            f"{ENV_PREFIX}TOPICS__PARTITIONS": str(PARTITIONS),
            f"{ENV_PREFIX}TOPICS__CREATE": "false",
            f"{ENV_PREFIX}GROUP_ID": settings.group_id,
            f"{ENV_PREFIX}REPLICA_ID": name,
            f"{ENV_PREFIX}LEARNER__MODEL__NAME": settings.learner.model.name,
            f"{ENV_PREFIX}LEARNER__STRATEGY__BUDGET": str(settings.learner.strategy.budget),
            f"{ENV_PREFIX}METRICS__HOST": "127.0.0.1",
            f"{ENV_PREFIX}METRICS__PORT": str(self.port),
            f"{ENV_PREFIX}CHECKPOINT__DIRECTORY": str(checkpoints),
            # A key of this run, so that nothing is written to the user's config folder.
            f"{ENV_PREFIX}CHECKPOINT__HMAC_KEY": hmac_key,
        }
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _RUN_SERVICE],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C reaches the benchmark, which stops the replicas itself.
            start_new_session=True,
        )

    def stop(self) -> None:
        """SIGTERM (the service delivers, commits, checkpoints), SIGKILL after 60 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 0, b""

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
        return self._get("/readyz")[0] == 200

    def metrics(self) -> dict[str, float]:
        """Each sample of /metrics, named ``name{label=value,...}``."""
        status, body = self._get("/metrics")
        if status != 200:
            raise RuntimeError(f"{self.name}: /metrics answered {status}:\n{self.log_tail()}")
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                values[f"{s.name}{{{labels}}}"] = s.value
        return values

    def scored(self) -> int:
        return int(self.metrics()["stream_al_samples_total{outcome=scored}"])

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def queries_of(metrics: dict[str, float]) -> int:
    return int(sum(v for k, v in metrics.items() if k.startswith("stream_al_queries_total{")))


@contextlib.contextmanager
def replicas(settings: Settings, count: int, workdir: Path) -> Iterator[list[Replica]]:
    """``count`` replica processes, stopped on the way out whatever happens."""
    key = secrets.token_hex(32)
    with contextlib.ExitStack() as stack:
        started: list[Replica] = []
        for i in range(count):
            replica = Replica(settings, f"replica-{i}", workdir, key)
            stack.callback(replica.stop)
            started.append(replica)
        yield started


@contextlib.contextmanager
def oracle(settings: Settings, examples: list[Example]) -> Iterator[None]:
    """The simulated labeler in a thread of this process, answering with the true labels."""
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=answer_queries,
        args=(settings, examples),
        kwargs={"stop": stop, "ready": ready},
        name="oracle",
        daemon=True,
    )
    thread.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the oracle never got the oracle topic's partitions")
        yield
    finally:
        stop.set()
        thread.join(30)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.25
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def group_is_stable(bootstrap: str, group: str, members: int) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    return bool(described.get("group_state") == "Stable" and len(described["members"]) == members)


def fill(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> str:
    """Write ``messages`` to ``topic``; returns the client used.

    confluent-kafka when installed (a dev dependency, through Quix Streams): its producer
    costs ~2 us of this process's CPU per message, so writing takes little from the
    replicas that score meanwhile; else kafka-python.
    """
    try:
        from confluent_kafka import Producer
    except ImportError:
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 19)
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush()
        producer.close()
        return "kafka-python"
    fast = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for key, value in messages:
        while True:
            try:
                fast.produce(topic, value, key)
                break
            except BufferError:
                fast.poll(0.05)
        fast.poll(0)
    if fast.flush(60):
        raise RuntimeError("could not write every sample")
    return "confluent-kafka"


def read_predictions(bootstrap: str, topic: str) -> tuple[list[bytes], int, int]:
    """The keys (sample ids) of every prediction, and the first and last timestamp (ms)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        keys: list[bytes] = []
        first, last = sys.maxsize, 0
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read {topic} to its end")
            for batch in consumer.poll(timeout_ms=1000).values():
                for record in batch:
                    keys.append(record.key)
                    first, last = min(first, record.timestamp), max(last, record.timestamp)
        return keys, first, last
    finally:
        consumer.close()


@dataclass
class ReplicaResult:
    name: str
    scored: int
    cpu_seconds: float
    queries: int
    labels_learned: int

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.scored * 1e6 if self.scored else float("nan")


@dataclass
class RunResult:
    replicas: list[ReplicaResult]
    samples: int
    rate: float
    wall: float
    machine_busy: float
    #: CPU seconds of this process over the run: the oracle, the writer, the metric reads.
    own_cpu: float
    labels_answered: int
    predictions: int
    unique_predictions: int
    writer: str

    @property
    def queries(self) -> int:
        return sum(r.queries for r in self.replicas)

    @property
    def cpu_us(self) -> float:
        """CPU per sample over all replicas: their CPU seconds over the samples scored."""
        return sum(r.cpu_seconds for r in self.replicas) / self.samples * 1e6

    @property
    def cores_busy(self) -> float:
        return sum(r.cpu_seconds for r in self.replicas) / self.wall

    @property
    def every_label_learned(self) -> bool:
        return all(r.labels_learned == self.labels_answered for r in self.replicas)


def run_replicas(
    bootstrap: str,
    count: int,
    examples: list[Example],
    messages: list[tuple[bytes, bytes]],
    budget: float,
    workdir: Path,
) -> RunResult:
    """One configuration: fresh topics and group, ``count`` replicas, every sample scored."""
    run = f"scale-{count}-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka={"bootstrap_servers": bootstrap, "auto_offset_reset": "earliest"},
        topics={name: f"{run}.{name}" for name in TOPICS} | {"partitions": PARTITIONS},
        group_id=run,
        learner={"model": {"name": "logreg"}, "strategy": {"budget": budget}},
    )
    kafka_io.ensure_topics(settings)
    n = len(messages)
    folder = workdir / run
    folder.mkdir()
    with oracle(settings, examples), replicas(settings, count, folder) as group:
        try:
            # The clock starts once every replica holds its partitions: no rebalance mid-run.
            wait_until(
                lambda: all(r.ready() for r in group) and group_is_stable(bootstrap, run, count),
                180,
                f"{count} replicas to join the group and get partitions",
                interval=0.5,
            )
            cpu_before = [r.cpu_seconds() for r in group]
            busy_before, total_before = machine_cpu()
            own_before = time.process_time()
            started = time.perf_counter()
            writer = fill(bootstrap, settings.topics.samples, messages)
            wait_until(lambda: sum(r.scored() for r in group) >= n, 600, f"{n} samples scored", 0.5)
            wall = time.perf_counter() - started
            cpu = [r.cpu_seconds() - before for r, before in zip(group, cpu_before, strict=True)]
            busy_after, total_after = machine_cpu()
            own = time.process_time() - own_before

            def learned_everything() -> bool:
                metrics = [r.metrics() for r in group]
                asked = sum(queries_of(m) for m in metrics)
                return all(m["stream_al_labels_learned{}"] == asked for m in metrics)

            with contextlib.suppress(RuntimeError):  # reported below, as it is
                wait_until(learned_everything, 120, "every replica to learn every label", 1.0)
            final = [r.metrics() for r in group]
        except Exception:  # not on Ctrl-C: the user knows why it stopped
            for replica in group:
                print(f"--- {replica.name} log (tail):\n{replica.log_tail()}", file=sys.stderr)
            raise
    keys, first_ms, last_ms = read_predictions(bootstrap, settings.topics.predictions)
    labels_answered = record_count(bootstrap, settings.topics.labels)
    results = [
        ReplicaResult(
            name=replica.name,
            scored=int(m["stream_al_samples_total{outcome=scored}"]),
            cpu_seconds=seconds,
            queries=queries_of(m),
            labels_learned=int(m["stream_al_labels_learned{}"]),
        )
        for replica, m, seconds in zip(group, final, cpu, strict=True)
    ]
    return RunResult(
        replicas=results,
        samples=n,
        rate=n / max((last_ms - first_ms) / 1000, 1e-3),
        wall=wall,
        machine_busy=(busy_after - busy_before) / max(total_after - total_before, 1),
        own_cpu=own,
        labels_answered=labels_answered,
        predictions=len(keys),
        unique_predictions=len(set(keys)),
        writer=writer,
    )


def record_count(bootstrap: str, topic: str) -> int:
    """Records on ``topic`` (end minus beginning offsets of its partitions)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends, starts = consumer.end_offsets(partitions), consumer.beginning_offsets(partitions)
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        consumer.close()


def report(results: list[RunResult], budget: float) -> int:
    """Print the table; return 1 when a guarantee failed (every sample once, budget, labels)."""
    base = results[0]
    cores = len(os.sched_getaffinity(0))
    print(
        f"\n{base.samples} hyperplane samples (10 features), {PARTITIONS} partitions, logreg "
        f"from cold, budget {budget}, {cores} cores; samples written with {base.writer}"
    )
    print(
        f"{'replicas':>8} {'samples/s':>10} {'/ 1 rep':>8} {'CPU us/sample':>14} "
        f"{'per replica':>20} {'replica cores':>14} {'samples/s/core':>15} "
        f"{'bench cores':>12} {'other cores':>12} {'queries/samples':>17} "
        f"{'labels learned (each)':>22}"
    )
    failed = False
    for r in results:
        query_rate = r.queries / r.samples
        holds = abs(query_rate - budget) <= BUDGET_TOLERANCE * budget
        every = r.every_label_learned and r.labels_answered == r.queries
        once = r.predictions == r.unique_predictions == r.samples
        failed |= not (holds and every and once)
        learned = "/".join(str(x.labels_learned) for x in r.replicas)
        print(
            f"{len(r.replicas):>8} {r.rate:>10,.0f} {r.rate / base.rate:>8.2f} "
            f"{r.cpu_us:>14.0f} {' '.join(f'{x.cpu_us:.0f}' for x in r.replicas):>20} "
            f"{r.cores_busy:>14.2f} {r.rate / r.cores_busy:>15,.0f} "
            f"{r.own_cpu / r.wall:>12.2f} "
            f"{r.machine_busy * cores - r.cores_busy - r.own_cpu / r.wall:>12.2f} "
            f"{query_rate:>10.4f} {'ok' if holds else 'OFF':>6} "
            f"{learned + ' of ' + str(r.labels_answered) + (' ok' if every else ' MISSING'):>22}"
        )
    print("\nper replica: samples scored (share), queries sent")
    for r in results:
        shares = ", ".join(
            f"{x.name} {x.scored} ({x.scored / r.samples:.0%}) {x.queries} q" for x in r.replicas
        )
        each = "each once" if r.predictions == r.unique_predictions == r.samples else "NOT once"
        print(f"  {len(r.replicas)}: {shares}; {r.predictions} predictions, {each}")
    flat = max(r.cpu_us for r in results) / min(r.cpu_us for r in results)
    print(
        f"\nCPU per sample, largest over smallest across replica counts: {flat:.2f}\n"
        f"query rate: all replicas' queries over all samples; ok within budget "
        f"+/- {BUDGET_TOLERANCE:.0%}\n"
        "replica cores: the replicas' CPU seconds summed over the run's wall time; bench "
        "cores: this process's (oracle, writer, metric reads); other cores: the rest of the "
        "machine's busy time (the broker, and anything else running here)\n"
        "Nothing is serialised across replicas when CPU per sample and samples/s per "
        "replica core stay flat as replicas grow: the total rate then follows the CPU the "
        f"replicas get. On {cores} cores shared with the broker, it cannot grow much beyond "
        f"{cores} replicas' worth."
    )
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=40_000)
    parser.add_argument("--replicas", default="1,2,4", help="replica counts, e.g. 1,2,4")
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=42, help="seed of the hyperplane stream")
    parser.add_argument("--kafka-launcher", type=Path, default=Path("deploy/kafka/kafka-local"))
    args = parser.parse_args()
    counts = [int(c) for c in args.replicas.split(",")]
    if any(not 1 <= c <= PARTITIONS for c in counts):
        parser.error(f"replica counts must be in 1..{PARTITIONS} (the samples partitions)")
    examples = list(stream("hyperplane", seed=args.seed, limit=args.samples))
    messages = [(e.id.encode(), encode(Sample(id=e.id, features=e.features))) for e in examples]
    with (
        local_broker(args.kafka_launcher, "scale") as bootstrap,
        tempfile.TemporaryDirectory(prefix="stream-al-scale-") as workdir,
    ):
        results = []
        for count in counts:
            print(f"{count} replica(s): {args.samples} samples ...", flush=True)
            results.append(
                run_replicas(bootstrap, count, examples, messages, args.budget, Path(workdir))
            )
        return report(results, args.budget)


if __name__ == "__main__":
    sys.exit(main())
