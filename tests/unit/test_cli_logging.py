"""The command line's logging: kafka-python's errors in one line, ours with their tracebacks."""

from __future__ import annotations

import logging
import sys
from types import TracebackType

from stream_al.cli import _without_kafka_tracebacks


def _record(name: str) -> logging.LogRecord:
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        info: tuple[type[BaseException], BaseException, TracebackType | None] = sys.exc_info()  # type: ignore[assignment]
        return logging.getLogger(name).makeRecord(
            name, logging.ERROR, __file__, 1, "Error receiving %s", ("data",), info
        )


def test_a_kafka_python_error_is_one_line_that_still_names_the_exception() -> None:
    record = _record("kafka.net.transport")
    assert _without_kafka_tracebacks(record)
    text = logging.Formatter().format(record)
    assert (
        text == "Error receiving data (ConnectionResetError: [Errno 104] Connection reset by peer)"
    )
    assert "Traceback" not in text


def test_our_own_errors_keep_their_traceback() -> None:
    record = _record("stream_al.service.app")
    assert _without_kafka_tracebacks(record)
    assert "Traceback" in logging.Formatter().format(record)
