"""Start the service as a process: metrics endpoint, signals, clean exit."""

from __future__ import annotations

import logging
import signal

from stream_al.service.app import Service
from stream_al.service.checkpointing import Checkpointer, open_store
from stream_al.service.metrics import ServiceMetrics
from stream_al.settings import Settings

log = logging.getLogger(__name__)


def run_service(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT, then flush, commit and return 0."""
    metrics = ServiceMetrics(settings.metrics.host, settings.metrics.port)
    store = open_store(settings)
    checkpointer = Checkpointer(settings, store) if store is not None else None
    service = Service(settings, metrics=metrics, checkpointer=checkpointer)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: service.stop())
    if settings.metrics.enabled:
        port = metrics.start()
        log.info("metrics on http://%s:%d/metrics", settings.metrics.host, port)
    try:
        service.run()
    finally:
        metrics.stop()
    return 0
