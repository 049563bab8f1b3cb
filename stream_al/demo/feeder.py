"""``stream-al produce``: write a dataset to the samples topic, one message per sample."""

from __future__ import annotations

import logging
import threading
import time

from stream_al.schemas import Sample, encode
from stream_al.service import kafka_io
from stream_al.service.preflight import check_cluster
from stream_al.settings import Settings
from stream_al.sim.datasets import Source, examples_of, source_name

log = logging.getLogger(__name__)

TRUTH_HINT = "true label (a hint for the demo)"


def produce(
    settings: Settings,
    dataset: Source,
    *,
    rate: float | None = None,
    limit: int | None = None,
    seed: int = 42,
    hint_truth: bool = False,
    stop: threading.Event | None = None,
) -> int:
    """Send the samples of ``dataset`` (a name or examples), keyed by id, at most ``rate`` a
    second; return the count.

    ``hint_truth`` puts the true label in each sample's metadata, for a person who plays the
    expert in ``make demo-label`` (the model never learns from metadata). ``stop`` ends the
    stream early.
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"--rate must be positive, got {rate}")
    check_cluster(settings.kafka, () if settings.topics.create else [settings.topics.samples])
    if settings.topics.create:
        kafka_io.ensure_topics(settings)
    producer = kafka_io.producer(settings)
    topic = settings.topics.samples
    started = time.monotonic()
    sent = 0
    try:
        for example in examples_of(dataset, seed=seed, limit=limit):
            if stop is not None and stop.is_set():
                break
            if rate is not None:
                # Pace against the start time, so the average rate holds whatever the jitter.
                delay = started + sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            metadata = {TRUTH_HINT: example.label} if hint_truth else None
            sample = Sample(id=example.id, features=example.features, metadata=metadata)
            producer.send(topic, key=example.id.encode(), value=encode(sample))
            sent += 1
        producer.flush()
    finally:
        producer.close()
    log.info("sent %d samples of %s to %s", sent, source_name(dataset), topic)
    return sent
