"""Start a labeling client: the desk on Kafka, its metrics, and the web app or the terminal."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from stream_al.labeling.desk import LabelingDesk
from stream_al.labeling.metrics import LabelingMetrics
from stream_al.labeling.web import LabelingApp, WebServer
from stream_al.settings import Settings

log = logging.getLogger(__name__)


@contextmanager
def running_desk(settings: Settings) -> Iterator[LabelingDesk]:
    """A started desk with its metrics endpoint (when turned on); stopped on the way out."""
    labeling = settings.labeling
    metrics = LabelingMetrics(labeling.max_annotators_in_metrics)
    if labeling.metrics_port is not None:
        try:
            port = metrics.start(settings.metrics.host, labeling.metrics_port)
        except OSError as error:
            raise ValueError(
                f"cannot serve the labeling metrics on {settings.metrics.host}:"
                f"{labeling.metrics_port} (labeling.metrics_port): {error}"
            ) from error
        log.info("labeling metrics on http://%s:%d/metrics", settings.metrics.host, port)
    desk = LabelingDesk(settings, metrics)
    try:
        desk.start()
        yield desk
    finally:
        desk.stop()
        metrics.stop()


def web_app(settings: Settings, desk: LabelingDesk) -> LabelingApp:
    labeling = settings.labeling
    return LabelingApp(
        desk,
        token=None if labeling.token is None else labeling.token.get_secret_value(),
        classes=settings.learner.classes,
        undo_seconds=labeling.undo_seconds,
        # Leases are renewed by the page's refresh: three chances before one runs out.
        refresh_seconds=min(2.0, labeling.lease_seconds / 3),
    )


def serve_web(settings: Settings, stop: threading.Event) -> None:
    """Serve the web labeling app until ``stop`` is set."""
    with running_desk(settings) as desk:
        server = WebServer(web_app(settings, desk), settings.labeling.host, settings.labeling.port)
        server.start()
        print(f"labeling app on {server.url} (Ctrl-C stops it)", flush=True)
        try:
            while not stop.wait(1.0):
                if desk.error is not None:
                    raise ValueError(f"the labeling desk stopped: {desk.error}") from desk.error
        finally:
            server.stop()
