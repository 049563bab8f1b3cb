"""How the service reaches Kafka: one narrow interface (:mod:`.base`), two clients."""

from __future__ import annotations

from stream_al.settings import Settings
from stream_al.transport.base import (
    Batch,
    Delivery,
    DeliveryTimeout,
    GroupConsumer,
    LogConsumer,
    Producer,
    Record,
    TopicPartition,
    Transport,
    TransportError,
)

__all__ = [
    "Batch",
    "Delivery",
    "DeliveryTimeout",
    "GroupConsumer",
    "LogConsumer",
    "Producer",
    "Record",
    "TopicPartition",
    "Transport",
    "TransportError",
    "open_transport",
]


def open_transport(settings: Settings) -> Transport:
    """The transport ``settings.kafka.client`` names (librdkafka's is imported only then)."""
    if settings.kafka.client == "librdkafka":
        from stream_al.transport.librdkafka import LibrdkafkaTransport

        return LibrdkafkaTransport(settings)
    from stream_al.transport.kafka_python import KafkaPythonTransport

    return KafkaPythonTransport(settings)
