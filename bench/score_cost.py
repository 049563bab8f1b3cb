"""Process CPU per sample of ``ActiveLearner.score``, split into its parts.

Usage: python bench/score_cost.py [--samples N] [--rounds R] [--against GIT_REF]

The learner is the one ``bench/throughput.py`` runs: logistic regression warmed on 2,000
labels, the default strategy (adaptive, margin, budget 0.05), scoring hyperplane samples.
In one run, rounds interleaved so that machine load hits every part alike, it times over
the same N samples:

  predict   ``model.predict_proba_one`` alone;
  measure   ``predict_proba_one`` + the uncertainty measure, minus predict;
  strategy  the whole ``learner.score`` (on a fresh copy of the warm learner each round),
            minus predict + measure: the policy's decision and the learner's bookkeeping.

Figures are the best over rounds of ``time.process_time`` per sample (us): load on a
shared machine only ever adds time. With ``--against REF`` (e.g. the commit before the
lean core) the same rounds also run on that revision of ``stream_al``, checked out in a
temporary git worktree (removed on exit), each round one fresh process per side,
alternating, so that load hits both alike; then the ratio of the two is the figure to
trust. Target (issue 12): score <= 6 us.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from revision import ROOT, checkout, importing

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.schemas import LabelMessage, Sample
from stream_al.sim.datasets import stream


def warm_learner(labels: int = 2000) -> ActiveLearner:
    """``bench/throughput.py``'s learner: logreg, budget 0.05, warmed on ``labels`` labels."""
    # Not imported from bench/throughput.py on purpose: with --against this script runs on
    # an older stream_al, and throughput.py imports the service and the transport of today.
    config = LearnerConfig(model=ModelConfig(name="logreg"), strategy=StrategyConfig(budget=0.05))
    learner = ActiveLearner(config)
    history = stream("hyperplane", seed=7, limit=labels)
    learner.warm_start(
        (LabelMessage(id=f"w-{e.id}", label=e.label, features=e.features) for e in history),
        now=0.0,
    )
    return learner


def cpu_per_sample(run: Callable[[], None], n: int) -> float:
    started = time.process_time()
    run()
    return (time.process_time() - started) / n * 1e6


def one_round(n: int) -> dict[str, float]:
    """One round in this process: CPU us per sample of each part, and the queries made."""
    examples = list(stream("hyperplane"))
    samples = [Sample(id=f"s-{i}", features=examples[i % len(examples)].features) for i in range(n)]
    features = [sample.features for sample in samples]
    warm = warm_learner()
    model, measure = warm.model, warm.measure

    def predict() -> None:
        predict_proba_one = model.predict_proba_one
        for x in features:
            predict_proba_one(x)

    def predict_measure() -> None:
        predict_proba_one = model.predict_proba_one
        for x in features:
            measure(model, x, predict_proba_one(x))

    learner = copy.deepcopy(warm)

    def score_all() -> None:
        score = learner.score
        for sample in samples:
            score(sample, 0.0)

    return {
        "predict": cpu_per_sample(predict, n),
        "predict+measure": cpu_per_sample(predict_measure, n),
        "score": cpu_per_sample(score_all, n),
        "queries": learner.policy.queries,
    }


def in_process(n: int, source: Path) -> dict[str, float]:
    """``one_round`` in a fresh interpreter importing ``stream_al`` from ``source``."""
    command = [sys.executable, __file__, "--one-round", "--samples", str(n)]
    done = subprocess.run(
        command, env=importing(source), check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout)


def best(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: min(r[key] for r in rounds) for key in rounds[0]}


def report(name: str, figures: dict[str, float]) -> None:
    p, pm, s = figures["predict"], figures["predict+measure"], figures["score"]
    print(f"{name}")
    print(f"  predict                 {p:7.2f}")
    print(f"  measure                 {pm - p:7.2f}")
    print(f"  strategy + bookkeeping  {s - pm:7.2f}")
    print(f"  learner.score           {s:7.2f}   (target <= 6)")
    print(f"  score / predict         {s / p:7.2f}")
    print(f"  queries                 {figures['queries']:7.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", metavar="GIT_REF", help="also time this revision")
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.samples
    if args.one_round:
        print(json.dumps(one_round(n)))
        return 0
    print(
        f"learner.score, logreg warmed on 2,000 labels, hyperplane, {n} samples, "
        f"best of {args.rounds} rounds (process CPU, us per sample)"
    )
    if args.against is None:
        report("this tree", best([one_round(n) for _ in range(args.rounds)]))
        return 0
    old: list[dict[str, float]] = []
    new: list[dict[str, float]] = []
    with checkout(args.against) as tree:
        for _ in range(args.rounds):
            old.append(in_process(n, tree))
            new.append(in_process(n, ROOT))
    before, after = best(old), best(new)
    report(f"{args.against}", before)
    report("this tree", after)
    print(f"  score, {args.against} / this tree: {before['score'] / after['score']:.2f}x")
    if before["queries"] != after["queries"]:
        print("  the two made different numbers of queries: decisions changed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
