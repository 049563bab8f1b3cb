"""``make demo``: a bundled dataset through a real broker, the service and a simulated oracle.

It starts the local broker (unless one already runs) and the service as processes, with
the simulated oracle beside them; feeds the dataset; shows progress from the service's own
metrics endpoint; and ends with a summary measured on the topics: samples scored, labels
asked against the budget, accuracy of the predictions against an all-labels baseline.
Everything it started is stopped again, also on Ctrl-C.

With ``--label`` (``make demo-label``) you are the oracle: the labeling app serves on
http://127.0.0.1:8400/ instead of the simulated oracle, the stream runs slower, each sample
carries its true label as a hint in its metadata, and the demo ends on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.demo.feeder import produce
from stream_al.demo.local_broker import free_port, local_broker
from stream_al.demo.oracle import answer_queries
from stream_al.settings import Settings, load_settings
from stream_al.sim.datasets import DATASETS, Example, stream
from stream_al.sim.simulate import simulate


@contextmanager
def process(name: str, args: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("w") as output:
        child = subprocess.Popen(args, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        print(f"[demo] {name} stopped (exit code {child.returncode}; log {log})")


def scrape(url: str) -> dict[str, float]:
    """Sum each sample of the service's metrics by name and labels (``name{k=v}``)."""
    with urllib.request.urlopen(url, timeout=2) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def read_topic(bootstrap: str, topic: str, idle_ms: int = 3000) -> list[bytes]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=idle_ms,
    )
    try:
        return [record.value for record in consumer]
    finally:
        consumer.close()


def wait_ready(url: str, timeout: float = 120.0) -> None:
    """Wait until the service answers its readiness endpoint with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"[demo] the service did not become ready; see {url}")


def watch_progress(url: str, total: int, timeout: float = 300.0) -> None:
    """Print the service's progress until every sample is scored and every query answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            metrics = scrape(url)
        except OSError:
            continue
        scored = metrics.get("stream_al_samples_total{outcome=scored}", 0)
        queries = sum(v for k, v in metrics.items() if k.startswith("stream_al_queries_total{"))
        learned = metrics.get("stream_al_labels_total{status=learned}", 0)
        accuracy = metrics.get("stream_al_accuracy_ratio", float("nan"))
        print(
            f"[demo] scored {scored:6.0f}/{total}  queries {queries:5.0f}  "
            f"labels learned {learned:5.0f}  right on asked samples {accuracy:.3f}"
        )
        if scored >= total and learned >= queries:
            return
    print("[demo] timed out waiting for the service; see .state/demo/service.log")


@contextmanager
def labeler(settings: Settings, args: argparse.Namespace) -> Iterator[None]:
    """With ``--label``: the web labeling app, for you to be the oracle."""
    if not args.label:
        yield
        return
    from stream_al.labeling.run import running_desk, web_app
    from stream_al.labeling.web import WebServer

    with running_desk(settings) as desk:
        server = WebServer(web_app(settings, desk), "127.0.0.1", args.label_port)
        server.start()
        print(f"[demo] label in your browser: {server.url}")
        try:
            yield
        finally:
            server.stop()


def label_until_interrupted(url: str, total: int) -> None:
    """Show the service's progress while you label; Ctrl-C ends the demo with its summary."""
    try:
        while True:
            time.sleep(5)
            try:
                metrics = scrape(url)
            except OSError:
                continue
            scored = metrics.get("stream_al_samples_total{outcome=scored}", 0)
            learned = metrics.get("stream_al_labels_total{status=learned}", 0)
            accuracy = metrics.get("stream_al_accuracy_ratio", float("nan"))
            print(
                f"[demo] scored {scored:6.0f}/{total}  labels you gave that were learned "
                f"{learned:4.0f}  right on asked samples {accuracy:.3f}  (Ctrl-C ends)"
            )
    except KeyboardInterrupt:
        print("\n[demo] stopping")


