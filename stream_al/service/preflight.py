"""Before a command talks to Kafka: can the cluster be reached, does it let us in?

kafka-python retries a failed bootstrap until its timeout and then says only "Unable to
bootstrap": a wrong password, a refused connection and a missing topic all end in the
same timeout, 30 s later. :func:`check_cluster` asks once, up front, and turns what went
wrong into a :class:`KafkaUnavailable` whose message names the cause and the address.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from kafka import KafkaAdminClient

from stream_al.settings import KafkaSettings

#: Bound on the whole check; a cluster that needs longer to answer one request is not one
#: the service could run on.
PREFLIGHT_TIMEOUT_MS = 15_000
_TCP_TIMEOUT_SECONDS = 3.0


class KafkaUnavailable(RuntimeError):
    """Kafka cannot be used with these settings; the message says why, for a person."""


def host_port(server: str) -> tuple[str, int]:
    """``("kafka-1", 9093)`` from ``"kafka-1:9093"`` (IPv6 in brackets; port 9092 if none)."""
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]") or "localhost", int(port or 9092)


def check_cluster(kafka: KafkaSettings, topics: Iterable[str] = ()) -> None:
    """Raise :class:`KafkaUnavailable` unless the cluster answers and ``topics`` exist.

    An authentication failure ends the check as soon as kafka-python reports it, instead
    of after its bootstrap timeout.
    """
    servers = kafka.bootstrap_servers
    _check_reachable(servers)
    timeout_ms = min(kafka.request_timeout_ms, PREFLIGHT_TIMEOUT_MS)
    config = {
        **kafka.client_config(),
        "request_timeout_ms": timeout_ms,
        "bootstrap_timeout_ms": timeout_ms,
    }
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def connect() -> None:
        try:
            admin = KafkaAdminClient(**config)
            try:
                outcome["topics"] = set(admin.list_topics())
            finally:
                admin.close()
        except Exception as error:  # reported below, from the calling thread
            outcome["error"] = error
        finally:
            done.set()

    with _refusals() as refused:
        threading.Thread(target=connect, name="stream-al-preflight", daemon=True).start()
        while not done.wait(0.05):
            if refused:
                raise KafkaUnavailable(_explain_refusal(kafka, refused[0]))
    if "error" in outcome:
        error = outcome["error"]
        if refused:
            raise KafkaUnavailable(_explain_refusal(kafka, refused[0])) from error
        if kafka.security_protocol.startswith("SASL") and refused.disconnects:
            # kafka-python sometimes sees the broker close the socket before it reads the
            # authentication error that came with it.
            raise KafkaUnavailable(
                f"the broker at {servers} closed the connection while authenticating user "
                f"{kafka.sasl_plain_username!r} with SASL mechanism {kafka.sasl_mechanism}: "
                "most likely authentication failed; check kafka.sasl_plain_username, "
                "kafka.sasl_plain_password and that the listener speaks "
                f"{kafka.security_protocol}"
            ) from error
        raise KafkaUnavailable(f"no Kafka broker answered at {servers}: {error}") from error
    missing = sorted(set(topics) - outcome["topics"])
    if missing:
        raise KafkaUnavailable(
            f"topic(s) {', '.join(missing)} do not exist on {servers}, and topics.create is "
            "false (STREAM_AL_TOPICS__CREATE): create them, or let the service create them"
        )


def _check_reachable(servers: str) -> None:
    failures = []
    for server in servers.split(","):
        host, port = host_port(server)
        try:
            with socket.create_connection((host, port), timeout=_TCP_TIMEOUT_SECONDS):
                return
        except OSError as error:
            failures.append(f"{host}:{port} ({error.strerror or error})")
    raise KafkaUnavailable(
        f"cannot reach any Kafka bootstrap server: {', '.join(failures)}; check "
        "kafka.bootstrap_servers (STREAM_AL_KAFKA__BOOTSTRAP_SERVERS)"
    )


#: What kafka-python logs (and then retries until its timeout) when the cluster says no.
_REFUSAL = re.compile(
    r"(SaslAuthenticationFailedError|\w*AuthorizationFailedError|SSLError)\W+(.*)$"
)


class _Refusals(list[tuple[str, str]]):
    """(error name, broker's words) of each refusal; and how often the broker hung up."""

    disconnects = 0


@contextlib.contextmanager
def _refusals() -> Iterator[_Refusals]:
    """What kafka-python logs meanwhile, kept from the console: our message says it."""
    refused = _Refusals()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            match = _REFUSAL.search(message)
            if match:
                words = re.sub(r"\s*\(backoff [^)]*\)$", "", match[2]).rstrip(")")
                refused.append((match[1], words.removeprefix(f"{match[1]}: ")))
            elif "Connection lost" in message and "socket disconnected" in message:
                refused.disconnects += 1

    handler = Collect(level=logging.WARNING)
    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(handler)
    propagate, kafka_log.propagate = kafka_log.propagate, False
    try:
        yield refused
    finally:
        kafka_log.removeHandler(handler)
        kafka_log.propagate = propagate


def _explain_refusal(kafka: KafkaSettings, refusal: tuple[str, str]) -> str:
    name, words = refusal
    servers = kafka.bootstrap_servers
    if name == "SaslAuthenticationFailedError":
        return (
            f"authentication failed at {servers} for user {kafka.sasl_plain_username!r} with "
            f"SASL mechanism {kafka.sasl_mechanism} ({words}); check kafka.sasl_plain_username "
            "and kafka.sasl_plain_password"
        )
    if name == "SSLError":
        return f"the TLS handshake with {servers} failed ({words}); check the kafka.ssl_* settings"
    return f"Kafka at {servers} refused access: {name}: {words}"
