"""stream-al: streaming active learning on Kafka."""

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

from stream_al import __version__
from stream_al.core.config import (
    LearnerConfig,
    MeasureName,
    ModelName,
    StrategyName,
)
from stream_al.core.learner import Scored
from stream_al.durability import CheckpointError
from stream_al.durability.keys import HMAC_KEY_ENV, KEY_FILE_ENV
from stream_al.service.checkpointing import CheckpointRefused
from stream_al.service.preflight import KafkaUnavailable
from stream_al.settings import Settings, SettingsError, load_settings, unknown_variables
from stream_al.sim.datasets import DATASETS, Example, Source, examples_of
from stream_al.sim.files import read_examples
from stream_al.sim.plot import require_matplotlib
from stream_al.sim.simulate import OnScored, SimulationResult, simulate
from stream_al.transport import TransportError

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
    group = parser.add_argument_group(
        "learner", "each flag given overrides the learner settings of --config (else defaults)"
    )
    group.add_argument("--model", choices=get_args(ModelName), help="default: logreg")
    group.add_argument("--measure", choices=get_args(MeasureName), help="default: margin")
    group.add_argument("--strategy", choices=get_args(StrategyName), help="default: adaptive")
    group.add_argument("--budget", type=float, help="share of samples to label (default: 0.05)")
    group.add_argument("--exploration", type=float, help="share of random queries (default: 0.1)")
    group.add_argument("--warmup", type=int, help="first N queries at random (default: 20)")
    group.add_argument("--max-labels", type=int, help="hard cap on labels (default: none)")
    group.add_argument("--seed", type=int, help="seed of every random choice (default: 42)")


def learner_config_from_args(
    args: argparse.Namespace, base: LearnerConfig | None = None
) -> LearnerConfig:
    """``base`` (the settings' learner, else the defaults) with the flags given applied."""
    base = base or LearnerConfig()
    model: dict[str, object] = {}
    strategy: dict[str, object] = {}
    for flag, target, name in [
        ("model", model, "name"),
        ("seed", model, "seed"),
        ("strategy", strategy, "name"),
        ("budget", strategy, "budget"),
        ("exploration", strategy, "exploration"),
        ("warmup", strategy, "warmup"),
        ("max_labels", strategy, "max_labels"),
        ("seed", strategy, "seed"),
    ]:
        if getattr(args, flag) is not None:
            target[name] = getattr(args, flag)
    learner: dict[str, object] = {
        "model": base.model.model_dump() | model,
        "strategy": base.strategy.model_dump() | strategy,
    }
    if args.measure is not None:
        learner["measure"] = args.measure
    return LearnerConfig.model_validate(base.model_dump() | learner)


def _add_source_arguments(parser: argparse.ArgumentParser, *, default: str | None) -> None:
    group = parser.add_argument_group("data", "a bundled dataset, or a file of your own")
    source = group.add_mutually_exclusive_group(required=default is None)
    source.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        help="a bundled or synthetic dataset" + (f" (default: {default})" if default else ""),
    )
    source.add_argument(
        "--data",
        type=Path,
        metavar="FILE",
        help="a CSV, JSON Lines (.jsonl) or Parquet file; types are inferred and reported",
    )
    group.add_argument("--target", metavar="COLUMN", help="the label column of --data")
    group.add_argument("--id", dest="id_column", metavar="COLUMN", help="the id column of --data")
    parser.set_defaults(default_dataset=default)


def _source(args: argparse.Namespace, *, needs_target: bool) -> tuple[str, Source]:
    """(name, source) from the data flags; a file's column report goes to stderr."""
    if args.data is None:
        if args.target is not None or args.id_column is not None:
            raise ValueError("--target and --id go with --data FILE")
        name = args.dataset or args.default_dataset
        return name, name
    if needs_target and args.target is None:
        raise ValueError("--data FILE needs --target COLUMN (the label column)")
    data = read_examples(args.data, args.target, args.id_column)
    print(data.report(), file=sys.stderr)
    return args.data.name, data.examples


def _noise_rates(text: str) -> tuple[float, ...]:
    """``0.1,0.3`` -> (0.1, 0.3), each in [0, 1]."""
    try:
        rates = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of rates: {text!r}") from None
    if not all(0.0 <= rate <= 1.0 for rate in rates):
        raise argparse.ArgumentTypeError(f"noise rates must be in [0, 1]: {text!r}")
    return rates


