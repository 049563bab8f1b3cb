"""``stream-al oracle``: a simulated labeler that answers queries with the dataset's labels.

It reads the oracle topic as a consumer group (several labelers share the queue), waits
``delay`` seconds per query as a human would, and answers on the labels topic with the
true label, or with probability ``noise`` a wrong one. Like a person's answers, they
carry only the id and the label: the service joins them with the features it logged on
the oracle topic. ``echo_features`` sends the query's features along too.

With ``labeling.annotators_per_item`` = k above 1 it plays k annotators: each query is
answered by k distinct ones (``simulated-1`` ...), each with a noise rate of its own
(``annotators``: a pool of at least k rates, k drawn per query; else k of rate ``noise``).
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Sequence

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from stream_al.schemas import LabelMessage, Query, encode
from stream_al.service import kafka_io
from stream_al.service.preflight import check_cluster
from stream_al.settings import Settings
from stream_al.sim.datasets import Source, examples_of, source_name
from stream_al.sim.simulate import NoisyOracle

log = logging.getLogger(__name__)

ANNOTATOR = "simulated-oracle"


def answer_queries(
    settings: Settings,
    dataset: Source,
    *,
    delay: float = 0.0,
    noise: float = 0.0,
    seed: int = 42,
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
    idle_exit_seconds: float | None = None,
    echo_features: bool = False,
    annotators: Sequence[float] = (),
) -> int:
    """Answer queries until ``stop`` is set (or nothing arrived for ``idle_exit_seconds``).

    ``ready`` is set once this labeler has been given its share of the oracle topic.
    """
    if delay < 0:
        raise ValueError(f"--delay must be >= 0, got {delay}")
    truth = {example.id: example.label for example in examples_of(dataset, seed=seed)}
    k = settings.labeling.annotators_per_item
    classes = list(truth.values())
    if annotators or k > 1:
        rates = list(annotators) or [noise] * k
        if len(rates) < k:
            raise ValueError(
                f"--annotators gives {len(rates)} noise rates for "
                f"labeling.annotators_per_item = {k}: give at least k"
            )
        pool = [
            (f"simulated-{i + 1}", NoisyOracle(classes, rate, seed + 1000 * (i + 1)))
            for i, rate in enumerate(rates)
        ]
    else:
        pool = [(ANNOTATOR, NoisyOracle(classes, noise, seed))]
    draw = random.Random(seed)
    stop = stop or threading.Event()
    topics = settings.topics
    check_cluster(settings.kafka, () if topics.create else [topics.oracle, topics.labels])
    if topics.create:
        kafka_io.ensure_topics(settings)
    consumer = KafkaConsumer(
        **settings.kafka.client_config(),
        # Labelers of one oracle topic share its queue; those of another topic are apart.
        group_id=f"stream-al-labelers.{settings.topics.oracle}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    kafka_io.subscribe(consumer, settings.topics.oracle)
    producer = kafka_io.producer(settings)
    # (due time, sequence, query, source partition, offset): answered in due order.
    waiting: list[tuple[float, int, Query, TopicPartition, int]] = []
    answered = sequence = 0
    last_activity = time.monotonic()
    outages = kafka_io.Outages("the simulated oracle")
    try:
        while not stop.is_set():
            polled = {}
            with outages.step():
                polled = consumer.poll(timeout_ms=50)
            if ready is not None and not ready.is_set() and consumer.assignment():
                ready.set()
            for tp, records in polled.items():
                for record in records:
                    try:
                        query = Query.model_validate_json(record.value)
                    except ValueError as error:
                        log.warning(
                            "skipping an unreadable query at offset %d: %s", record.offset, error
                        )
                        continue
                    sequence += 1
                    due = time.monotonic() + delay
                    heapq.heappush(waiting, (due, sequence, query, tp, record.offset))
                    last_activity = time.monotonic()
            now = time.monotonic()
            done: dict[TopicPartition, int] = {}
            while waiting and waiting[0][0] <= now:
                _, _, query, tp, offset = heapq.heappop(waiting)
                true_label = truth.get(query.id)
                if true_label is None:
                    log.warning(
                        "query for %r is not in %s; not answered", query.id, source_name(dataset)
                    )
                else:
                    chosen = pool if len(pool) == k else draw.sample(pool, k)
                    for name, oracle in chosen:
                        label = LabelMessage(
                            id=query.id,
                            label=oracle.answer(true_label),
                            annotator=name,
                            features=query.features if echo_features else None,
                        )
                        producer.send(
                            settings.topics.labels, key=query.id.encode(), value=encode(label)
                        )
                    answered += 1
                done[tp] = max(done.get(tp, 0), offset + 1)
            if done:
                producer.flush()
                # Commit only up to the oldest query still waiting on each partition.
                for _, _, _, tp, offset in waiting:
                    if tp in done:
                        done[tp] = min(done[tp], offset)
                try:
                    consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in done.items()})
                except KafkaError as error:
                    # A rebalance moved the partitions: whoever gets them answers these
                    # queries again, and the service refuses the second label as a duplicate.
                    log.warning("could not commit answered queries: %s", error)
            idle = time.monotonic() - last_activity
            if idle_exit_seconds is not None and not waiting and idle > idle_exit_seconds:
                break
    finally:
        producer.flush()
        producer.close()
        consumer.close(autocommit=False)
    log.info("answered %d queries", answered)
    return answered
