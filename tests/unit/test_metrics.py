"""ServiceMetrics: what the service records is what /metrics renders; health and readiness."""

from __future__ import annotations

import json
import math
import random
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream_al.core.drift import DRIFT_SIGNALS
from stream_al.core.estimate import ESTIMATE_KINDS, ESTIMATE_SCOPES, AccuracyEstimate
from stream_al.core.strategies.stopping import POLICY_EVENTS
from stream_al.service.metrics import (
    ANSWER_KINDS,
    DEAD_LETTER_REASONS,
    DECISION_LATENCY_BUCKETS,
    LABEL_STATUSES,
    QUERY_ORIGINS,
    QUERY_REASONS,
    BatchHistogram,
    ServiceMetrics,
)


def samples(metrics: ServiceMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics as {(name, labels): value}, parsed from the rendered text."""
    with urllib.request.urlopen(f"{metrics.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, frozenset(labels.items()))]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def metrics() -> Iterator[ServiceMetrics]:
    m = ServiceMetrics(port=0, process_metrics=False)
    m.start()
    yield m
    m.stop()


def test_every_labelled_series_exists_at_zero_before_any_event(metrics: ServiceMetrics) -> None:
    rendered = samples(metrics)
    expected = (
        [("stream_al_samples_total", "outcome", o) for o in ("scored", "dead_lettered")]
        + [("stream_al_queries_total", "reason", r) for r in QUERY_REASONS]
        + [("stream_al_labels_total", "status", s) for s in LABEL_STATUSES]
        + [("stream_al_dead_letters_total", "reason", r) for r in DEAD_LETTER_REASONS]
    )
    for name, label, label_value in expected:
        assert rendered[(name, frozenset({(label, label_value)}))] == 0.0, (name, label_value)
    for name in ("stream_al_rebalances_total", "stream_al_predictions_total"):
        assert rendered[(name, frozenset())] == 0.0
    assert set(QUERY_REASONS) == {"uncertain", "exploration", "warm-up"}
    assert set(LABEL_STATUSES) == {
        "learned",
        "skipped",
        "duplicate",
        "unknown_id",
        "expired",
        "invalid",
    }


def test_counters_count_each_event_under_its_label(metrics: ServiceMetrics) -> None:
    metrics.samples_scored([1e-4, 2e-4])
    metrics.samples_scored([])
    metrics.samples_scored([3e-4])
    metrics.sample_dead_lettered("not_json")
    metrics.query_sent("uncertain")
    metrics.query_sent("uncertain")
    metrics.query_sent("warm-up")
    metrics.label_outcome("learned")
    metrics.label_outcome("expired")
    metrics.label_dead_lettered("expired")
    metrics.predictions_sent(1)
    metrics.predictions_sent(0)
    metrics.rebalanced()
    metrics.rebalanced()

    got = samples(metrics)

    def at(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    assert at("stream_al_samples_total", outcome="scored") == 3
    assert at("stream_al_samples_total", outcome="dead_lettered") == 1
    assert at("stream_al_queries_total", reason="uncertain") == 2
    assert at("stream_al_queries_total", reason="warm-up") == 1
    assert at("stream_al_queries_total", reason="exploration") == 0
    assert at("stream_al_labels_total", status="learned") == 1
    assert at("stream_al_labels_total", status="expired") == 1
    assert at("stream_al_labels_total", status="duplicate") == 0
    # A dead-lettered sample and a dead-lettered label both count as dead letters; only the
    # sample counts as a sample.
    assert at("stream_al_dead_letters_total", reason="not_json") == 1
    assert at("stream_al_dead_letters_total", reason="expired") == 1
    assert at("stream_al_dead_letters_total", reason="too_large") == 0
    assert at("stream_al_predictions_total") == 1
    assert at("stream_al_rebalances_total") == 2


def test_learner_gauges_render_and_missing_values_are_nan_or_inf(metrics: ServiceMetrics) -> None:
    # Before the learner reports, rates and threshold are unknown, not zero.
    assert math.isnan(value(metrics, "stream_al_query_rate_ratio"))
    assert math.isnan(value(metrics, "stream_al_budget_ratio"))

    metrics.set_learner_gauges(
        query_rate=0.12,
        budget=0.1,
        threshold=0.37,
        labels_remaining=42,
        pending=7,
        accuracy=0.875,
        labels_learned=100,
    )
    assert value(metrics, "stream_al_query_rate_ratio") == pytest.approx(0.12)
    assert value(metrics, "stream_al_budget_ratio") == pytest.approx(0.1)
    assert value(metrics, "stream_al_threshold") == pytest.approx(0.37)
    assert value(metrics, "stream_al_labels_remaining") == 42
    assert value(metrics, "stream_al_pending_queries") == 7
    assert value(metrics, "stream_al_accuracy_ratio") == pytest.approx(0.875)
    assert value(metrics, "stream_al_labels_learned") == 100

    metrics.set_learner_gauges(
        query_rate=0.0,
        budget=0.1,
        threshold=None,
        labels_remaining=None,
        pending=0,
        accuracy=None,
        labels_learned=0,
    )
    assert math.isnan(value(metrics, "stream_al_threshold"))
    assert value(metrics, "stream_al_labels_remaining") == math.inf
    assert math.isnan(value(metrics, "stream_al_accuracy_ratio"))
    assert value(metrics, "stream_al_query_rate_ratio") == 0.0


def test_lag_is_per_partition_and_revoked_partitions_disappear(metrics: ServiceMetrics) -> None:
    metrics.set_lag("samples", 0, 10)
    metrics.set_lag("samples", 1, 250)
    metrics.set_lag("labels", 0, 3)
    metrics.set_lag("samples", 0, 4)  # a newer reading replaces the old one
    assert value(metrics, "stream_al_consumer_lag_messages", topic="samples", partition="0") == 4
    assert value(metrics, "stream_al_consumer_lag_messages", topic="samples", partition="1") == 250
    assert value(metrics, "stream_al_consumer_lag_messages", topic="labels", partition="0") == 3

    metrics.remove_lag("samples", 1)
    metrics.remove_lag("samples", 1)  # removing twice is harmless
    lag_series = {
        labels for name, labels in samples(metrics) if name == "stream_al_consumer_lag_messages"
    }
    assert lag_series == {
        frozenset({("topic", "samples"), ("partition", "0")}),
        frozenset({("topic", "labels"), ("partition", "0")}),
    }


def test_histograms_bucket_observations(metrics: ServiceMetrics) -> None:
    metrics.samples_scored([30e-6, 300e-6])
    metrics.samples_scored([300e-6, 0.002])
    metrics.observe_label_latency(2.0)
    metrics.observe_label_latency(4000.0)

    def bucket(name: str, le: str) -> float:
        return value(metrics, f"{name}_bucket", le=le)

    decision = "stream_al_decision_latency_seconds"
    assert bucket(decision, "5e-05") == 1
    assert bucket(decision, "0.00025") == 1
    assert bucket(decision, "0.0005") == 3
    assert bucket(decision, "0.0025") == 4
    assert bucket(decision, "+Inf") == 4
    assert value(metrics, f"{decision}_count") == 4
    assert value(metrics, f"{decision}_sum") == pytest.approx(0.00263)

    label = "stream_al_label_latency_seconds"
    assert bucket(label, "1.0") == 0
    assert bucket(label, "2.5") == 1
    assert bucket(label, "3600.0") == 1
    assert bucket(label, "7200.0") == 2
    assert bucket(label, "86400.0") == 2


def test_checkpoint_age_is_nan_until_the_first_checkpoint(metrics: ServiceMetrics) -> None:
    assert math.isnan(value(metrics, "stream_al_checkpoint_age_seconds"))
    metrics.checkpoint_saved()
    age = value(metrics, "stream_al_checkpoint_age_seconds")
    assert 0.0 <= age < 5.0


@pytest.mark.parametrize(
    ("method", "bad"),
    [
        ("query_sent", "sample-000123"),
        ("label_outcome", "c0ffee-4a1b"),
        ("sample_dead_lettered", "KeyError: 'x1'"),
        ("label_dead_lettered", "offset-17"),
    ],
)
def test_label_values_outside_the_closed_sets_are_rejected(
    metrics: ServiceMetrics, method: str, bad: str
) -> None:
    with pytest.raises(ValueError, match="expected one of"):
        getattr(metrics, method)(bad)
    assert not any(bad in dict(labels).values() for _, labels in samples(metrics))


def test_no_per_sample_values_end_up_in_labels() -> None:
    """After every recording method ran, each label is from a small closed vocabulary."""
    m = ServiceMetrics(port=0)  # with the process and GC collectors, as in production
    with m:
        for reason in QUERY_REASONS:
            m.query_sent(reason)  # type: ignore[arg-type]
        for status in LABEL_STATUSES:
            m.label_outcome(status)  # type: ignore[arg-type]
        for dl_reason in DEAD_LETTER_REASONS:
            m.sample_dead_lettered(dl_reason)  # type: ignore[arg-type]
            m.label_dead_lettered(dl_reason)  # type: ignore[arg-type]
        m.samples_scored([0.001])
        m.predictions_sent(1)
        m.observe_label_latency(3.0)
        m.set_lag("samples", 2, 5)
        m.set_learner_gauges(0.1, 0.1, 0.5, 10, 1, 0.9, 3)
        for kind in ANSWER_KINDS:
            m.answer_received(kind)  # type: ignore[arg-type]
        # Three annotators, two named: the third is counted as "other".
        m.set_agreement({"ann": (3, 4), "bob": (1, 2), "cyd": (0, 5)}, 2, open_items=1)
        m.set_backlog(7)
        rendered = samples(m)

    allowed: Mapping[str, set[str]] = {
        "outcome": {"scored", "dead_lettered"},
        "reason": set(QUERY_REASONS) | set(DEAD_LETTER_REASONS),
        "status": set(LABEL_STATUSES),
        "origin": set(QUERY_ORIGINS),
        "topic": {"samples"},
        "partition": {"2"},
        "generation": {"0", "1", "2"},  # python_gc_* from the GC collector
        "estimate": set(ESTIMATE_KINDS),
        "scope": set(ESTIMATE_SCOPES),
        "kind": set(POLICY_EVENTS),
        "signal": set(DRIFT_SIGNALS),
        "answer": set(ANSWER_KINDS),
        "annotator": {"ann", "bob", "other"},
    }
    seen_label_names: set[str] = set()
    for name, labels in rendered:
        for label, label_value in labels:
            if label == "le":
                assert label_value == "+Inf" or float(label_value) > 0, (name, label_value)
                continue
            seen_label_names.add(label)
            assert label in allowed, f"{name} has unexpected label {label}={label_value!r}"
            assert label_value in allowed[label], f"{name}{{{label}={label_value!r}}}"
    assert {"outcome", "reason", "status", "topic", "partition"} <= seen_label_names


def test_healthz_answers_while_running(metrics: ServiceMetrics) -> None:
    assert get(f"{metrics.url}/healthz") == (200, b"ok\n")
    assert get(f"{metrics.url}/nope")[0] == 404


def readyz(metrics: ServiceMetrics) -> tuple[int, dict[str, object]]:
    status, body = get(f"{metrics.url}/readyz")
    return status, json.loads(body)


def test_readyz_is_503_naming_failing_checks_until_all_pass(metrics: ServiceMetrics) -> None:
    checks = {"broker_reachable": True, "partitions_assigned": False, "model_loaded": False}
    metrics.set_readiness(lambda: dict(checks))

    status, body = readyz(metrics)
    assert status == 503
    assert body["ready"] is False
    assert body["failing"] == ["model_loaded", "partitions_assigned"]
    assert body["checks"] == checks
    assert value(metrics, "stream_al_ready") == 0

    checks["partitions_assigned"] = checks["model_loaded"] = True
    status, body = readyz(metrics)
    assert (status, body["ready"], body["failing"]) == (200, True, [])
    assert value(metrics, "stream_al_ready") == 1

    checks["broker_reachable"] = False
    status, body = readyz(metrics)
    assert (status, body["failing"]) == (503, ["broker_reachable"])
    assert value(metrics, "stream_al_ready") == 0


def test_readyz_without_callback_or_with_a_broken_one_is_503(metrics: ServiceMetrics) -> None:
    status, body = readyz(metrics)
    assert status == 503
    assert body["failing"] == ["readiness_configured"]

    def broken() -> dict[str, bool]:
        raise RuntimeError("boom")

    metrics.set_readiness(broken)
    status, body = readyz(metrics)
    assert status == 503
    assert body["failing"] == ["readiness_callback"]
    assert value(metrics, "stream_al_ready") == 0

    metrics.set_readiness(dict)  # no checks at all is not "all checks pass"
    assert readyz(metrics)[0] == 503


def test_two_instances_have_separate_registries_and_ports() -> None:
    with ServiceMetrics(port=0) as a, ServiceMetrics(port=0) as b:
        assert a.port != b.port
        assert a.port != 0
        a.samples_scored([0.001])
        assert value(a, "stream_al_samples_total", outcome="scored") == 1
        assert value(b, "stream_al_samples_total", outcome="scored") == 0


def test_stop_releases_the_port_and_start_twice_fails() -> None:
    m = ServiceMetrics(port=0, process_metrics=False)
    port = m.start()
    with pytest.raises(RuntimeError, match="already started"):
        m.start()
    m.stop()
    m.stop()  # idempotent
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free again


def test_a_taken_port_fails_with_a_message_naming_the_setting() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        m = ServiceMetrics(port=taken, process_metrics=False)
        with pytest.raises(OSError, match=r"metrics\.port"):
            m.start()


def test_out_of_range_port_fails_fast() -> None:
    with pytest.raises(ValueError, match=r"metrics\.port"):
        ServiceMetrics(port=70000)


def test_accuracy_estimates_render_by_estimate_and_scope(metrics: ServiceMetrics) -> None:
    # Unknown until the learner reports: NaN, not 0.
    assert math.isnan(
        value(metrics, "stream_al_accuracy_estimate_ratio", estimate="random", scope="window")
    )

    def estimate(kind: str, scope: str) -> AccuracyEstimate:
        if kind == "weighted":
            return AccuracyEstimate.none()
        return AccuracyEstimate(0.9 if scope == "window" else 0.8, 0.85, 0.93, 60, 60.0)

    metrics.set_accuracy_estimates(estimate)  # type: ignore[arg-type]
    labels = {"estimate": "random", "scope": "window"}
    assert value(metrics, "stream_al_accuracy_estimate_ratio", **labels) == pytest.approx(0.9)
    assert value(metrics, "stream_al_accuracy_estimate_low_ratio", **labels) == 0.85
    assert value(metrics, "stream_al_accuracy_estimate_high_ratio", **labels) == 0.93
    assert value(metrics, "stream_al_accuracy_estimate_labels", **labels) == 60
    total = {"estimate": "random", "scope": "total"}
    assert value(metrics, "stream_al_accuracy_estimate_ratio", **total) == pytest.approx(0.8)
    weighted = {"estimate": "weighted", "scope": "window"}
    assert math.isnan(value(metrics, "stream_al_accuracy_estimate_ratio", **weighted))
    with pytest.raises(ValueError, match="unknown accuracy estimate"):
        metrics.set_accuracy_estimate("biased", "window", AccuracyEstimate.none())  # type: ignore[arg-type]


def test_policy_state_counts_events_from_running_totals(metrics: ServiceMetrics) -> None:
    assert value(metrics, "stream_al_policy_events_total", kind="stopped") == 0
    metrics.set_policy_state(True, 12.5, 0.005, {"stopped": 1}, {})
    metrics.set_policy_state(True, 20.0, 0.005, {"stopped": 1}, {})  # same total: no new event
    assert value(metrics, "stream_al_strategy_stopped") == 1
    assert value(metrics, "stream_al_labels_saved") == 20.0
    assert value(metrics, "stream_al_exploration_rate_ratio") == 0.005
    assert value(metrics, "stream_al_policy_events_total", kind="stopped") == 1
    metrics.set_policy_state(
        False, 20.0, 0.025, {"stopped": 1, "resumed": 1, "drift": 1}, {"errors": 1}
    )
    assert value(metrics, "stream_al_strategy_stopped") == 0
    assert value(metrics, "stream_al_policy_events_total", kind="resumed") == 1
    assert value(metrics, "stream_al_drifts_total", signal="errors") == 1
    assert value(metrics, "stream_al_drifts_total", signal="uncertainty") == 0
    with pytest.raises(ValueError, match="unknown policy signal"):
        metrics.set_policy_state(False, 0.0, 0.0, {}, {"weather": 1})


def test_answers_agreement_and_backlog_are_exported(metrics: ServiceMetrics) -> None:
    metrics.answer_received("label")
    metrics.answer_received("label")
    metrics.answer_received("correction")
    metrics.set_agreement({"ann": (3, 4), "bob": (1, 2), "cyd": (0, 6)}, 1, open_items=2)
    metrics.set_backlog(7)
    rendered = samples(metrics)
    assert rendered[("stream_al_answers_total", frozenset({("answer", "label")}))] == 2.0
    assert rendered[("stream_al_answers_total", frozenset({("answer", "skip")}))] == 0.0
    assert rendered[("stream_al_answers_total", frozenset({("answer", "correction")}))] == 1.0
    agreement = "stream_al_annotator_agreement_ratio"
    assert rendered[(agreement, frozenset({("annotator", "ann")}))] == 0.75
    # Beyond the cap, bob and cyd are summed: 1 agreed of 8 votes.
    assert rendered[(agreement, frozenset({("annotator", "other")}))] == 1 / 8
    assert (agreement, frozenset({("annotator", "bob")})) not in rendered
    assert rendered[("stream_al_items_awaiting_answers", frozenset())] == 2.0
    assert rendered[("stream_al_labelers_backlog_messages", frozenset())] == 7.0


def test_the_batch_histogram_exposes_what_prometheus_clients_histogram_does() -> None:
    """Same observations, same series: buckets (edges included), count and sum."""
    rng = random.Random(3)
    values = [rng.lognormvariate(-8, 2) for _ in range(2000)] + list(DECISION_LATENCY_BUCKETS)
    values += [0.0, 5.0]
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batched = BatchHistogram("h_seconds", "H.", DECISION_LATENCY_BUCKETS, registry=ours)
    reference = Histogram("h_seconds", "H.", buckets=DECISION_LATENCY_BUCKETS, registry=theirs)
    for start in range(0, len(values), 97):
        batched.observe_many(values[start : start + 97])
    for v in values:
        reference.observe(v)

    def series(registry: CollectorRegistry) -> list[str]:
        lines = generate_latest(registry).decode().splitlines()
        return [line for line in lines if "h_seconds_created" not in line]

    # The sums are added in another order: equal to the last few digits only.
    ours_lines, theirs_lines = series(ours), series(theirs)
    ours_sum = next(line for line in ours_lines if line.startswith("h_seconds_sum"))
    theirs_sum = next(line for line in theirs_lines if line.startswith("h_seconds_sum"))
    assert float(ours_sum.split()[1]) == pytest.approx(float(theirs_sum.split()[1]), rel=1e-12)
    assert [line for line in ours_lines if line != ours_sum] == [
        line for line in theirs_lines if line != theirs_sum
    ]


def test_the_batch_histogram_refuses_buckets_out_of_order() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        BatchHistogram("h", "H.", (1.0, 0.5), registry=CollectorRegistry())
    with pytest.raises(ValueError, match="finite"):
        BatchHistogram("h", "H.", (1.0, math.inf), registry=CollectorRegistry())
