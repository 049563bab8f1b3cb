"""Model factories and a text stream for the tests of ``model.factory``."""

from __future__ import annotations

import random

from river import compose, ensemble, feature_extraction, naive_bayes

from stream_al.sim.datasets import Example

_GOOD = ["great", "love", "excellent", "fine", "happy", "works", "recommend"]
_BAD = ["awful", "broken", "hate", "refund", "poor", "slow", "never"]
_FILLER = ["the", "a", "product", "it", "was", "and", "delivery", "box", "is"]


def bag_of_words() -> compose.Pipeline:
    """Words counted from the ``text`` feature, then a multinomial naive Bayes."""
    return compose.Pipeline(
        compose.Select("text"),
        feature_extraction.BagOfWords(on="text", lowercase=True),
        naive_bayes.MultinomialNB(alpha=1.0),
    )


def committee(seed: int) -> ensemble.BaggingClassifier:
    """A river ensemble, so the committee measures can ask its members."""
    return ensemble.BaggingClassifier(naive_bayes.GaussianNB(), n_models=3, seed=seed)


def not_a_classifier() -> object:
    return object()


def reviews(n: int, seed: int) -> list[Example]:
    """Short product reviews, ``good`` or ``bad`` by their words (10 % ambiguous)."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        label = rng.choice(["good", "bad"])
        words = rng.sample(_FILLER, 4) + rng.sample(_GOOD if label == "good" else _BAD, 2)
        if rng.random() < 0.1:
            words.append(rng.choice(_BAD if label == "good" else _GOOD))
        rng.shuffle(words)
        examples.append(Example(f"review-{i}", {"text": " ".join(words)}, label))
    return examples
