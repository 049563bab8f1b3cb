"""Prometheus metrics and the health/readiness HTTP endpoints of the service.

`ServiceMetrics` owns its own `prometheus_client.CollectorRegistry`, so several instances can
live in one process (tests run two "replicas" side by side). The service calls small, named
methods (``samples_scored(latencies)``, ``query_sent(reason)``, ...) rather than touching
metric objects, which keeps metric names and label values in one place. What happens to every
sample is handed over once per batch: a Prometheus call costs about 1-2 us.

Label values are closed sets of short codes, checked on every call: a label value that came from
a sample (an id, a key, an error message) would create one time series per sample and slowly
exhaust Prometheus' memory, so anything outside the known set is rejected with ``ValueError``.
Every known label value is created at zero up front, so ``rate()`` and dashboards work before
the first event instead of showing "no data".

`start()` serves, from a daemon thread:

- ``/metrics``: the registry in the Prometheus exposition format (negotiated from ``Accept``);
- ``/healthz``: 200 while the process is alive and the thread answers;
- ``/readyz``: 200 when every readiness check passes, otherwise 503 with a JSON body naming the
  failing checks (see `ReadinessCallback`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Literal, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from stream_al.core.drift import DRIFT_SIGNALS
from stream_al.core.estimate import (
    ESTIMATE_KINDS,
    ESTIMATE_SCOPES,
    AccuracyEstimate,
    EstimateKind,
    EstimateScope,
)
from stream_al.core.strategies.stopping import POLICY_EVENTS
from stream_al.core.types import QueryReason
from stream_al.schemas import DeadLetterReason

__all__ = [
    "ANSWER_KINDS",
    "DEAD_LETTER_REASONS",
    "DECISION_LATENCY_BUCKETS",
    "LABEL_LATENCY_BUCKETS",
    "LABEL_STATUSES",
    "QUERY_ORIGINS",
    "QUERY_REASONS",
    "READINESS_CHECKS",
    "BatchHistogram",
    "LabelOutcome",
    "QueryOrigin",
    "ReadinessCallback",
    "ServiceMetrics",
]

log = logging.getLogger(__name__)

#: What became of a label read from the labels topic: the learner's statuses
#: (`stream_al.core.learner.LabelStatus`) plus "invalid" for a label that could not be decoded.
LabelOutcome = Literal["learned", "skipped", "duplicate", "unknown_id", "expired", "invalid"]

#: What kind of answer a labels-topic message is: a class, a "don't know", or an undo.
AnswerKind = Literal["label", "skip", "correction"]
ANSWER_KINDS: Final[tuple[str, ...]] = get_args(AnswerKind)
#: The annotator label value shared by those beyond ``labeling.max_annotators_in_metrics``.
OTHER_ANNOTATORS: Final = "other"
QUERY_REASONS: Final[tuple[str, ...]] = get_args(QueryReason)
LABEL_STATUSES: Final[tuple[str, ...]] = get_args(LabelOutcome)
DEAD_LETTER_REASONS: Final[tuple[str, ...]] = get_args(DeadLetterReason)
SAMPLE_OUTCOMES: Final[tuple[str, ...]] = ("scored", "dead_lettered")
#: Whose query was recovered from the oracle topic: this replica's or another one's.
QueryOrigin = Literal["own", "other_replica"]
QUERY_ORIGINS: Final[tuple[str, ...]] = get_args(QueryOrigin)
#: The checks the service is expected to report; the callback may report others too.
READINESS_CHECKS: Final[tuple[str, ...]] = (
    "broker_reachable",
    "partitions_assigned",
    "model_loaded",
    "loop_progressing",
    "checkpoints_saving",
)

#: Scoring one sample takes tens of microseconds to a few milliseconds; 1 s is pathological.
DECISION_LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    50e-6, 100e-6, 250e-6, 500e-6,
    1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0,
)  # fmt: skip
#: Humans label in seconds (a simulated oracle) to a day (a queue worked through overnight).
LABEL_LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
)  # fmt: skip

#: Returns each readiness check's state by name; ready means non-empty and all True.
#: It runs on the HTTP thread on every ``/readyz`` and ``/metrics`` request, so it must be
#: cheap, must not block, and must only read state the service thread maintains.
ReadinessCallback = Callable[[], Mapping[str, bool]]

#: Reported as failing when no readiness callback has been set yet.
_NOT_CONFIGURED: Final = "readiness_configured"
#: Reported as failing when the readiness callback raised.
_CALLBACK_FAILED: Final = "readiness_callback"


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


def _gauge_value(value: float | None, missing: float) -> float:
    return missing if value is None else float(value)


class BatchHistogram(Collector):
    """A Prometheus histogram fed a batch of observations at a time.

    ``prometheus_client.Histogram.observe`` takes a lock and updates a bucket per call (about
    2 us); this one bins a batch in plain Python and takes its lock once per batch, so the
    per-sample cost is a ``bisect``. It is read at scrape time like any collector, and its
    series are those of ``Histogram`` (``_bucket`` with ``le``, ``_count``, ``_sum``).

    >>> registry = CollectorRegistry()
    >>> latency = BatchHistogram("latency_seconds", "Latency.", (0.1, 1.0), registry=registry)
    >>> latency.observe_many([0.05, 0.1, 0.5, 3.0])
    >>> registry.get_sample_value("latency_seconds_bucket", {"le": "0.1"})
    2.0
    >>> registry.get_sample_value("latency_seconds_count"), registry.get_sample_value(
    ...     "latency_seconds_sum")
    (4.0, 3.65)
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        if list(buckets) != sorted(set(buckets)) or not all(map(math.isfinite, buckets)):
            raise ValueError(f"buckets must be finite and strictly increasing, got {buckets}")
        self.name = name
        self.documentation = documentation
        self._bounds = tuple(buckets)
        self._le = [floatToGoString(bound) for bound in self._bounds] + ["+Inf"]
        # One count per bucket, not cumulative; the last is above every bound.
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: Sequence[float]) -> None:
        """Add ``values`` (an observation lands in the first bucket whose bound is >= it)."""
        bounds = self._bounds
        counts = [0] * len(self._counts)
        for value in values:
            counts[bisect_left(bounds, value)] += 1
        total = sum(values)
        with self._lock:
            for index, count in enumerate(counts):
                self._counts[index] += count
            self._sum += total

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for le, count in zip(self._le, counts, strict=True):
            running += count
            cumulative.append((le, float(running)))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=cumulative, sum_value=total
        )


