"""Durability on a real broker: crashes, broker restarts and redeploys lose nothing.

The promise: a crash, a redeploy or a broker restart never loses a label the experts paid
for, features or not, never loses a sample, never learns a label twice and never spends
warm-up or budget twice. As built, the service checkpoints the learner with the offsets of
the labels and oracle topics it reflects, restores the newest checkpoint at start, reads the
oracle topic back from there (the queries made since are pending again and counted once)
and replays the labels since; sample offsets are committed once a batch's output is
delivered (at-least-once), and a sample already asked about is not asked again.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.demo.feeder import produce
from stream_al.demo.oracle import answer_queries
from stream_al.durability import KafkaCheckpointStore, LocalCheckpointStore
from stream_al.schemas import Sample, encode
from stream_al.service import kafka_io
from stream_al.service.checkpointing import Checkpointer, open_store
from stream_al.service.dead_letters import REASON_HEADER
from stream_al.settings import ENV_PREFIX, Settings
from stream_al.sim.datasets import Example, stream
from tests.integration.harness import ServiceThread, header, read_topic, service_settings
from tests.kafka_broker import LocalKafka, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.usefixtures("kafka_client")]

DATASET = "bananas"
BUDGET = 0.1
WAIT_S = 120.0  # the longest any single condition may take; every wait is bounded


# -- helpers -------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, what: object) -> None:
    """Poll ``condition`` until true; ``what`` is read only on timeout, so it may say more."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The process environment that gives ``stream-al run`` these settings.

    Nested names are joined with ``__``; values are JSON, except strings, which
    pydantic-settings takes as they are. Inherited ``STREAM_AL_*`` variables are dropped.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}

    def flatten(prefix: str, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            key = f"{prefix}{name.upper()}"
            if isinstance(value, Mapping):
                flatten(key + "__", value)
            elif value is not None:
                env[key] = value if isinstance(value, str) else json.dumps(value)

    flatten(ENV_PREFIX, settings.model_dump(mode="json", exclude_defaults=True))
    env.update(extra)
    return env


class ServiceProcess:
    """``stream-al run`` as a child process; each start is logged to its own file."""

    def __init__(self, env: Mapping[str, str], logs: Path, metrics_port: int) -> None:
        self.env = dict(env)
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.metrics_url = f"http://127.0.0.1:{metrics_port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.logs / f"service-{self.starts}.log"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stream_al.cli", "run"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, as a redeploy sends it; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200 (broker reachable, partitions assigned)."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"the service exited with {self.process.returncode}:\n{self.log()}"
            )
        try:
            with urllib.request.urlopen(f"{self.metrics_url}/readyz", timeout=2) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def metric(self, name: str) -> float | None:
        """One unlabelled sample of ``/metrics``, or None if the endpoint does not answer."""
        try:
            with urllib.request.urlopen(f"{self.metrics_url}/metrics", timeout=2) as reply:
                text = reply.read().decode()
        except (urllib.error.URLError, OSError):
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def stop_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


class Progress:
    """How far consumer groups are: committed offsets against the ends of their topics."""

    def __init__(self, bootstrap: str, groups: list[str]) -> None:
        self._ends = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        # Never subscribed: they only read the groups' committed offsets, never join.
        self._groups = {
            group: KafkaConsumer(
                bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
            )
            for group in groups
        }

    def end_offsets(self, topic: str) -> dict[int, int]:
        partitions = self._ends.partitions_for_topic(topic) or set()
        ends = self._ends.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}

    def behind(self, group: str, topic: str) -> int:
        """Messages of ``topic`` that ``group`` has not committed yet."""
        consumer = self._groups[group]
        return sum(
            end - (consumer.committed(TopicPartition(topic, partition)) or 0)
            for partition, end in self.end_offsets(topic).items()
        )

    def close(self) -> None:
        for consumer in (self._ends, *self._groups.values()):
            consumer.close(autocommit=False)


