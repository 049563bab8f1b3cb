"""Process CPU per message of the service's edges: decode a sample, encode its prediction.

Usage: python bench/codec.py [--samples N] [--rounds R]

Over the same N hyperplane samples (10 features, as ``bench/throughput.py`` writes them),
side by side in one run, rounds interleaved, best of rounds (load only ever adds time):

  decode  reference: ``json.loads`` then ``model_validate`` (``schemas._decode_reference``,
          the path every dead-letter detail comes from); fast: ``decode_sample``
          (pydantic's ``model_validate_json``, falling back to the reference on refusal);
  encode  reference: ``encode(scored.prediction(...))`` (a validated ``Prediction``);
          fast: ``scored.encoded_prediction(...)`` (the same bytes from a plain dict).

Then the ratio reference / fast for decode + encode per message.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from stream_al.core.config import LearnerConfig, StrategyConfig
from stream_al.core.learner import ActiveLearner, Scored
from stream_al.schemas import (
    LabelMessage,
    Sample,
    _decode_reference,
    decode_sample,
    encode,
)
from stream_al.sim.datasets import stream


def cpu_per_message(run: Callable[[], object], n: int) -> float:
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
    raws = [
        encode(Sample(id=f"s-{i}", features=examples[i % len(examples)].features)) for i in range(n)
    ]
    learner = ActiveLearner(LearnerConfig(strategy=StrategyConfig(budget=0.05)))
    for e in stream("hyperplane", seed=7, limit=200):
        learner.learn(LabelMessage(id=f"w-{e.id}", label=e.label, features=e.features), now=0.0)
    samples = [decode_sample(raw) for raw in raws]
    scored: list[Scored] = [learner.score(sample, now=0.0) for sample in samples]
    pairs = list(zip(scored, samples, strict=True))
    version = learner.labels_learned
    assert all(
        s.encoded_prediction(x, version) == encode(s.prediction(x, version)) for s, x in pairs
    )

    loops: dict[str, Callable[[], object]] = {
        "decode, reference": lambda: [
            _decode_reference(raw, Sample, "invalid_sample", 1_000_000) for raw in raws
        ],
        "decode, fast": lambda: [decode_sample(raw) for raw in raws],
        "encode, reference": lambda: [encode(s.prediction(x, version)) for s, x in pairs],
        "encode, fast": lambda: [s.encoded_prediction(x, version) for s, x in pairs],
    }
    times: dict[str, float] = dict.fromkeys(loops, float("inf"))
    for _ in range(args.rounds):
        for name, loop in loops.items():
            times[name] = min(times[name], cpu_per_message(loop, n))
    print(f"{n} hyperplane samples (10 features), best of {args.rounds} rounds")
    print(f"{'':20} {'CPU us/message':>15}")
    for name, us in times.items():
        print(f"{name:20} {us:15.2f}")
    before = times["decode, reference"] + times["encode, reference"]
    after = times["decode, fast"] + times["encode, fast"]
    print(f"{'decode + encode':20} {before:7.2f} -> {after:.2f}  ({before / after:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