class ServiceMetrics:
    """The service's metrics, in a registry of their own, plus the HTTP endpoints.

    Parameters
    ----------
    host
        Address the HTTP server binds to (``"0.0.0.0"`` in a container, loopback by default).
    port
        TCP port; 0 picks a free one, readable from `port` after `start()`.
    readiness
        Callback reporting readiness checks (see `ReadinessCallback`); can be set later with
        `set_readiness`. Until one is set the service reports not ready.
    process_metrics
        Also export the standard ``process_*`` and ``python_gc_*`` metrics.

    All recording methods are thread-safe (prometheus_client metrics are).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        readiness: ReadinessCallback | None = None,
        *,
        process_metrics: bool = True,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"metrics.port must be in [0, 65535], got {port}")
        self.host = host
        self._requested_port = port
        self._readiness = readiness
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._last_checkpoint: float | None = None

        self.registry = CollectorRegistry(auto_describe=True)
        if process_metrics:
            ProcessCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        reg = self.registry

        self._samples = Counter(
            "stream_al_samples_total",
            "Samples read from the samples topic, by outcome.",
            ["outcome"],
            registry=reg,
        )
        self._queries = Counter(
            "stream_al_queries_total",
            "Queries sent to the oracle topic, by reason.",
            ["reason"],
            registry=reg,
        )
        self._labels = Counter(
            "stream_al_labels_total",
            "Labels read from the labels topic, by what became of them.",
            ["status"],
            registry=reg,
        )
        self._dead_letters = Counter(
            "stream_al_dead_letters_total",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=reg,
        )
        self._checkpoint_failures = Counter(
            "stream_al_checkpoint_failures_total",
            "Checkpoints that could not be written (retried later; the service carries on).",
            registry=reg,
        )
        self._queries_recovered = Counter(
            "stream_al_queries_recovered_total",
            "Queries read back from the oracle topic into the pending store: this replica's "
            "own after a restart, and other replicas' so their labels are learned here too.",
            ["origin"],
            registry=reg,
        )
        self._rebalances = Counter(
            "stream_al_rebalances_total",
            "Consumer group rebalances this process took part in.",
            registry=reg,
        )
        self._predictions = Counter(
            "stream_al_predictions_total",
            "Predictions published to the predictions topic.",
            registry=reg,
        )
        self._query_rate = Gauge(
            "stream_al_query_rate_ratio",
            "Share of recent samples that were queried (realised labeling rate).",
            registry=reg,
        )
        self._budget = Gauge(
            "stream_al_budget_ratio",
            "Target share of samples to query (the labeling budget).",
            registry=reg,
        )
        self._threshold = Gauge(
            "stream_al_threshold",
            "Uncertainty threshold or quantile cut in force; NaN when the strategy has none.",
            registry=reg,
        )
        self._labels_remaining = Gauge(
            "stream_al_labels_remaining",
            "Labels left under the hard cap; +Inf when there is no cap.",
            registry=reg,
        )
        self._pending = Gauge(
            "stream_al_pending_queries",
            "Queries sent and still waiting for their label.",
            registry=reg,
        )
        self._accuracy = Gauge(
            "stream_al_accuracy_ratio",
            "Hard-sample accuracy: accuracy on recent *queried* samples, the hardest by "
            "construction (biased low; see stream_al_accuracy_estimate_ratio); NaN before "
            "the first label.",
            registry=reg,
        )
        self._stopped = Gauge(
            "stream_al_strategy_stopped",
            "1 while a stopping rule holds (target accuracy reached, or the estimate on a "
            "plateau: only random labels at the monitoring rate), else 0.",
            registry=reg,
        )
        self._labels_saved = Gauge(
            "stream_al_labels_saved",
            "Labels of the budget left unspent by the stopping rules.",
            registry=reg,
        )
        self._exploration_rate = Gauge(
            "stream_al_exploration_rate_ratio",
            "Share of samples drawn at random now (raised after a drift, lowered when stopped).",
            registry=reg,
        )
        self._policy_events = Counter(
            "stream_al_policy_events_total",
            "Changes the query policy made on its own: stopped, resumed, drift.",
            ["kind"],
            registry=reg,
        )
        self._drifts = Counter(
            "stream_al_drifts_total",
            "Drifts detected, by signal: errors (of the labels, strategy.drift_labels) or "
            "uncertainty.",
            ["signal"],
            registry=reg,
        )
        self._counted: dict[tuple[str, str], float] = {}
        estimate_labels = ["estimate", "scope"]
        self._estimate = Gauge(
            "stream_al_accuracy_estimate_ratio",
            "Unbiased estimate of the accuracy of all predictions: estimate=random (warm-up "
            "and exploration labels) or weighted (every label by 1 / its probability); "
            "scope=window (recent samples) or total; NaN while unknown.",
            estimate_labels,
            registry=reg,
        )
        self._estimate_low = Gauge(
            "stream_al_accuracy_estimate_low_ratio",
            "Lower bound of the accuracy estimate's confidence interval.",
            estimate_labels,
            registry=reg,
        )
        self._estimate_high = Gauge(
            "stream_al_accuracy_estimate_high_ratio",
            "Upper bound of the accuracy estimate's confidence interval.",
            estimate_labels,
            registry=reg,
        )
        self._estimate_labels = Gauge(
            "stream_al_accuracy_estimate_labels",
            "Labels the accuracy estimate rests on.",
            estimate_labels,
            registry=reg,
        )
        self._labels_learned = Gauge(
            "stream_al_labels_learned",
            "Labels the model has learned from, including those restored from a checkpoint.",
            registry=reg,
        )
        self._lag = Gauge(
            "stream_al_consumer_lag_messages",
            "Messages behind the partition's high watermark (highwater minus position).",
            ["topic", "partition"],
            registry=reg,
        )
        self._answers = Counter(
            "stream_al_answers_total",
            "Annotators' answers read from the labels topic, by kind (label, skip, "
            "correction); with several annotators per item an item takes k answers.",
            ["answer"],
            registry=reg,
        )
        self._agreement = Gauge(
            "stream_al_annotator_agreement_ratio",
            "Share of an annotator's votes that matched the aggregate of the item.",
            ["annotator"],
            registry=reg,
        )
        self._annotator_votes = Gauge(
            "stream_al_annotator_votes",
            "Votes of an annotator on decided items (the agreement ratio's denominator).",
            ["annotator"],
            registry=reg,
        )
        self._open_items = Gauge(
            "stream_al_items_awaiting_answers",
            "Queried items with some of their k answers in, waiting for the others.",
            registry=reg,
        )
        self._backlog = Gauge(
            "stream_al_labelers_backlog_messages",
            "Queries the labelers have not answered yet: the lag of their consumer group "
            "(labeling.group_id) on the oracle topic; NaN while unknown.",
            registry=reg,
        )
        self._backlog.set(math.nan)
        self._ready = Gauge(
            "stream_al_ready",
            "1 when every readiness check passes, else 0.",
            registry=reg,
        )
        self._ready.set_function(lambda: 1.0 if self.readiness()[0] else 0.0)
        self._checkpoint_age = Gauge(
            "stream_al_checkpoint_age_seconds",
            "Seconds since the last checkpoint was written; NaN before the first.",
            registry=reg,
        )
        self._checkpoint_age.set_function(self._seconds_since_checkpoint)
        self._decision_latency = BatchHistogram(
            "stream_al_decision_latency_seconds",
            "Time to score one sample and decide whether to query it.",
            DECISION_LATENCY_BUCKETS,
            registry=reg,
        )
        self._label_latency = Histogram(
            "stream_al_label_latency_seconds",
            "Time from sending a query to receiving its label.",
            buckets=LABEL_LATENCY_BUCKETS,
            registry=reg,
        )

        for outcome in SAMPLE_OUTCOMES:
            self._samples.labels(outcome=outcome)
        # Bound once: this one is counted for every sample, on the hot path.
        self._scored = self._samples.labels(outcome="scored")
        for reason in QUERY_REASONS:
            self._queries.labels(reason=reason)
        for status in LABEL_STATUSES:
            self._labels.labels(status=status)
        for dl_reason in DEAD_LETTER_REASONS:
            self._dead_letters.labels(reason=dl_reason)
        for kind in ANSWER_KINDS:
            self._answers.labels(answer=kind)
        # The series every dashboard query can rely on before an annotator is known.
        self._agreement.labels(annotator=OTHER_ANNOTATORS).set(math.nan)
        self._annotator_votes.labels(annotator=OTHER_ANNOTATORS).set(0)
        for origin in QUERY_ORIGINS:
            self._queries_recovered.labels(origin=origin)
        for kind in ESTIMATE_KINDS:
            for scope in ESTIMATE_SCOPES:
                self.set_accuracy_estimate(kind, scope, AccuracyEstimate.none())
        for event in POLICY_EVENTS:
            self._policy_events.labels(kind=event)
        for signal in DRIFT_SIGNALS:
            self._drifts.labels(signal=signal)
        self._exploration_rate.set(math.nan)
        # Unknown until the learner reports; NaN rather than a misleading 0.
        for gauge in (self._query_rate, self._budget, self._threshold, self._accuracy):
            gauge.set(math.nan)

    # -- recording ---------------------------------------------------------------------------

    def samples_scored(self, latencies: Sequence[float]) -> None:
        """Count a batch of samples that were scored (queried or not), with their decision
        latencies in seconds.

        Per batch, not per sample: a Prometheus call per sample cost more than the whole
        prediction (about 3.7 us against 4).
        """
        if latencies:
            self._scored.inc(len(latencies))
            self._decision_latency.observe_many(latencies)

    def sample_dead_lettered(self, reason: DeadLetterReason) -> None:
        """Count one sample that could not be scored and went to the dead-letter topic."""
        _check(reason, DEAD_LETTER_REASONS, "dead-letter reason")
        self._samples.labels(outcome="dead_lettered").inc()
        self._dead_letters.labels(reason=reason).inc()

    def label_dead_lettered(self, reason: DeadLetterReason) -> None:
        """Count one label sent to the dead-letter topic.

        Only ``stream_al_dead_letters_total`` moves; record the label's fate with
        `label_outcome` as well.
        """
        _check(reason, DEAD_LETTER_REASONS, "dead-letter reason")
        self._dead_letters.labels(reason=reason).inc()

    def query_sent(self, reason: QueryReason) -> None:
        """Count one query sent to the oracle."""
        _check(reason, QUERY_REASONS, "query reason")
        self._queries.labels(reason=reason).inc()

    def label_outcome(self, status: LabelOutcome) -> None:
        """Count one label read from the labels topic, by what became of it."""
        _check(status, LABEL_STATUSES, "label status")
        self._labels.labels(status=status).inc()

    def answer_received(self, kind: AnswerKind) -> None:
        """Count one decoded answer on the labels topic, by kind."""
        self._answers.labels(answer=_check(kind, ANSWER_KINDS, "answer kind")).inc()

    def set_agreement(
        self, agreement: Mapping[str, tuple[int, int]], max_annotators: int, open_items: int
    ) -> None:
        """Publish each annotator's (agreed, votes) with the aggregates.

        The first ``max_annotators`` annotators (in the order given) are named; the others
        are summed under ``other``, so the series stay bounded whatever names arrive.
        """
        named: dict[str, tuple[int, int]] = {}
        for index, (annotator, (agreed, votes)) in enumerate(agreement.items()):
            key = annotator if index < max_annotators else OTHER_ANNOTATORS
            was_agreed, was_votes = named.get(key, (0, 0))
            named[key] = (was_agreed + agreed, was_votes + votes)
        for annotator, (agreed, votes) in named.items():
            self._agreement.labels(annotator=annotator).set(agreed / votes if votes else math.nan)
            self._annotator_votes.labels(annotator=annotator).set(votes)
        self._open_items.set(open_items)

    def set_backlog(self, backlog: int | None) -> None:
        """Publish the labelers' backlog (None: unknown)."""
        self._backlog.set(math.nan if backlog is None else backlog)

    def predictions_sent(self, count: int) -> None:
        """Count ``count`` predictions published."""
        if count:
            self._predictions.inc(count)

    def rebalanced(self) -> None:
        """Count one consumer group rebalance (partitions assigned or revoked)."""
        self._rebalances.inc()

    def checkpoint_saved(self) -> None:
        """Note that a checkpoint was just written (drives the checkpoint age gauge)."""
        self._last_checkpoint = time.monotonic()

    def checkpoint_failed(self) -> None:
        """Count one checkpoint that could not be written."""
        self._checkpoint_failures.inc()

    def query_recovered(self, origin: QueryOrigin) -> None:
        """Count one query taken into the pending store from the oracle topic."""
        self._queries_recovered.labels(origin=_check(origin, QUERY_ORIGINS, "origin")).inc()

    def observe_label_latency(self, seconds: float) -> None:
        """Record how long a label took to arrive after its query was sent."""
        self._label_latency.observe(seconds)

    def set_learner_gauges(
        self,
        query_rate: float,
        budget: float,
        threshold: float | None,
        labels_remaining: int | None,
        pending: int,
        accuracy: float | None,
        labels_learned: int,
    ) -> None:
        """Publish the learner's current state.

        ``threshold`` None (no threshold) and ``accuracy`` None (nothing labeled yet) become
        NaN; ``labels_remaining`` None (no hard cap) becomes +Inf.
        """
        self._query_rate.set(query_rate)
        self._budget.set(budget)
        self._threshold.set(_gauge_value(threshold, math.nan))
        self._labels_remaining.set(_gauge_value(labels_remaining, math.inf))
        self._pending.set(pending)
        self._accuracy.set(_gauge_value(accuracy, math.nan))
        self._labels_learned.set(labels_learned)

    def set_accuracy_estimate(
        self, kind: EstimateKind, scope: EstimateScope, estimate: AccuracyEstimate
    ) -> None:
        """Publish one accuracy estimate with its interval (NaN while unknown)."""
        _check(kind, ESTIMATE_KINDS, "accuracy estimate")
        _check(scope, ESTIMATE_SCOPES, "accuracy estimate scope")
        self._estimate.labels(kind, scope).set(estimate.value)
        self._estimate_low.labels(kind, scope).set(estimate.low)
        self._estimate_high.labels(kind, scope).set(estimate.high)
        self._estimate_labels.labels(kind, scope).set(estimate.labels)

    def set_accuracy_estimates(
        self, estimate: Callable[[EstimateKind, EstimateScope], AccuracyEstimate]
    ) -> None:
        """Publish every accuracy estimate, ``estimate(kind, scope)`` (the learner's)."""
        for kind in ESTIMATE_KINDS:
            for scope in ESTIMATE_SCOPES:
                self.set_accuracy_estimate(kind, scope, estimate(kind, scope))

    def set_policy_state(
        self,
        stopped: bool,
        labels_saved: float,
        exploration_rate: float,
        events: Mapping[str, int],
        drifts: Mapping[str, int],
    ) -> None:
        """Publish the stopping and drift state; ``events`` and ``drifts`` are running totals."""
        self._stopped.set(1.0 if stopped else 0.0)
        self._labels_saved.set(labels_saved)
        self._exploration_rate.set(exploration_rate)
        for family, counter, allowed, totals in (
            ("kind", self._policy_events, POLICY_EVENTS, events),
            ("signal", self._drifts, DRIFT_SIGNALS, drifts),
        ):
            for name, total in totals.items():
                _check(name, allowed, f"policy {family}")
                before = self._counted.get((family, name), 0.0)
                if total > before:  # a restored learner's totals only ever add
                    counter.labels(name).inc(total - before)
                    self._counted[family, name] = total

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        """Publish one assigned partition's consumer lag in messages."""
        self._lag.labels(topic=topic, partition=str(partition)).set(lag)

    def remove_lag(self, topic: str, partition: int) -> None:
        """Drop a revoked partition's lag series, so it does not linger at its last value."""
        # Never reported, or already removed: nothing to drop.
        with contextlib.suppress(KeyError):
            self._lag.remove(topic, str(partition))

    # -- readiness ---------------------------------------------------------------------------

    def set_readiness(self, readiness: ReadinessCallback) -> None:
        """Install (or replace) the readiness callback."""
        self._readiness = readiness

    def readiness(self) -> tuple[bool, dict[str, bool]]:
        """Evaluate the readiness checks: (ready, state of each check)."""
        if self._readiness is None:
            return False, {_NOT_CONFIGURED: False}
        try:
            checks = {str(name): bool(ok) for name, ok in self._readiness().items()}
        except Exception:
            # A broken check must not take the endpoint down: report it as a failing check.
            log.exception("readiness callback failed")
            return False, {_CALLBACK_FAILED: False}
        return bool(checks) and all(checks.values()), checks

    def _seconds_since_checkpoint(self) -> float:
        if self._last_checkpoint is None:
            return math.nan
        return time.monotonic() - self._last_checkpoint

    # -- HTTP server -------------------------------------------------------------------------

    def start(self) -> int:
        """Start serving on a daemon thread; return the bound port."""
        if self._server is not None:
            raise RuntimeError("metrics server already started")
        server_class = _IPv6Server if ":" in self.host else ThreadingHTTPServer
        try:
            server = server_class((self.host, self._requested_port), _handler_for(self))
        except OSError as exc:
            raise OSError(
                f"metrics server cannot bind {self.host}:{self._requested_port} "
                f"(settings metrics.host / metrics.port): {exc}"
            ) from exc
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            # How often the loop checks for stop(): bounds how long stop() blocks.
            kwargs={"poll_interval": 0.1},
            name="stream-al-metrics",
            daemon=True,
        )
        self._thread.start()
        log.info("metrics server listening on %s:%d", self.host, self.port)
        return self.port

    def stop(self) -> None:
        """Stop serving and release the port; a no-op when not started."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def port(self) -> int:
        """The bound port once started, else the configured one."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:8000``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> ServiceMetrics:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _handler_for(metrics: ServiceMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, encoder(metrics.registry), content_type)
            elif path == "/healthz":
                self._reply(200, b"ok\n", "text/plain; charset=utf-8")
            elif path == "/readyz":
                ready, checks = metrics.readiness()
                body: dict[str, Any] = {
                    "ready": ready,
                    "checks": checks,
                    "failing": sorted(name for name, ok in checks.items() if not ok),
                }
                self._reply(
                    200 if ready else 503,
                    json.dumps(body).encode() + b"\n",
                    "application/json",
                )
            else:
                self._reply(404, b"not found\n", "text/plain; charset=utf-8")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Prometheus scrapes every few seconds; per-request lines would drown the logs.
            log.debug("%s " + format, self.address_string(), *args)

    return Handler
