"""Prometheus metrics of a labeling client, on its own registry and endpoint.

Label values are closed sets (answer kinds), except the annotator's name on the agreement
gauge: annotators are a team, few by nature, and capped by
``labeling.max_annotators_in_metrics`` (annotators beyond it are not exported).
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

AnswerKind = Literal["label", "skip", "correction", "stale", "refused"]
ANSWER_KINDS: tuple[AnswerKind, ...] = ("label", "skip", "correction", "stale", "refused")
#: Seconds from an item handed out to its answer: people take seconds to minutes.
ANSWER_SECONDS_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class LabelingMetrics:
    """What the labeling desk reports; `start` serves ``/metrics`` from a daemon thread."""

    def __init__(self, max_annotators: int = 50) -> None:
        self.registry = CollectorRegistry()
        self.max_annotators = max_annotators
        self._named: set[str] = set()
        self.answers = Counter(
            "stream_al_labeling_answers_total",
            "Answers sent by labelers, by kind (label, skip, correction), and items dropped "
            "as stale or answers refused (the item went to another after its lease ran out)",
            ["kind"],
            registry=self.registry,
        )
        for kind in ANSWER_KINDS:
            self.answers.labels(kind)
        self.answer_seconds = Histogram(
            "stream_al_labeling_answer_seconds",
            "Time from an item shown to a labeler to their answer",
            buckets=ANSWER_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.queue_items = Gauge(
            "stream_al_labeling_queue_items",
            "Fetched items that still need an annotator in this client",
            registry=self.registry,
        )
        self.lag = Gauge(
            "stream_al_labeling_lag_records",
            "Queries on the oracle topic not yet committed by the labelers' group "
            "(on this client's partitions): the labelers' backlog",
            registry=self.registry,
        )
        self.agreement = Gauge(
            "stream_al_labeling_agreement_ratio",
            "Share of an annotator's labels that matched the item's majority (k >= 2)",
            ["annotator"],
            registry=self.registry,
        )
        self.port: int | None = None
        self._server: object | None = None

    def answered(self, kind: AnswerKind, seconds: float | None = None) -> None:
        self.answers.labels(kind).inc()
        if seconds is not None:
            self.answer_seconds.observe(seconds)

    def set_agreement(self, by_annotator: dict[str, float]) -> None:
        for annotator, share in by_annotator.items():
            if annotator not in self._named and len(self._named) >= self.max_annotators:
                continue  # bounded series: the first annotators are named, no more
            self._named.add(annotator)
            self.agreement.labels(annotator).set(share)

    def start(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` (0: a free port); returns the port."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        self.port = int(server.server_address[1])
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server.server_close()  # type: ignore[attr-defined]
            self._server = None
