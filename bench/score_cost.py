"""Process CPU per sample of ``ActiveLearner.score``, split into its parts.

Usage: python bench/score_cost.py [--samples N] [--rounds R]

The learner is the one ``bench/throughput.py`` runs: logistic regression warmed on 2,000
labels, the default strategy (adaptive, margin, budget 0.05), scoring hyperplane samples.
In one run, rounds interleaved so that machine load hits every part alike, it times over
the same N samples:

  predict   ``model.predict_proba_one`` alone;
  measure   ``predict_proba_one`` + the uncertainty measure, minus predict;
  strategy  the whole ``learner.score`` (on a fresh copy of the warm learner each round),
            minus predict + measure: the policy's decision and the learner's bookkeeping.

Figures are the median over rounds of ``time.process_time`` per sample (us), and
``score / predict``: the ratio is the steadier figure on a shared machine, since load
inflates both sides alike. Target (issue 12): score <= 6 us.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable

from stream_al.core.config import LearnerConfig, ModelConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner
from stream_al.schemas import LabelMessage, Sample
from stream_al.sim.datasets import stream


def warm_learner(labels: int = 2000) -> ActiveLearner:
    """``bench/throughput.py``'s learner: logreg, budget 0.05, warmed on ``labels`` labels."""
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.samples
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

    times: dict[str, list[float]] = {"predict": [], "predict+measure": [], "score": []}
    queried = 0
    for _ in range(args.rounds):
        times["predict"].append(cpu_per_sample(predict, n))
        times["predict+measure"].append(cpu_per_sample(predict_measure, n))
        learner = copy.deepcopy(warm)
        score = learner.score
        results = []

        def score_all(score: Callable[..., object] = score, results: list = results) -> None:
            for sample in samples:
                results.append(score(sample, 0.0))

        times["score"].append(cpu_per_sample(score_all, n))
        queried = learner.policy.queries
    p, pm, s = (statistics.median(times[k]) for k in ("predict", "predict+measure", "score"))
    print(
        f"learner.score, logreg warmed on 2,000 labels, hyperplane, {n} samples, "
        f"median of {args.rounds} rounds (process CPU, us per sample)"
    )
    print(f"  predict                 {p:7.2f}")
    print(f"  measure                 {pm - p:7.2f}")
    print(f"  strategy + bookkeeping  {s - pm:7.2f}")
    print(f"  learner.score           {s:7.2f}   (target <= 6)")
    print(f"  score / predict         {s / p:7.2f}")
    print(f"  queries in the last round: {queried} of {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
