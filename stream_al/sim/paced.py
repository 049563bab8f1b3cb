"""Labelers of fixed capacity on a stream whose rate varies: what a budget does to them.

The stream alternates phases of ``high_rate`` and ``high_rate / ratio`` samples a second
(day and night), evenly spaced in time; each sample carries its time as ``timestamp``.
Queries join one queue that the labelers work through oldest first, one answer every
``3600 / capacity_per_hour`` seconds; the learner's ``pending_ttl_seconds`` makes a label
that comes too late expire (an answer wasted). Every ``backlog_every`` seconds the queue
length is read and handed to the learner (``strategy.target_backlog`` follows it), as the
service reads the labelers' consumer lag. Deterministic: no randomness beyond the
learner's own seeds.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from stream_al.core.config import LearnerConfig
from stream_al.core.learner import ActiveLearner, LabelStatus
from stream_al.schemas import LabelMessage, Sample
from stream_al.sim.datasets import Example


@dataclass(frozen=True, slots=True)
class PacedResult:
    samples: int
    queries: int
    labels_learned: int
    labels_expired: int
    #: Queue length at the readings: mean and largest.
    backlog_mean: float
    backlog_max: int
    #: Prequential accuracy over all samples.
    accuracy: float
    #: Queries asked in the fast phases and in the slow ones.
    queries_fast: int
    queries_slow: int


def simulate_paced(
    examples: Iterable[Example],
    config: LearnerConfig,
    *,
    high_rate: float = 5.0,
    ratio: float = 10.0,
    phase_seconds: float = 1800.0,
    capacity_per_hour: float = 300.0,
    backlog_every: float = 10.0,
) -> PacedResult:
    """Replay ``examples`` at a varying rate to labelers of fixed capacity."""
    examples = list(examples)
    truth = {example.id: example.label for example in examples}
    learner = ActiveLearner(config)
    service_seconds = 3600.0 / capacity_per_hour
    queue: deque[tuple[str, str]] = deque()  # (sample id, true label), oldest first
    labeler_free_at = 0.0
    next_reading = backlog_every
    readings: list[int] = []
    t = 0.0
    correct = samples = expired = 0
    queries_by_phase = [0, 0]

    def labelers_work(until: float) -> None:
        nonlocal labeler_free_at, expired
        while queue and labeler_free_at + service_seconds <= until:
            labeler_free_at += service_seconds
            sample_id, truth = queue.popleft()
            answer = LabelMessage(id=sample_id, label=truth)
            if learner.learn(answer, now=labeler_free_at).status is LabelStatus.EXPIRED:
                expired += 1
        if not queue:
            labeler_free_at = max(labeler_free_at, until)  # idle labelers wait for work

    for example in examples:
        fast = int(t // phase_seconds) % 2 == 0
        rate = high_rate if fast else high_rate / ratio
        t += 1.0 / rate
        labelers_work(t)
        while next_reading <= t:
            readings.append(len(queue))
            learner.observe_backlog(len(queue))
            next_reading += backlog_every
        sample = Sample(
            id=example.id,
            features=example.features,
            timestamp=datetime.fromtimestamp(t, UTC),
        )
        scored = learner.score(sample, now=t)
        samples += 1
        correct += scored.label == example.label
        for query in scored.queries:
            queue.append((query.id, truth[query.id]))
            queries_by_phase[0 if fast else 1] += 1
    return PacedResult(
        samples=samples,
        queries=learner.policy.queries,
        labels_learned=learner.labels_learned,
        labels_expired=expired,
        backlog_mean=statistics.fmean(readings) if readings else 0.0,
        backlog_max=max(readings, default=0),
        accuracy=correct / samples if samples else 0.0,
        queries_fast=queries_by_phase[0],
        queries_slow=queries_by_phase[1],
    )
