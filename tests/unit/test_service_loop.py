"""The service loop's reaction to Kafka errors, with the Kafka clients left out."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaConnectionError, SaslAuthenticationFailedError

from stream_al.core.config import LearnerConfig
from stream_al.service.app import Service
from stream_al.service.metrics import ServiceMetrics
from stream_al.settings import Settings
from stream_al.transport import TransportError
from stream_al.transport.kafka_python import translated


def _raised_by_client(error: Exception) -> TransportError:
    """What the kafka-python transport raises when kafka-python raises ``error``."""

    @translated
    def call() -> None:
        raise error

    with pytest.raises(TransportError) as raised:
        call()
    return raised.value


def _service_with_steps(
    monkeypatch: pytest.MonkeyPatch, outcomes: list[TransportError | None], calls: list[str]
) -> Service:
    """A service whose steps raise ``outcomes`` in turn; the first step that succeeds stops it."""
    service = Service(Settings(learner=LearnerConfig()), metrics=ServiceMetrics(port=0))
    remaining = iter(outcomes)

    def step() -> int:
        outcome = next(remaining)
        if outcome is not None:
            calls.append("step failed")
            raise outcome
        calls.append("step")
        service.stop()
        return 0

    monkeypatch.setattr(service, "connect", lambda: calls.append("connect"))
    monkeypatch.setattr(service, "close", lambda: calls.append("close"))
    monkeypatch.setattr(service, "_rewind", lambda: calls.append("rewind"))
    monkeypatch.setattr(service, "step", step)
    return service


def test_a_broker_that_is_away_pauses_the_loop_instead_of_ending_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    down = _raised_by_client(KafkaConnectionError("111 ECONNREFUSED"))
    service = _service_with_steps(monkeypatch, [down, down, None], calls)
    service.run()
    assert calls == [
        "connect",
        "step failed",
        "rewind",
        "step failed",
        "rewind",
        "step",
        "close",
    ]


def test_an_error_that_retrying_cannot_mend_ends_the_run_after_closing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    service = _service_with_steps(
        monkeypatch, [_raised_by_client(SaslAuthenticationFailedError("bad password"))], calls
    )
    with pytest.raises(TransportError, match="bad password"):
        service.run()
    assert calls == ["connect", "step failed", "close"]