def print_summary(
    args: argparse.Namespace, examples: list[Example], predictions: list[dict], url: str
) -> None:
    truth = {example.id: example.label for example in examples}
    first: dict[str, dict] = {}
    for prediction in predictions:
        first.setdefault(prediction["id"], prediction)
    correct = sum(p["label"] == truth[i] for i, p in first.items())
    queried = sum(p["queried"] for p in first.values())
    all_labels = LearnerConfig(
        model=ModelConfig(name=args.model, seed=args.seed),
        strategy=StrategyConfig(budget=1.0, name="random", exploration=0.0, warmup=0),
    )
    baseline = simulate(examples, all_labels, dataset=args.dataset)
    random_labels = LearnerConfig(
        model=ModelConfig(name=args.model, seed=args.seed),
        strategy=StrategyConfig(budget=args.budget, name="random"),
    )
    random_baseline = simulate(examples, random_labels, dataset=args.dataset)
    scored = max(1, len(first))
    print(
        "\n[demo] summary\n"
        f"  samples scored   {len(first)} of {len(examples)}\n"
        f"  labels asked     {queried} = {queried / scored:.3f} of samples (budget {args.budget})\n"
        f"  accuracy         {correct / scored:.3f} with {queried} labels; "
        f"{baseline.accuracy:.3f} with all {len(examples)} labels; "
        f"{random_baseline.accuracy:.3f} with {random_baseline.labels} random labels (offline)\n"
        f"  metrics served   {url}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kafka-launcher", type=Path, default=Path("deploy/kafka/kafka-local"))
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="image-segments")
    parser.add_argument("--model", default="logreg")
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--rate", type=float, default=None, help="samples per second")
    parser.add_argument("--label", action="store_true", help="label in the browser yourself")
    parser.add_argument("--label-port", type=int, default=8400, help="the labeling app's port")
    parser.add_argument("--oracle-delay", type=float, default=0.05, help="seconds per answer")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.rate is None:
        args.rate = 4.0 if args.label else 250.0

    run_id = uuid.uuid4().hex[:8]
    metrics_port = free_port()
    workdir = Path(".state") / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    examples = list(stream(args.dataset, seed=args.seed))

    print("[demo] starting a local Kafka broker on free ports")
    with local_broker(args.kafka_launcher, "demo") as bootstrap:
        env = {
            **os.environ,
            "STREAM_AL_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "STREAM_AL_GROUP_ID": f"demo-{run_id}",
            "STREAM_AL_METRICS__PORT": str(metrics_port),
            "STREAM_AL_LEARNER__MODEL__NAME": args.model,
            "STREAM_AL_LEARNER__STRATEGY__BUDGET": str(args.budget),
            "STREAM_AL_LOG_LEVEL": "WARNING",
            # Fresh topics: their whole history is this demo's stream.
            "STREAM_AL_KAFKA__AUTO_OFFSET_RESET": "earliest",
        }
        if args.label:
            classes = sorted({example.label for example in examples})
            env["STREAM_AL_LEARNER__CLASSES"] = json.dumps(classes)
            env["STREAM_AL_LABELING__GROUP_ID"] = f"demo-{run_id}-labelers"
            env["STREAM_AL_LABELING__PORT"] = str(args.label_port)
            env["STREAM_AL_LABELING__METRICS_PORT"] = str(free_port())
            # A person is slow: what waited longer than two minutes is dropped as stale.
            env["STREAM_AL_LABELING__STALE_AFTER_SECONDS"] = "120"
        for topic in ("samples", "oracle", "labels", "predictions", "dead_letters"):
            env[f"STREAM_AL_TOPICS__{topic.upper()}"] = f"demo-{run_id}.{topic}"
        os.environ.update({k: v for k, v in env.items() if k.startswith("STREAM_AL_")})
        settings = load_settings()
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        stop_demo, oracle_ready = threading.Event(), threading.Event()
        oracle = threading.Thread(
            target=answer_queries,
            args=(settings, args.dataset),
            kwargs={
                "delay": args.oracle_delay,
                "seed": args.seed,
                "stop": stop_demo,
                "ready": oracle_ready,
            },
            daemon=True,
        )
        cli = [sys.executable, "-m", "stream_al.cli", "run"]
        with process("service", cli, env, workdir / "service.log"), labeler(settings, args):
            print(f"[demo] service metrics on {url}")
            wait_ready(url.replace("/metrics", "/readyz"))
            if not args.label:
                oracle.start()
                if not oracle_ready.wait(60):
                    sys.exit("[demo] the simulated oracle could not join its consumer group")
            print(
                f"[demo] streaming {len(examples)} samples of {args.dataset} at {args.rate:.0f}/s"
            )
            feeder = threading.Thread(
                target=produce,
                args=(settings, args.dataset),
                kwargs={
                    "rate": args.rate,
                    "seed": args.seed,
                    "hint_truth": args.label,
                    "stop": stop_demo,
                },
                daemon=True,
            )
            feeder.start()
            try:
                if args.label:
                    label_until_interrupted(url, len(examples))
                else:
                    watch_progress(url, len(examples))
            finally:
                stop_demo.set()
                feeder.join()
                if oracle.is_alive():
                    oracle.join(30)
        predictions = [json.loads(v) for v in read_topic(bootstrap, settings.topics.predictions)]
    print_summary(args, examples, predictions, url)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # The context managers have stopped the service and the broker.
        print("[demo] interrupted; what the demo started is stopped")
        sys.exit(130)
