"""Workarounds for kafka-python 3 behaviours the service must not inherit."""

from __future__ import annotations

import logging

from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

log = logging.getLogger(__name__)


def close_producer(producer: KafkaProducer, timeout: float) -> None:
    """Close ``producer``, waiting at most ``timeout`` s for what it still holds.

    kafka-python's ``close(timeout)`` flushes first and raises when the flush times out,
    leaving its sender thread running: during an outage a shutdown would end in a
    traceback. Here what is still held is abandoned (callers only close with undelivered
    messages that nothing was committed for) and the sender is stopped.
    """
    try:
        producer.close(timeout=timeout)
    except KafkaTimeoutError:
        log.warning("closing the producer with messages not delivered; they are dropped")
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