@contextlib.contextmanager
def oracle_running(settings: Settings) -> Iterator[threading.Thread]:
    """The simulated oracle (true labels, echoing the query's features) in a thread."""
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=answer_queries,
        args=(settings, DATASET),
        kwargs={"stop": stop, "ready": ready},
        name="oracle",
        daemon=True,
    )
    thread.start()
    try:
        assert ready.wait(60), "the oracle was never assigned the oracle topic"
        yield thread
    finally:
        stop.set()
        thread.join(30)


def label_ids(bootstrap: str, settings: Settings) -> list[str]:
    """The id of every label on the labels topic, duplicates included."""
    return [json.loads(r.value)["id"] for r in read_topic(bootstrap, settings.topics.labels)]


class Settled:
    """Every sample committed, every query answered and every answer learned.

    Called until true; ``str()`` also says what the last call still waited for, so a
    timeout names the part that stalled.
    """

    def __init__(
        self,
        progress: Progress,
        bootstrap: str,
        settings: Settings,
        learned: Callable[[], float | None],
    ) -> None:
        self.progress, self.bootstrap, self.settings, self.learned = (
            progress,
            bootstrap,
            settings,
            learned,
        )
        self.waiting_for = "nothing checked yet"

    def __call__(self) -> bool:
        behind = self.progress.behind(self.settings.group_id, self.settings.topics.samples)
        if behind:
            self.waiting_for = f"{behind} samples not committed"
            return False
        queries = topic_ids(self.bootstrap, self.settings.topics.oracle)
        labels = topic_ids(self.bootstrap, self.settings.topics.labels)
        if not queries <= labels:
            self.waiting_for = f"{len(queries - labels)} of {len(queries)} queries unanswered"
            return False
        learned = self.learned()
        if learned != len(labels):
            self.waiting_for = f"{learned} of {len(labels)} labels learned"
            return False
        return True

    def __str__(self) -> str:
        return f"every sample, query and label to be processed (still {self.waiting_for})"


def topic_ids(bootstrap: str, topic: str) -> set[str]:
    return {json.loads(r.value)["id"] for r in read_topic(bootstrap, topic)}


def answered_labels(bootstrap: str, settings: Settings) -> set[str] | None:
    """The label ids on the labels topic once every query has one, else None.

    Judged from the topics, not from the oracle's committed offsets: a labeler may answer
    while its group is rebalancing, when it cannot commit.
    """
    labels = topic_ids(bootstrap, settings.topics.labels)
    return labels if topic_ids(bootstrap, settings.topics.oracle) <= labels else None


def predicted_ids(bootstrap: str, settings: Settings) -> list[str]:
    return [json.loads(r.value)["id"] for r in read_topic(bootstrap, settings.topics.predictions)]


def learned_ids(learner: ActiveLearner) -> set[str]:
    # The learner's private record of what it learned: the set that refuses duplicates.
    return set(learner._learned_ids)


def newest_checkpoint(directory: Path) -> Path:
    paths = LocalCheckpointStore(directory).paths()
    assert paths, f"no checkpoint in {directory}"
    return paths[-1]


