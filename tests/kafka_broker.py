"""A real Kafka broker for tests, as a pytest plugin (registered in ``tests/conftest.py``).

Where the broker comes from, first match wins:

1. ``STREAM_AL_TEST_BOOTSTRAP`` names an external broker (``host:port``); it is used as is.
2. A Docker engine answers: testcontainers' ``KafkaContainer`` (KRaft) for the session.
3. Otherwise ``deploy/kafka/kafka-local`` runs Apache Kafka from its jars (Java 17+; Maven
   once, to fill the jar cache) with a state folder under pytest's tmp dir and free loopback
   ports, so it never collides with a developer's demo broker on 9092.

``STREAM_AL_TEST_BROKER=local`` skips step 2 (so the restart tests run on a Docker machine).

Only the local broker can be stopped and restarted by a test (`local_kafka`); with the other
two, tests that need that are skipped with the reason. When the broker cannot be had at all
(no Java, no Maven and no jar cache), ``kafka`` tests are skipped, unless ``CI`` is set: CI
must not pass by skipping, so there it is an error.

Tests marked ``kafka`` get the broker started for them, and tests that use a broker fixture
are marked ``kafka`` automatically, so ``pytest -m "not kafka"`` runs without one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from stream_al.demo.local_broker import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = REPO_ROOT / "deploy" / "kafka" / "kafka-local"

#: Fixtures that imply a broker; tests using them get the ``kafka`` marker.
_BROKER_FIXTURES = frozenset({"kafka_bootstrap", "local_kafka", "sasl_bootstrap"})
_MAX_TOPIC_LEN = 249  # Kafka's limit
_TOPIC_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")


class BrokerError(RuntimeError):
    """The local broker could not be started or stopped; the message carries the log tail."""


class LocalKafka:
    """One single-node broker run by ``kafka-local``, with its own state folder and ports.

    The ports are fixed at construction and kept across `stop`/`start`, so clients holding the
    bootstrap address reconnect to the restarted broker, and the state folder keeps topics,
    data and committed offsets across restarts: this is what broker-restart tests need.
    Every method blocks until the broker is up (or down); `start` and `stop` are idempotent.
    """

    def __init__(
        self,
        state_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        start_timeout_s: int = 90,
        sasl_users: Mapping[str, str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        # Seeded by pid: concurrent sessions draw different ports, one session is repeatable.
        rng = random.Random(os.getpid())
        self.port = port if port is not None else free_port(rng)
        self.controller_port = controller_port if controller_port is not None else free_port(rng)
        while self.controller_port == self.port:
            self.controller_port = free_port(rng)
        #: With ``sasl_users`` (name -> password) a SASL_PLAINTEXT/PLAIN listener on this port.
        self.sasl_users = dict(sasl_users or {})
        self.sasl_port: int | None = None
        while self.sasl_users and self.sasl_port in (None, self.port, self.controller_port):
            self.sasl_port = free_port(rng)
        self.start_timeout_s = start_timeout_s
        self._cleanup_registered = False

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients' ``bootstrap_servers``."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's log file (the previous run's is ``kafka.log.1``)."""
        return self.state_dir / "kafka.log"

    def _run(self, command: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_STATE_DIR": str(self.state_dir),
            "KAFKA_START_TIMEOUT": str(self.start_timeout_s),
        }
        if self.sasl_port is not None:
            env["KAFKA_SASL_PORT"] = str(self.sasl_port)
            env["KAFKA_SASL_USERS"] = " ".join(f"{u}:{p}" for u, p in self.sasl_users.items())
        return subprocess.run(
            [str(LAUNCHER), command],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            # Generous backstop over the launcher's own deadlines (jar fetch is not bounded
            # by KAFKA_START_TIMEOUT); it should never fire.
            timeout=self.start_timeout_s + 600,
        )

    def start(self) -> str:
        """Start the broker (no-op when running) and return its bootstrap address."""
        result = self._run("start")
        if result.returncode != 0:
            raise BrokerError(
                f"kafka-local start failed (exit {result.returncode}):\n{result.stderr}"
            )
        if not self._cleanup_registered:
            # Backstop for sessions that end without fixture teardown (e.g. an internal
            # error): never leave a JVM behind.
            atexit.register(self.stop)
            self._cleanup_registered = True
        lines = result.stdout.strip().splitlines()
        address = lines[-1] if lines else ""
        if address != self.bootstrap:
            raise BrokerError(f"kafka-local start printed {address!r}, expected {self.bootstrap}")
        return address

    def stop(self) -> None:
        """Stop the broker cleanly (SIGTERM, SIGKILL after a timeout); no-op when stopped."""
        result = self._run("stop")
        if result.returncode != 0:
            raise BrokerError(
                f"kafka-local stop failed (exit {result.returncode}):\n{result.stderr}"
            )

    def kill(self) -> None:
        """Crash the broker (SIGKILL, no clean shutdown) and wait until it is gone.

        For crash-recovery tests; `start` afterwards recovers the logs, which takes a few
        seconds longer than after `stop`. No-op when stopped.
        """
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30.0
        while self.is_running():
            if time.monotonic() > deadline:
                raise BrokerError(f"broker pid {pid} still alive 30 s after SIGKILL")
            time.sleep(0.05)

    def restart(self) -> str:
        """`stop` then `start`, keeping state; returns the (unchanged) bootstrap address."""
        self.stop()
        return self.start()

    def is_running(self) -> bool:
        """Whether the broker process recorded in the state folder is alive.

        Same test as ``kafka-local status`` (recorded pid runs ``kafka.Kafka`` with this state
        folder's config, so neither a reused pid nor a zombie counts), done in-process
        because it runs before every ``kafka`` test.
        """
        return self._pid() is not None

    def _pid(self) -> int | None:
        """The running broker's pid (see `is_running`), else ``None``."""
        try:
            pid = int((self.state_dir / "kafka.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        config = str(self.state_dir / "server.properties").encode()
        return pid if b"kafka.Kafka" in cmdline and config in cmdline else None

    def __repr__(self) -> str:
        return f"LocalKafka(bootstrap={self.bootstrap!r}, state_dir={str(self.state_dir)!r})"


@dataclass(frozen=True)
class BrokerHandle:
    """The session's broker: its address, where it came from, and the local one if any."""

    bootstrap: str
    kind: str  # "external", "testcontainers" or "local"
    local: LocalKafka | None = None


def local_broker_problem() -> str | None:
    """Why ``kafka-local`` cannot run here, or ``None`` when it can (cheap, no JVM start)."""
    java_home = os.environ.get("JAVA_HOME")
    has_java = (Path(java_home) / "bin" / "java").is_file() if java_home else shutil.which("java")
    if not has_java:
        return "no Java runtime (install Java 17+ or set JAVA_HOME) for deploy/kafka/kafka-local"
    if shutil.which("mvn") is None and not _jar_cache_ready():
        return (
            "no Maven (mvn) to fetch the Kafka jars and no jar cache yet: install Maven, or "
            "run `deploy/kafka/kafka-local fetch` once where Maven is available"
        )
    return None


def _jar_cache_ready() -> bool:
    """Whether the launcher's jar cache is filled (mirrors its default location)."""
    pom = (LAUNCHER.parent / "pom.xml").read_text(encoding="utf-8")
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    if match is None:
        return False
    default_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    jars = Path(
        os.environ.get("KAFKA_JARS_DIR") or default_cache / "stream_al" / f"kafka-{match[1]}"
    )
    return (jars / ".complete").is_file()


def docker_available() -> bool:
    """Whether a Docker engine answers a ping within two seconds (never hangs)."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no daemon, no permission, no docker package: all mean "no"
        return False


def _unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI, because no broker can be had."""
    if os.environ.get("CI"):
        pytest.fail(f"no Kafka broker for tests: {reason}; CI is set, so this is an error")
    pytest.skip(f"no Kafka broker for tests: {reason}")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerHandle]:
    """The session's broker (see the module docstring for where it comes from)."""
    external = os.environ.get("STREAM_AL_TEST_BOOTSTRAP")
    if external:
        yield BrokerHandle(bootstrap=external, kind="external")
        return
    choice = os.environ.get("STREAM_AL_TEST_BROKER", "auto")
    if choice not in {"auto", "local", "docker"}:
        raise pytest.UsageError(
            f"STREAM_AL_TEST_BROKER must be auto, local or docker, got {choice!r}"
        )
    if choice == "docker" or (choice == "auto" and docker_available()):
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield BrokerHandle(bootstrap=container.get_bootstrap_server(), kind="testcontainers")
        return

    problem = local_broker_problem()
    if problem is not None:
        _unavailable(problem)
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"), sasl_users=SASL_USERS)
    try:
        broker.start()
        yield BrokerHandle(bootstrap=broker.bootstrap, kind="local", local=broker)
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: BrokerHandle) -> str:
    """``host:port`` of a running broker, shared by the whole session."""
    return kafka_broker.bootstrap


