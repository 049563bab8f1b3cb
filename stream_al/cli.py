"""The ``stream-al`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from kafka.errors import KafkaError
from pydantic import ValidationError

from stream_al.core.config import (
    LearnerConfig,
    MeasureName,
    ModelConfig,
    ModelName,
    StrategyConfig,
    StrategyName,
)
from stream_al.durability import CheckpointError
from stream_al.durability.keys import HMAC_KEY_ENV, KEY_FILE_ENV
from stream_al.service.checkpointing import CheckpointRefused
from stream_al.service.preflight import KafkaUnavailable
from stream_al.settings import Settings, SettingsError, load_settings
from stream_al.sim.datasets import DATASETS, stream

#: Runs drawn on one chart by ``simulate --plot``: (strategy, measure).
PLOT_RUNS: list[tuple[StrategyName, MeasureName]] = [
    ("random", "margin"),
    ("variable-uncertainty", "margin"),
    ("quantile", "margin"),
    ("adaptive", "least-confidence"),
    ("adaptive", "entropy"),
    ("adaptive", "margin"),
]


def _add_learner_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("learner")
    group.add_argument("--model", choices=get_args(ModelName), default="logreg")
    group.add_argument("--measure", choices=get_args(MeasureName), default="margin")
    group.add_argument("--strategy", choices=get_args(StrategyName), default="adaptive")
    group.add_argument("--budget", type=float, default=0.05, help="share of samples to label")
    group.add_argument("--exploration", type=float, default=None, help="share of random queries")
    group.add_argument("--warmup", type=int, default=None, help="first N queries at random")
    group.add_argument("--max-labels", type=int, default=None, help="hard cap on labels")
    group.add_argument("--seed", type=int, default=42)


def learner_config_from_args(args: argparse.Namespace) -> LearnerConfig:
    strategy = {
        "name": args.strategy,
        "budget": args.budget,
        "max_labels": args.max_labels,
        "seed": args.seed,
    }
    if args.exploration is not None:
        strategy["exploration"] = args.exploration
    if args.warmup is not None:
        strategy["warmup"] = args.warmup
    return LearnerConfig(
        model=ModelConfig(name=args.model, seed=args.seed),
        measure=args.measure,
        strategy=StrategyConfig.model_validate(strategy),
    )


def _simulate(args: argparse.Namespace) -> int:
    from stream_al.sim.simulate import simulate

    config = learner_config_from_args(args)
    examples = list(stream(args.dataset, seed=args.seed, limit=args.limit))

    def run(config: LearnerConfig):  # type: ignore[no-untyped-def]
        return simulate(
            examples,
            config,
            dataset=args.dataset,
            label_delay=args.label_delay,
            label_noise=args.label_noise,
            seed=args.seed,
        )

    result = run(config)
    print(
        f"{result.dataset}: {result.samples} samples, model {result.model}, "
        f"strategy {result.strategy} / {result.measure}\n"
        f"  labels      {result.labels} (query rate {result.query_rate:.4f}, "
        f"budget {result.budget})\n"
        f"  by reason   {json.dumps(result.queries_by_reason, sort_keys=True)}\n"
        f"  accuracy    {result.accuracy:.4f} (prequential, all samples)"
    )
    if args.curve:
        result.write_curve(args.curve)
        print(f"  curve       {args.curve}")
    if args.plot:
        from stream_al.sim.plot import plot_curves

        results = []
        for strategy, measure in PLOT_RUNS:
            variant = config.model_copy(
                update={
                    "measure": measure,
                    "strategy": config.strategy.model_copy(update={"name": strategy}),
                }
            )
            results.append(run(variant))
            print(f"  {strategy:>22} / {measure:<17} accuracy {results[-1].accuracy:.4f}")
        title = f"{args.dataset}, budget {config.strategy.budget}, {config.model.name}"
        plot_curves(results, args.plot, title)
        print(f"  plot        {args.plot}")
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # kafka-python's INFO buries the service's own lines (80 to 5 at start), and its DEBUG
    # prints SASL passwords: its warnings and errors are enough, without their tracebacks
    # (a connection reset during an outage is one line's news, not twenty).
    logging.getLogger("kafka").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_without_kafka_tracebacks)
    return settings


def _without_kafka_tracebacks(record: logging.LogRecord) -> bool:
    if record.name.startswith("kafka") and record.exc_info:
        error = record.exc_info[1]
        record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
        record.args = None
        record.exc_info = record.exc_text = None
    return True


def _run(args: argparse.Namespace) -> int:
    from stream_al.service.runner import run_service

    return run_service(_settings(args))


def _produce(args: argparse.Namespace) -> int:
    from stream_al.demo.feeder import produce

    sent = produce(_settings(args), args.dataset, rate=args.rate, limit=args.limit, seed=args.seed)
    print(f"sent {sent} samples")
    return 0


def _oracle(args: argparse.Namespace) -> int:
    from stream_al.demo.oracle import answer_queries

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    answered = answer_queries(
        _settings(args),
        args.dataset,
        delay=args.delay,
        noise=args.noise,
        seed=args.seed,
        stop=stop,
        echo_features=args.echo_features,
    )
    print(f"answered {answered} queries")
    return 0


# --- stream-al label (the labeling clients, issue 11) ---------------------------------------


def _label(args: argparse.Namespace) -> int:
    from stream_al.labeling.run import running_desk, serve_web

    settings = _settings(args)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if not args.terminal:
        serve_web(settings, stop)
        return 0
    from stream_al.labeling.terminal import label_in_terminal

    annotator = args.annotator or os.environ.get("USER") or "terminal"
    with running_desk(settings) as desk:
        answered = label_in_terminal(
            desk, annotator, stop=stop, new_classes=settings.learner.classes is None
        )
    print(f"{annotator}: {answered} answers sent")
    return 0


def _add_label_command(commands: argparse._SubParsersAction) -> None:
    label = commands.add_parser(
        "label",
        help="label the oracle queue by hand: a web app (or --terminal)",
        description="Settings: the labeling section (labeling.host, labeling.port, "
        "labeling.token, labeling.annotators_per_item, ...), env and file as for run.",
    )
    label.add_argument("--terminal", action="store_true", help="label in this terminal")
    label.add_argument("--annotator", help="your name with --terminal (default: $USER)")
    label.add_argument("--config", type=Path, help="TOML settings file (as for run)")
    label.set_defaults(handler=_label)


# --- end of stream-al label -------------------------------------------------------------------


def _inspection_key(key_file: Path | None) -> bytes | None:
    """The key to verify with: ``--key-file``, else as the service finds it, else none.

    The service's order: ``$STREAM_AL_CHECKPOINT__HMAC_KEY``, then
    ``$STREAM_AL_CHECKPOINT__KEY_FILE``, then the default key file if it exists (never
    generated here: a new key verifies nothing).
    """
    from stream_al.durability.keys import default_key_file, read_key_file

    if key_file is not None:
        return read_key_file(key_file)
    if key := os.environ.get(HMAC_KEY_ENV):
        return key.encode()
    if named := os.environ.get(KEY_FILE_ENV):
        return read_key_file(Path(named).expanduser())
    default = default_key_file()
    return read_key_file(default) if default.exists() else None


def _inspect_checkpoint(args: argparse.Namespace) -> int:
    from stream_al.durability import CheckpointInvalid, inspect_checkpoint

    try:
        description = inspect_checkpoint(args.path, _inspection_key(args.key_file))
    except CheckpointInvalid as exc:
        raise type(exc)(f"checkpoint {args.path} refused: {exc}") from exc
    print(json.dumps(description, indent=2, sort_keys=True, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stream-al", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser(
        "simulate", help="replay a dataset prequentially through the active learner"
    )
    simulate.add_argument("--dataset", choices=sorted(DATASETS), default="phishing")
    simulate.add_argument("--limit", type=int, default=None, help="first N samples only")
    simulate.add_argument("--label-delay", type=int, default=0, help="labels arrive N samples late")
    simulate.add_argument("--label-noise", type=float, default=0.0, help="share of wrong labels")
    simulate.add_argument("--json", action="store_true", help="end with one JSON summary line")
    simulate.add_argument("--curve", type=Path, help="write the learning curve to a CSV file")
    simulate.add_argument("--plot", type=Path, help="compare strategies on a PNG chart")
    _add_learner_arguments(simulate)
    simulate.set_defaults(handler=_simulate)

    config_help = "TOML settings file (else $STREAM_AL_CONFIG_FILE; env vars override it)"
    run = commands.add_parser("run", help="run the service on Kafka (settings: env and file)")
    run.add_argument("--config", type=Path, help=config_help)
    run.set_defaults(handler=_run)

    produce = commands.add_parser("produce", help="write a dataset to the samples topic")
    produce.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    produce.add_argument("--rate", type=float, default=None, help="samples per second")
    produce.add_argument("--limit", type=int, default=None, help="first N samples only")
    produce.add_argument("--seed", type=int, default=42)
    produce.add_argument("--config", type=Path, help=config_help)
    produce.set_defaults(handler=_produce)

    oracle = commands.add_parser("oracle", help="answer queries with a dataset's true labels")
    oracle.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    oracle.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    oracle.add_argument("--noise", type=float, default=0.0, help="share of wrong answers")
    oracle.add_argument("--seed", type=int, default=42)
    oracle.add_argument(
        "--echo-features", action="store_true", help="send the query's features with the label"
    )
    oracle.add_argument("--config", type=Path, help=config_help)
    oracle.set_defaults(handler=_oracle)

    _add_label_command(commands)

    checkpoint = commands.add_parser("checkpoint", help="look into checkpoints")
    checkpoint_commands = checkpoint.add_subparsers(dest="checkpoint_command", required=True)
    inspect = checkpoint_commands.add_parser(
        "inspect",
        help="print a checkpoint file as JSON; its content only once its signature verified",
        description="Without a key only the envelope is shown (nothing is unpickled). The key: "
        f"--key-file, else ${HMAC_KEY_ENV}, else ${KEY_FILE_ENV}, else the "
        "default key file if it exists.",
    )
    inspect.add_argument("path", type=Path)
    inspect.add_argument("--key-file", type=Path, help="file holding the signing key")
    inspect.set_defaults(handler=_inspect_checkpoint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (SettingsError, CheckpointError, CheckpointRefused, KafkaUnavailable) as exc:
        print(f"stream-al: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(f"stream-al: Kafka error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"stream-al: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"stream-al: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
