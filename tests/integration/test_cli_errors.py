"""Commands that cannot use Kafka end with a ``stream-al:`` message naming why, exit 2, fast.

Each runs the real command line in a child process against the real broker: a wrong
password on its SASL listener, a closed port, a missing topic, a busy metrics port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from stream_al.settings import ENV_PREFIX
from tests.kafka_broker import SASL_USERS, free_port

pytestmark = pytest.mark.kafka

#: Well within kafka-python's own 30 s bootstrap timeout, which these used to wait out.
BOUND_SECONDS = 20.0


def stream_al(
    *args: str, timeout: float = 120, **settings: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``stream-al ARGS`` with ``STREAM_AL_*`` settings only from ``settings``; and its time."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}
    env.update({ENV_PREFIX + name.upper(): value for name, value in settings.items()})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "stream_al.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done, time.monotonic() - started


def assert_refused(done: subprocess.CompletedProcess[str], took: float, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1].startswith("stream-al: "), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert took < BOUND_SECONDS, f"took {took:.1f} s: {done.stderr}"


def sasl(bootstrap: str, password: str) -> dict[str, str]:
    (user,) = SASL_USERS
    return {
        "kafka__bootstrap_servers": bootstrap,
        "kafka__security_protocol": "SASL_PLAINTEXT",
        "kafka__sasl_mechanism": "PLAIN",
        "kafka__sasl_plain_username": user,
        "kafka__sasl_plain_password": password,
    }


def topics(run: str) -> dict[str, str]:
    return {
        f"topics__{name}": f"test-{run}.{name}"
        for name in ("samples", "oracle", "labels", "predictions", "dead_letters")
    }


@pytest.mark.parametrize("command", [["run"], ["produce", "--dataset", "phishing"]])
def test_a_wrong_password_is_named_as_an_authentication_failure(
    sasl_bootstrap: str, command: list[str]
) -> None:
    done, took = stream_al(*command, metrics__port="0", **sasl(sasl_bootstrap, "not-the-password"))
    assert_refused(done, took, "authentication", "alice", "PLAIN")
    assert "not-the-password" not in done.stderr


def test_the_right_password_passes(sasl_bootstrap: str) -> None:
    (password,) = SASL_USERS.values()
    run = uuid.uuid4().hex[:10]
    done, _ = stream_al(
        "produce", "--dataset", "phishing", "--limit", "5",
        **sasl(sasl_bootstrap, password), **topics(run),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "sent 5 samples" in done.stdout


@pytest.mark.parametrize("command", [["run"], ["oracle", "--dataset", "phishing"]])
def test_an_unreachable_broker_is_named(command: list[str]) -> None:
    closed = f"127.0.0.1:{free_port()}"
    done, took = stream_al(*command, metrics__port="0", kafka__bootstrap_servers=closed)
    assert_refused(done, took, "cannot reach", closed)


def test_a_missing_topic_is_named_when_topics_are_not_created(kafka_bootstrap: str) -> None:
    run = uuid.uuid4().hex[:10]
    done, took = stream_al(
        "run",
        kafka__bootstrap_servers=kafka_bootstrap,
        topics__create="false",
        metrics__port="0",
        **topics(run),
    )
    assert_refused(done, took, f"test-{run}.samples", "topics.create")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_busy_metrics_port_is_named(kafka_bootstrap: str, busy_port: int) -> None:
    done, took = stream_al(
        "run",
        kafka__bootstrap_servers=kafka_bootstrap,
        metrics__port=str(busy_port),
        **topics(uuid.uuid4().hex[:10]),
    )
    assert_refused(done, took, f"127.0.0.1:{busy_port}", "STREAM_AL_METRICS__PORT")