def _simulate(args: argparse.Namespace) -> int:
    if args.plot:
        require_matplotlib()  # before the work, not after it
    base = load_settings(args.config).learner if args.config else None
    config = learner_config_from_args(args, base)
    seed = config.strategy.seed
    name, source = _source(args, needs_target=True)
    examples = list(examples_of(source, seed=seed, limit=args.limit))

    def run(config: LearnerConfig, on_scored: OnScored | None = None) -> SimulationResult:
        return simulate(
            examples,
            config,
            dataset=name,
            label_delay=args.label_delay,
            label_noise=args.label_noise,
            seed=seed,
            on_scored=on_scored,
            annotators=args.annotators,
            annotators_per_item=args.annotators_per_item,
            aggregation=args.aggregation,
        )

    decisions: list[dict[str, object]] = []

    def record(example: Example, scored: Scored) -> None:
        decisions.append({"id": example.id, "label": scored.label, "queried": scored.queried})

    result = run(config, record if args.decisions else None)
    print(
        f"{result.dataset}: {result.samples} samples, model {result.model}, "
        f"strategy {result.strategy} / {result.measure}\n"
        f"  labels      {result.labels} (query rate {result.query_rate:.4f}, "
        f"budget {result.budget})\n"
        f"  by reason   {json.dumps(result.queries_by_reason, sort_keys=True)}\n"
        f"  accuracy    {result.accuracy:.4f} (prequential, all samples)"
    )
    if args.decisions:
        args.decisions.write_text("".join(json.dumps(d) + "\n" for d in decisions))
        print(f"  decisions   {args.decisions}")
    if result.annotators:
        print(
            f"  annotators  {len(result.annotators)} (noise {result.annotators}), "
            f"{result.aggregation}: {result.answers} answers, learned labels "
            f"{result.label_accuracy or 0.0:.4f} true"
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
        title = f"{name}, budget {config.strategy.budget}, {config.model.name}"
        plot_curves(results, args.plot, title)
        print(f"  plot        {args.plot}")
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    for warning in unknown_variables():
        print(f"stream-al: warning: {warning}", file=sys.stderr)
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

    _, source = _source(args, needs_target=False)
    sent = produce(_settings(args), source, rate=args.rate, limit=args.limit, seed=args.seed)
    print(f"sent {sent} samples")
    return 0


def _oracle(args: argparse.Namespace) -> int:
    from stream_al.demo.oracle import answer_queries

    _, source = _source(args, needs_target=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    answered = answer_queries(
        _settings(args),
        source,
        delay=args.delay,
        noise=args.noise,
        seed=args.seed,
        stop=stop,
        echo_features=args.echo_features,
        annotators=args.annotators,
    )
    print(f"answered {answered} queries")
    return 0


def _train(args: argparse.Namespace) -> int:
    from stream_al.core.learner import ActiveLearner, LabelStatus
    from stream_al.durability import Checkpoint, config_fingerprint
    from stream_al.durability.envelope import seal
    from stream_al.durability.keys import local_store_key
    from stream_al.schemas import LabelMessage
    from stream_al.service.warm_start import signing_key

    settings = load_settings(args.config)
    data = read_examples(args.data, args.target, args.id_column)
    print(data.report(), file=sys.stderr)
    learner = ActiveLearner(settings.learner)
    labels = (LabelMessage(id=e.id, label=e.label, features=e.features) for e in data.examples)
    outcomes = learner.warm_start(labels, now=0.0)
    key = local_store_key(signing_key(settings), settings.checkpoint.key_file, args.out.parent)
    fingerprint = config_fingerprint(settings.learner.model_identity())
    args.out.write_bytes(seal(Checkpoint(learner, {}, fingerprint), key))
    print(
        f"trained {learner.model.describe()} on {outcomes[LabelStatus.LEARNED]} labels of "
        f"{args.data.name}; wrote {args.out} (signed; start with warm_start.model_file)"
    )
    return 0


def _show_config(args: argparse.Namespace) -> int:
    from stream_al.settings import describe_settings

    settings = load_settings(args.config)
    for warning in unknown_variables():
        print(f"stream-al: warning: {warning}", file=sys.stderr)
    described = describe_settings(settings, args.config)
    if args.json:
        print(json.dumps({name: {"value": v, "source": src} for name, v, src in described}))
        return 0
    width = max(len(name) for name, _, _ in described)
    for name, value, source in described:
        print(f"{name:<{width}} = {json.dumps(value)}  # {source}")
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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default that says something (not None, not an unset flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    formatter = _HelpFormatter
    parser = argparse.ArgumentParser(
        prog="stream-al", description=__doc__, formatter_class=formatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, formatter_class=formatter)

    config_help = "TOML settings file (else $STREAM_AL_CONFIG_FILE; env vars override it)"
    simulate = command("simulate", "replay a dataset or a file prequentially through the learner")
    _add_source_arguments(simulate, default="phishing")
    simulate.add_argument("--config", type=Path, help="take the learner settings of this file")
    simulate.add_argument("--limit", type=int, default=None, help="first N samples only")
    simulate.add_argument("--label-delay", type=int, default=0, help="labels arrive N samples late")
    simulate.add_argument("--label-noise", type=float, default=0.0, help="share of wrong labels")
    simulate.add_argument(
        "--annotators",
        type=_noise_rates,
        default=(),
        help="k simulated annotators who each answer every query, by noise rate: 0.1,0.3,0.3",
    )
    simulate.add_argument(
        "--annotators-per-item",
        type=int,
        default=None,
        help="k: each query goes to k distinct annotators of the pool (default: all)",
    )
    simulate.add_argument(
        "--aggregation",
        choices=("majority", "weighted"),
        default="majority",
        help="how their answers become one label (weighted: online Dawid-Skene)",
    )
    simulate.add_argument("--json", action="store_true", help="end with one JSON summary line")
    simulate.add_argument("--curve", type=Path, help="write the learning curve to a CSV file")
    simulate.add_argument(
        "--decisions", type=Path, help="write each sample's prediction and query as JSON Lines"
    )
    simulate.add_argument("--plot", type=Path, help="compare strategies on a PNG chart")
    _add_learner_arguments(simulate)
    simulate.set_defaults(handler=_simulate)

    run = command("run", "run the service on Kafka (settings: env and file)")
    run.add_argument("--config", type=Path, help=config_help)
    run.set_defaults(handler=_run)

    produce = command("produce", "write a dataset or a file to the samples topic")
    _add_source_arguments(produce, default=None)
    produce.add_argument("--rate", type=float, default=None, help="samples per second")
    produce.add_argument("--limit", type=int, default=None, help="first N samples only")
    produce.add_argument("--seed", type=int, default=42, help="seed of a synthetic dataset")
    produce.add_argument("--config", type=Path, help=config_help)
    produce.set_defaults(handler=_produce)

    oracle = command("oracle", "answer queries with the true labels of a dataset or a file")
    _add_source_arguments(oracle, default=None)
    oracle.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    oracle.add_argument("--noise", type=float, default=0.0, help="share of wrong answers")
    oracle.add_argument("--seed", type=int, default=42, help="seed of the noise and the dataset")
    oracle.add_argument(
        "--annotators",
        type=_noise_rates,
        default=(),
        help="simulated annotators' noise rates (a pool; labeling.annotators_per_item of "
        "them answer each query): 0.05,0.2,0.3",
    )
    oracle.add_argument(
        "--echo-features", action="store_true", help="send the query's features with the label"
    )
    oracle.add_argument("--config", type=Path, help=config_help)
    oracle.set_defaults(handler=_oracle)

    train = command("train", "train the configured model on a labelled file: a warm start")
    train.add_argument("--data", type=Path, metavar="FILE", required=True, help="labelled file")
    train.add_argument("--target", metavar="COLUMN", required=True, help="the label column")
    train.add_argument("--id", dest="id_column", metavar="COLUMN", help="the id column")
    train.add_argument("--out", type=Path, required=True, help="the signed model file to write")
    train.add_argument("--config", type=Path, help=config_help)
    train.set_defaults(handler=_train)

    config = command("config", "print the effective settings, secrets masked, and their source")
    config.add_argument("--config", type=Path, help=config_help)
    config.add_argument("--json", action="store_true", help="one JSON object instead")
    config.set_defaults(handler=_show_config)

    _add_label_command(commands)

    checkpoint = command("checkpoint", "look into checkpoints")
    checkpoint_commands = checkpoint.add_subparsers(dest="checkpoint_command", required=True)
    inspect = checkpoint_commands.add_parser(
        "inspect",
        formatter_class=formatter,
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
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (SettingsError, CheckpointError, CheckpointRefused, KafkaUnavailable) as exc:
        print(f"stream-al: {exc}", file=sys.stderr)
        return 2
    except (KafkaError, TransportError) as exc:
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