def inspect_cli(path: Path) -> dict[str, Any]:
    """``stream-al checkpoint inspect PATH``, parsed."""
    result = subprocess.run(
        [sys.executable, "-m", "stream_al.cli", "checkpoint", "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    described: dict[str, Any] = json.loads(result.stdout)
    return described


# -- 2. Broker restart ---------------------------------------------------------------------

OUTAGE_SAMPLES = 2000
OUTAGE_RATE = 200.0


def test_broker_restart_mid_stream_loses_nothing(
    local_kafka: LocalKafka, kafka_bootstrap: str
) -> None:
    examples = list(stream(DATASET, limit=OUTAGE_SAMPLES))
    settings = service_settings(
        kafka_bootstrap, LearnerConfig(strategy=StrategyConfig(budget=BUDGET))
    )
    kafka_io.ensure_topics(settings)
    progress = Progress(kafka_bootstrap, [settings.group_id])
    feeder = threading.Thread(
        target=produce,
        args=(settings, DATASET),
        kwargs={"rate": OUTAGE_RATE, "limit": OUTAGE_SAMPLES},
        daemon=True,
    )
    try:
        with ServiceThread(settings) as running, oracle_running(settings):
            service = running.service
            wait_for(lambda: service.readiness()["partitions_assigned"], WAIT_S, "assignment")
            feeder.start()
            wait_for(
                lambda: service.learner.samples_seen >= OUTAGE_SAMPLES // 4,
                WAIT_S,
                "a quarter of the stream",
            )
            try:
                local_kafka.stop()
                wait_for(lambda: not service.readiness()["broker_reachable"], 10, "not ready")
                seen_during = service.learner.samples_seen
                time.sleep(2.0)
            finally:
                local_kafka.start()
            wait_for(lambda: service.readiness()["broker_reachable"], 30, "the broker again")
            feeder.join(WAIT_S)
            assert not feeder.is_alive(), "the feeder did not finish"

            settled = Settled(
                progress, kafka_bootstrap, settings, lambda: service.learner.labels_learned
            )
            wait_for(settled, WAIT_S, settled)
            learner = service.learner
        # Leaving the block stopped the service; it raises if the loop had failed.
    finally:
        progress.close()

    assert seen_during < OUTAGE_SAMPLES, "the outage came after the stream"
    assert set(predicted_ids(kafka_bootstrap, settings)) == {e.id for e in examples}
    labels = label_ids(kafka_bootstrap, settings)
    assert learner.labels_learned == len(set(labels)) > 0
    assert learned_ids(learner) == set(labels)


# -- 3. Redeploy: same configuration continues, a changed one is refused --------------------

FIRST, SECOND, PROBES = 800, 400, 100


def _send_samples(bootstrap: str, settings: Settings, examples: list[Example]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for example in examples:
            sample = Sample(id=example.id, features=example.features)
            producer.send(settings.topics.samples, key=example.id.encode(), value=encode(sample))
        producer.flush()
    finally:
        producer.close()


def _run_until_learned(
    bootstrap: str, settings: Settings, checkpoints: Path, samples: int
) -> ActiveLearner:
    """Run the service (with checkpoints) until ``samples`` are scored and labels learned."""
    checkpointer = Checkpointer(settings, LocalCheckpointStore(checkpoints))
    with ServiceThread(settings, checkpointer=checkpointer) as running:
        service = running.service
        wait_for(lambda: service.learner.samples_seen >= samples, WAIT_S, "the samples")

        def learned_all() -> bool:
            labels = answered_labels(bootstrap, settings)
            return labels is not None and service.learner.labels_learned == len(labels)

        wait_for(learned_all, WAIT_S, "every query answered and learned")
        return service.learner


def _probe(learner: ActiveLearner, probes: list[Example]) -> list[dict[str, float]]:
    return [learner.model.predict_proba_one(example.features) for example in probes]


def test_restart_continues_and_a_changed_model_is_refused(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    examples = list(stream(DATASET, limit=FIRST + SECOND + PROBES))
    first, second, probes = (
        examples[:FIRST],
        examples[FIRST : FIRST + SECOND],
        examples[FIRST + SECOND :],
    )
    checkpoints = tmp_path / "checkpoints"
    settings = service_settings(
        kafka_bootstrap,
        LearnerConfig(strategy=StrategyConfig(budget=BUDGET)),
        checkpoint={"directory": str(checkpoints), "every_labels": 20},
    )
    kafka_io.ensure_topics(settings)

    with oracle_running(settings):
        _send_samples(kafka_bootstrap, settings, first)
        before = _run_until_learned(kafka_bootstrap, settings, checkpoints, FIRST)
        assert before.samples_seen == FIRST and before.labels_learned > 0

        # Restart, same configuration: the learner comes back as it was stopped.
        # Restart, same configuration: the learner comes back as it was stopped (this is
        # what Service.connect() restores from).
        learner, _ = Checkpointer(settings, LocalCheckpointStore(checkpoints)).restore()
        assert learner is not None
        assert learner.samples_seen == before.samples_seen
        assert learner.labels_learned == before.labels_learned
        assert learned_ids(learner) == learned_ids(before)
        assert _probe(learner, probes) == _probe(before, probes)

        # ... and carries on from there, from the committed samples, not from zero.
        _send_samples(kafka_bootstrap, settings, second)
        after = _run_until_learned(kafka_bootstrap, settings, checkpoints, FIRST + SECOND)
        assert after.samples_seen == FIRST + SECOND  # nothing scored twice after a clean stop
        assert after.labels_learned > before.labels_learned
        assert after.labels_learned == len(set(label_ids(kafka_bootstrap, settings)))

    # A redeploy with another model refuses the checkpoint, and says what changed.
    kept = {path: path.read_bytes() for path in LocalCheckpointStore(checkpoints).paths()}
    port = free_port()
    changed = settings_env(
        settings,
        STREAM_AL_LEARNER__MODEL__NAME="hoeffding-tree",
        STREAM_AL_METRICS__PORT=str(port),
    )
    refused = subprocess.run(
        [sys.executable, "-m", "stream_al.cli", "run"],
        env=changed,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2, refused.stderr
    assert "model.name: 'logreg' -> 'hoeffding-tree'" in refused.stderr
    assert "STREAM_AL_CHECKPOINT__START_FRESH=true" in refused.stderr
    assert {p: p.read_bytes() for p in LocalCheckpointStore(checkpoints).paths()} == kept

    # Unless told to start fresh: then it runs with the new model, from zero.
    fresh = ServiceProcess(
        {**changed, "STREAM_AL_CHECKPOINT__START_FRESH": "true"}, tmp_path / "logs", port
    )
    try:
        fresh.start()
        # Started: checkpoint restored or refused, clients up, group subscribed. (Not
        # /readyz: whether the group assignment completes is not what this is about.)
        wait_for(lambda: "stream_al service started" in fresh.log(), WAIT_S, "the fresh start")
        assert fresh.terminate() == 0, fresh.log()
    finally:
        fresh.stop_if_running()
    assert "starting fresh, as checkpoint.start_fresh says" in fresh.log()
    newest = inspect_cli(newest_checkpoint(checkpoints))
    assert newest["config"]["model"]["name"] == "hoeffding-tree"
    assert newest["labels_learned"] == 0


# -- 4. Chaos: kills at random points and a broker restart, labels without features ---------

CHAOS_SEED = 11
CHAOS_RATE = 120.0  # samples per second: the stream outlasts the kills and the outage
CHAOS_WARMUP = 20
CHAOS_KEY = "chaos-test-hmac-key-0123456789abcdef"
#: The order of the faults: a SIGKILL of the service, or a restart of the broker.
CHAOS_FAULTS = ("kill", "kill", "broker", "kill", "kill", "kill")


def dead_letter_ids(bootstrap: str, settings: Settings, reason: str) -> set[str]:
    """The ids of the labels dead-lettered for ``reason``."""
    return {
        json.loads(record.value)["id"]
        for record in read_topic(bootstrap, settings.topics.dead_letters)
        if header(record, REASON_HEADER) == reason
    }


def final_checkpoint(settings: Settings, store: str) -> ActiveLearner:
    key = CHAOS_KEY.encode()
    if store == "directory":
        assert settings.checkpoint.directory is not None
        loaded = LocalCheckpointStore(settings.checkpoint.directory, hmac_key=key).load_latest()
    else:
        assert settings.checkpoint.topic is not None
        kafka_store = KafkaCheckpointStore(
            settings.checkpoint.topic,
            key=f"{settings.group_id}/{settings.replica_id}",
            kafka_config=settings.kafka.client_config(),
            hmac_key=key,
        )
        try:
            loaded = kafka_store.load_latest()
        finally:
            kafka_store.close()
    assert loaded is not None
    learner: ActiveLearner = loaded.learner
    return learner


@pytest.mark.parametrize("store", ["directory", "topic"])
def test_kills_and_a_broker_restart_lose_no_label_without_features(
    local_kafka: LocalKafka, kafka_bootstrap: str, tmp_path: Path, store: str
) -> None:
    """5 SIGKILLs at random points and a broker restart; the labeler sends no features.

    Every label is learned exactly once, although most arrive for queries made after the
    checkpoint the service restarts from: the restart reads them back from the oracle
    topic. Warm-up is spent once and the budget holds across the restarts.
    """
    examples = list(stream(DATASET))
    assert len(examples) >= 5000
    where = (
        {"directory": str(tmp_path / "checkpoints")}
        if store == "directory"
        else {"topic": f"test-{uuid.uuid4().hex[:10]}.checkpoints"}
    )
    settings = service_settings(
        kafka_bootstrap,
        LearnerConfig(strategy=StrategyConfig(budget=BUDGET, warmup=CHAOS_WARMUP)),
        partitions=3,
        metrics={"host": "127.0.0.1", "port": free_port()},
        checkpoint={**where, "every_labels": 50, "every_seconds": 5.0, "hmac_key": CHAOS_KEY},
    )
    kafka_io.ensure_topics(settings)
    # A dumped secret is masked: the key goes into the environment as it is.
    env = settings_env(settings, STREAM_AL_CHECKPOINT__HMAC_KEY=CHAOS_KEY)
    service = ServiceProcess(env, tmp_path / "logs", settings.metrics.port)
    progress = Progress(kafka_bootstrap, [settings.group_id])
    rng = random.Random(CHAOS_SEED)
    feeder = threading.Thread(
        target=produce, args=(settings, DATASET), kwargs={"rate": CHAOS_RATE}, daemon=True
    )
    try:
        service.start()
        wait_for(service.ready, WAIT_S, "the first start to be ready")
        with oracle_running(settings):
            feeder.start()
            for fault in CHAOS_FAULTS:
                if rng.random() < 0.7:
                    wait_for(service.ready, WAIT_S, "the replica to be ready")
                time.sleep(rng.uniform(0.3, 4.0))
                if fault == "kill":
                    service.kill()
                    time.sleep(rng.uniform(0.2, 3.0))
                    service.start()
                else:
                    local_kafka.stop()
                    time.sleep(rng.uniform(1.0, 5.0))
                    local_kafka.start()
            wait_for(service.ready, WAIT_S, "the last start to be ready")
            feeder.join(WAIT_S)
            assert not feeder.is_alive(), "the feeder did not finish"
            settled = Settled(
                progress,
                kafka_bootstrap,
                settings,
                lambda: service.metric("stream_al_labels_learned"),
            )
            wait_for(settled, 2 * WAIT_S, settled)
        exit_code = service.terminate()
    finally:
        service.stop_if_running()
        progress.close()
    assert exit_code == 0, service.log()

    # No sample without a prediction.
    assert set(predicted_ids(kafka_bootstrap, settings)) == {example.id for example in examples}

    # The labeler sent no features: each label was joined with a logged query.
    labels = [json.loads(r.value) for r in read_topic(kafka_bootstrap, settings.topics.labels)]
    assert labels and all(label["features"] is None for label in labels)
    label_ids_sent = {label["id"] for label in labels}
    answered_twice = {i for i in label_ids_sent if sum(lb["id"] == i for lb in labels) > 1}

    # Every label learned exactly once: none lost, none twice.
    learner = final_checkpoint(settings, store)
    assert learned_ids(learner) == label_ids_sent
    assert learner.labels_learned == len(label_ids_sent)
    assert not dead_letter_ids(kafka_bootstrap, settings, "unknown_id")
    assert not dead_letter_ids(kafka_bootstrap, settings, "expired")
    assert dead_letter_ids(kafka_bootstrap, settings, "duplicate") <= answered_twice

    # No sample asked twice, the ledger counted each query once, warm-up spent once.
    queries = [json.loads(r.value) for r in read_topic(kafka_bootstrap, settings.topics.oracle)]
    query_ids = [query["id"] for query in queries]
    assert len(query_ids) == len(set(query_ids)), "a sample was asked about twice"
    ledger = learner.policy.ledger  # type: ignore[attr-defined]
    assert ledger.queried == len(query_ids)
    assert ledger.by_reason["warm-up"] == CHAOS_WARMUP
    assert sum(query["reason"] == "warm-up" for query in queries) == CHAOS_WARMUP
    rate = len(query_ids) / len(examples)
    # The restarts had queries to read back: made after their checkpoint, lost with the
    # process, and their labels still to come or to be replayed.
    recovered = [
        int(match[1])
        for n in range(1, service.starts + 1)
        for match in re.finditer(
            r"(\d+) of them this replica's own", (service.logs / f"service-{n}.log").read_text()
        )
    ]
    assert sum(recovered) > 0, recovered
    print(
        f"\nchaos ({store}): {service.starts} starts, own queries read back {recovered}, "
        f"{len(label_ids_sent)} labels learned once, {len(answered_twice)} answered twice, "
        f"query rate {rate:.4f} (budget {BUDGET}), ledger {ledger.state()}"
    )
    assert abs(rate - BUDGET) <= 0.1 * BUDGET, f"query rate {rate:.4f}, budget {BUDGET}"


# -- 5. An outage with checkpoints in a topic -----------------------------------------------

OUTAGE_SECONDS = 35.0  # longer than a checkpoint save may take (checkpoint.timeout_seconds)


def topic_checkpoint_settings(bootstrap: str, **overrides: Any) -> Settings:
    return service_settings(
        bootstrap,
        LearnerConfig(strategy=StrategyConfig(budget=BUDGET)),
        checkpoint={
            "topic": f"test-{uuid.uuid4().hex[:10]}.checkpoints",
            "every_seconds": 2.0,
            "hmac_key": CHAOS_KEY,
        },
        **overrides,
    )


def test_an_outage_longer_than_a_checkpoint_save_is_weathered(
    local_kafka: LocalKafka, kafka_bootstrap: str
) -> None:
    """The broker, and with it the checkpoint topic, is away for longer than a save may take.

    The service reports it (not ready, failed saves counted) and carries on afterwards.
    """
    examples = list(stream(DATASET, limit=OUTAGE_SAMPLES))
    half = OUTAGE_SAMPLES // 2
    settings = topic_checkpoint_settings(kafka_bootstrap)
    kafka_io.ensure_topics(settings)
    checkpointer = Checkpointer(settings, open_store(settings))
    with ServiceThread(settings, checkpointer=checkpointer) as running, oracle_running(settings):
        service = running.service
        failures = lambda: running.metrics.registry.get_sample_value(  # noqa: E731
            "stream_al_checkpoint_failures_total"
        )
        wait_for(lambda: service.readiness()["partitions_assigned"], WAIT_S, "assignment")
        produce(settings, DATASET, limit=half, rate=OUTAGE_RATE)
        wait_for(lambda: service.learner.samples_seen >= half, WAIT_S, "the first half")
        try:
            local_kafka.stop()
            stopped = time.monotonic()
            wait_for(lambda: not running.metrics.readiness()[0], 30, "readiness to fail")
            unready_after = time.monotonic() - stopped
            wait_for(lambda: (failures() or 0) >= 1, OUTAGE_SECONDS, "a checkpoint to fail")
            assert not service.readiness()["checkpoints_saving"]
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
            assert running.alive, "the service died in the outage"
        finally:
            local_kafka.start()
        wait_for(lambda: running.metrics.readiness()[0], WAIT_S, "ready again")
        produce(settings, DATASET, limit=OUTAGE_SAMPLES, rate=OUTAGE_RATE)
        wait_for(
            lambda: len(set(predicted_ids(kafka_bootstrap, settings))) == OUTAGE_SAMPLES,
            WAIT_S,
            "every sample's prediction",
        )
        assert running.alive
    assert set(predicted_ids(kafka_bootstrap, settings)) == {e.id for e in examples}
    print(f"\noutage: not ready {unready_after:.1f} s in, {failures()} checkpoint saves failed")


def test_sigterm_during_an_outage_exits_cleanly_in_bounded_time(
    local_kafka: LocalKafka, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = topic_checkpoint_settings(
        kafka_bootstrap, metrics={"host": "127.0.0.1", "port": free_port()}
    )
    kafka_io.ensure_topics(settings)
    env = settings_env(settings, STREAM_AL_CHECKPOINT__HMAC_KEY=CHAOS_KEY)
    service = ServiceProcess(env, tmp_path / "logs", settings.metrics.port)
    try:
        service.start()
        wait_for(service.ready, WAIT_S, "the service to be ready")
        produce(settings, DATASET, limit=300)
        wait_for(lambda: len(predicted_ids(kafka_bootstrap, settings)) >= 300, WAIT_S, "scoring")
        try:
            local_kafka.stop()
            time.sleep(3.0)
            started = time.monotonic()
            exit_code = service.terminate(timeout=120)
            took = time.monotonic() - started
        finally:
            local_kafka.start()
    finally:
        service.stop_if_running()
    log = service.log()
    print(f"\nSIGTERM in an outage: exit {exit_code} after {took:.1f} s")
    assert exit_code == 0, log
    assert "Traceback" not in log, log
    assert took <= settings.checkpoint.timeout_seconds + 15, log


# -- 6. A restart from an older checkpoint, replayed from the logs -------------------------


def test_a_restart_from_an_older_checkpoint_recovers_every_query_from_the_oracle_topic(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """What a crash leaves: a checkpoint older than the queries and labels since.

    The first run goes on past a copy of its checkpoint directory; the second starts from
    the copy. Labels carry no features. The second run must end where the first did.
    """
    checkpoints, older = tmp_path / "checkpoints", tmp_path / "older"
    settings = service_settings(
        kafka_bootstrap,
        LearnerConfig(strategy=StrategyConfig(budget=BUDGET)),
        checkpoint={"directory": str(checkpoints), "every_labels": 20, "hmac_key": CHAOS_KEY},
    )
    kafka_io.ensure_topics(settings)
    key = CHAOS_KEY.encode()

    def run_until(samples: int, then: Callable[[], None]) -> ActiveLearner:
        store = LocalCheckpointStore(checkpoints, hmac_key=key)
        with ServiceThread(settings, checkpointer=Checkpointer(settings, store)) as running:
            learner = lambda: running.service.learner  # noqa: E731
            wait_for(lambda: learner().samples_seen >= samples, WAIT_S, f"{samples} samples")
            wait_for(
                lambda: (
                    (answered := answered_labels(kafka_bootstrap, settings)) is not None
                    and learner().labels_learned == len(answered)
                ),
                WAIT_S,
                "every query answered and learned",
            )
            then()
            return learner()

    examples = list(stream(DATASET, limit=900))
    with oracle_running(settings):
        _send_samples(kafka_bootstrap, settings, examples[:300])
        run_until(300, lambda: shutil.copytree(checkpoints, older))
        _send_samples(kafka_bootstrap, settings, examples[300:])
        first = run_until(900, lambda: None)
        # The crash: the state since the copy is gone; the logs hold it.
        shutil.rmtree(checkpoints)
        shutil.copytree(older, checkpoints)
        second = run_until(0, lambda: None)
    assert second.policy.queries == first.policy.queries > 0
    assert second.queries_by_reason == first.queries_by_reason
    assert learned_ids(second) == learned_ids(first)
    assert second.labels_learned == first.labels_learned
    assert second.labels_by_status["unknown_id"] == 0