#: The users of the local broker's SASL_PLAINTEXT listener (tests of authentication errors).
SASL_USERS = {"alice": "alice-secret"}


@pytest.fixture(scope="session")
def sasl_bootstrap(kafka_broker: BrokerHandle) -> str:
    """``host:port`` of the local broker's SASL_PLAINTEXT/PLAIN listener (`SASL_USERS`)."""
    if kafka_broker.local is None or kafka_broker.local.sasl_port is None:
        pytest.skip(f"needs the local broker's SASL listener; the broker is {kafka_broker.kind}")
    return f"127.0.0.1:{kafka_broker.local.sasl_port}"


@pytest.fixture(scope="session")
def local_kafka(kafka_broker: BrokerHandle) -> LocalKafka:
    """The session's broker as a `LocalKafka`, for tests that stop and restart it.

    Skipped when the broker is external or a container. A test may leave it stopped: the
    next ``kafka`` test starts it again before it runs.
    """
    if kafka_broker.local is None:
        pytest.skip(
            f"needs the local kafka-local broker to stop/restart it, but the session broker "
            f"is {kafka_broker.kind} ({kafka_broker.bootstrap}); "
            "unset STREAM_AL_TEST_BOOTSTRAP or set STREAM_AL_TEST_BROKER=local"
        )
    return kafka_broker.local


