"""``stream-al produce``: write a dataset to the samples topic, one message per sample."""

from __future__ import annotations

import logging
import time

from stream_al.schemas import Sample, encode
from stream_al.service import kafka_io
from stream_al.service.preflight import check_cluster
from stream_al.settings import Settings
from stream_al.sim.datasets import Source, examples_of, source_name

log = logging.getLogger(__name__)


def produce(
    settings: Settings,
    dataset: Source,
    *,
    rate: float | None = None,
    limit: int | None = None,
    seed: int = 42,
) -> int:
    """Send the samples of ``dataset`` (a name or examples), keyed by id, at most ``rate`` a
    second; return the count."""
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
            if rate is not None:
                # Pace against the start time, so the average rate holds whatever the jitter.
                delay = started + sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sample = Sample(id=example.id, features=example.features)
            producer.send(topic, key=example.id.encode(), value=encode(sample))
            sent += 1
        producer.flush()
    finally:
        producer.close()
    log.info("sent %d samples of %s to %s", sent, source_name(dataset), topic)
    return sent
