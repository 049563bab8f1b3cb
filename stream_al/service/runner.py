"""Start the service as a process: pre-flight, metrics endpoint, signals, clean exit."""

from __future__ import annotations

import logging
import signal

from stream_al.service import kafka_io
from stream_al.service.app import Service
from stream_al.service.checkpointing import Checkpointer, open_store
from stream_al.service.metrics import ServiceMetrics
from stream_al.service.preflight import check_cluster
from stream_al.settings import Settings, SettingsError

log = logging.getLogger(__name__)


def run_service(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT, then flush, commit and return 0.

    Raises ``KafkaUnavailable`` when the cluster cannot be used, ``SettingsError`` when the
    metrics port cannot be had: the command line turns both into a ``stream-al:`` message.
    """
    check_cluster(settings.kafka, () if settings.topics.create else kafka_io.topic_names(settings))
    metrics = ServiceMetrics(settings.metrics.host, settings.metrics.port)
    if settings.metrics.enabled:
        try:
            port = metrics.start()
        except OSError as error:
            raise SettingsError(
                f"{error}; set metrics.port (STREAM_AL_METRICS__PORT) to a free port, or 0 for any"
            ) from error
        log.info("metrics on http://%s:%d/metrics", settings.metrics.host, port)
    try:
        store = open_store(settings)
        checkpointer = Checkpointer(settings, store) if store is not None else None
        service = Service(settings, metrics=metrics, checkpointer=checkpointer)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: service.stop())
        service.run()
    finally:
        metrics.stop()
    return 0