@pytest.fixture(autouse=True)
def _kafka_marked_tests_get_a_running_broker(request: pytest.FixtureRequest) -> None:
    """Give ``kafka``-marked tests the broker, restarted if an earlier test left it down."""
    if request.node.get_closest_marker("kafka") is None:
        return
    handle: BrokerHandle = request.getfixturevalue("kafka_broker")
    if handle.local is not None and not handle.local.is_running():
        handle.local.start()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use a broker fixture ``kafka``, so ``-m "not kafka"`` deselects them."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if _BROKER_FIXTURES.intersection(fixtures) and item.get_closest_marker("kafka") is None:
            item.add_marker(pytest.mark.kafka)


# --- topics ------------------------------------------------------------------------------


def _topic_token(text: str) -> str:
    return _TOPIC_UNSAFE.sub("-", text).strip("-.") or "t"


def make_topic_names(prefix: str, *roles: str) -> dict[str, str]:
    """Unique topic names ``<prefix>-<role>-<uuid>``, one per role, sharing one uuid.

    Sharing the uuid keeps one test's topics easy to spot together in broker listings. With
    no roles, a single name is returned under the key ``""`` (``<prefix>-<uuid>``).
    """
    token = uuid.uuid4().hex[:12]
    base = _topic_token(prefix)
    names = {role: f"{base}-{_topic_token(role)}-{token}" for role in roles} or {
        "": f"{base}-{token}"
    }
    too_long = [name for name in names.values() if len(name) > _MAX_TOPIC_LEN]
    if too_long:
        raise ValueError(f"topic names exceed Kafka's {_MAX_TOPIC_LEN} chars: {too_long}")
    return names


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> str:
    """A topic name no other test uses: the test's name plus a uuid (topic not created)."""
    return make_topic_names(request.node.name[:120])[""]


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    *,
    configs: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create topics with ``partitions`` partitions (replication 1) and wait until usable.

    "Usable" means every partition has a leader in the broker's metadata, so a producer or
    consumer started right after does not race the topic's creation.
    """
    from kafka import KafkaAdminClient

    topic_list = list(names)
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if not topic_list:
        return
    spec: dict[str, Any] = {"num_partitions": partitions, "replication_factor": 1}
    if configs:
        spec["configs"] = dict(configs)
    timeout_ms = int(timeout_s * 1000)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="stream-al-tests",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        admin.create_topics({name: dict(spec) for name in topic_list}, timeout_ms=timeout_ms)
        admin.wait_for_topics(topic_list, timeout_ms=timeout_ms)
    finally:
        admin.close()
