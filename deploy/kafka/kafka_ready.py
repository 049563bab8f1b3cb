"""Block until a Kafka broker serves real requests, for ``kafka-local start``.

Readiness means a real request is served, not just an open port: ``DescribeCluster`` answers
and lists at least one unfenced broker (a fenced broker cannot lead partitions, so topic
creation would fail), and a metadata request for all topics succeeds.

Standalone on purpose (stdlib + kafka-python only, no ``stream_al`` import) so the launcher
works from any Python that has kafka-python. Exit codes: 0 ready, 1 timed out, 2 the broker
process died while we waited, 3 kafka-python is not importable (the launcher then falls back
to watching the broker log).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` runs and is not a zombie (an unreaped dead broker keeps its pid)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # Field 3 is the state; the command name in field 2 may contain spaces but is
            # parenthesised, so split after the last ')'.
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in {"Z", "X"}


def _probe(bootstrap: str, timeout_ms: int) -> str | None:
    """One readiness attempt; ``None`` when ready, else why not."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="kafka-local-ready",
        bootstrap_timeout_ms=timeout_ms,
        request_timeout_ms=timeout_ms,
        reconnect_backoff_ms=50,
        reconnect_backoff_max_ms=200,
    )
    try:
        cluster = admin.describe_cluster()
        live = [b for b in cluster.get("brokers", []) if not b.get("is_fenced", False)]
        if not live:
            return "no unfenced broker in DescribeCluster yet"
        admin.list_topics()
        return None
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and poll the broker until it is ready or the deadline passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap", help="host:port of the broker")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    parser.add_argument("--pid", type=int, default=0, help="give up early if this pid exits")
    args = parser.parse_args(argv)

    try:
        import kafka  # noqa: F401
    except ImportError:
        return 3
    # kafka-python logs every refused connection at WARNING/ERROR while the broker boots;
    # those are expected here and would only clutter the launcher's output.
    kafka_logger = logging.getLogger("kafka")
    kafka_logger.addHandler(logging.NullHandler())
    kafka_logger.propagate = False

    deadline = time.monotonic() + args.timeout
    reason = "not attempted"
    while True:
        if args.pid and not _process_alive(args.pid):
            return 2
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            break
        try:
            outcome = _probe(args.bootstrap, max(200, min(5000, remaining_ms)))
        except Exception as exc:  # any client error just means "not yet"
            outcome = f"{type(exc).__name__}: {exc}"
        if outcome is None:
            return 0
        reason = outcome
        time.sleep(0.1)
    print(
        f"broker at {args.bootstrap} not ready after {args.timeout:g}s (last: {reason})",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
