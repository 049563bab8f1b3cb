"""``stream-al label --terminal``: the labeling desk in a terminal, for a labeler on a server.

The same queue as the web app (one item at a time, most useful first, leases, k distinct
annotators, commit after delivery), and the same keys: 1-9 pick a class, 0 or s skip
("don't know"), u undo the last answer, n type a new class, q quit. On a terminal a key acts
at once; from a pipe, each line is one key (or, after n, the new class).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

from stream_al.core.types import ClassLabel
from stream_al.labeling.desk import AnswerRefused, LabelingDesk
from stream_al.schemas import Query

BAR_WIDTH = 30
#: How often the screen looks for new items while the queue is empty (seconds).
IDLE_POLL_SECONDS = 0.5


def choices(query: Query) -> list[ClassLabel]:
    """The classes offered, numbered from 1: the query's, then any with a probability."""
    return [*query.classes, *(c for c in query.probabilities if c not in query.classes)]


def render(query: Query, was: str | None = None) -> str:
    """An item as the terminal shows it; ``was``: the answer being corrected.

    >>> from datetime import datetime, timezone
    >>> q = Query(id="s-1", features={"x": 1.5}, predicted_label="a",
    ...           probabilities={"a": 0.75, "b": 0.25}, uncertainty=0.5, strategy="adaptive",
    ...           reason="uncertain", threshold=0.4, classes=("a", "b"),
    ...           created_at=datetime(2026, 1, 1, tzinfo=timezone.utc), metadata={"text": "hi"})
    >>> print(render(q))  # doctest: +NORMALIZE_WHITESPACE
    item s-1 -- uncertain (uncertainty 0.50, threshold 0.40)
      x = 1.5
      text: hi
    the model says a
      [1] a  ######################          75%
      [2] b  ########                        25%
      [0] don't know   [u] undo   [n] new class   [q] quit
    """
    threshold = "" if query.threshold is None else f", threshold {query.threshold:.2f}"
    lines = [f"item {query.id} -- {query.reason} (uncertainty {query.uncertainty:.2f}{threshold})"]
    if was is not None:
        lines.append(f"  correcting your answer (it was: {was})")
    lines += [f"  {name} = {value}" for name, value in query.features.items()]
    lines += [f"  {name}: {value}" for name, value in (query.metadata or {}).items()]
    guess = "no guess yet" if query.predicted_label is None else query.predicted_label
    lines.append(f"the model says {guess}")
    width = max((len(c) for c in choices(query)), default=1)
    for number, name in enumerate(choices(query), start=1):
        p = query.probabilities.get(name, 0.0)
        key = f"[{number}]" if number <= 9 else "   "
        bar = "#" * round(p * BAR_WIDTH)
        lines.append(f"  {key} {name:<{width}}  {bar:<{BAR_WIDTH}} {100 * p:3.0f}%")
    lines.append("  [0] don't know   [u] undo   [n] new class   [q] quit")
    return "\n".join(lines)


@contextlib.contextmanager
def _single_keys(stream: TextIO) -> Iterator[bool]:
    """Put a terminal in cbreak mode (a key acts without Enter); yields whether it did."""
    if not stream.isatty():
        yield False
        return
    import termios
    import tty

    saved = termios.tcgetattr(stream)
    try:
        tty.setcbreak(stream)
        yield True
    finally:
        termios.tcsetattr(stream, termios.TCSADRAIN, saved)


def label_in_terminal(
    desk: LabelingDesk,
    annotator: str,
    *,
    keys: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    stop: threading.Event | None = None,
    new_classes: bool = True,
) -> int:
    """Label until q, end of input or ``stop``; returns the number of answers sent."""
    stop = stop or threading.Event()
    finished = threading.Event()
    # A person may look at an item for minutes: keep the leases while this screen is open.
    interval = desk.settings.labeling.lease_seconds / 3

    def keep_leases() -> None:
        while not finished.wait(interval):
            desk.renew(annotator)

    threading.Thread(target=keep_leases, name="terminal-leases", daemon=True).start()
    try:
        return _label_loop(desk, annotator, keys, out, stop, new_classes)
    finally:
        finished.set()
        desk.release(annotator)


def _label_loop(
    desk: LabelingDesk,
    annotator: str,
    keys: TextIO,
    out: TextIO,
    stop: threading.Event,
    new_classes: bool,
) -> int:
    answered = 0
    correcting: tuple[Query, ClassLabel | None] | None = None
    with _single_keys(keys) as single:

        def read_key() -> str:
            if single:
                return keys.read(1)
            line = keys.readline()
            return line.strip()[:1] if line else ""

        def read_line(prompt: str) -> str:
            out.write(prompt)
            out.flush()
            if single:
                # A typed class needs the line discipline back for a moment.
                import termios

                saved = termios.tcgetattr(keys)
                attributes = termios.tcgetattr(keys)
                attributes[3] |= termios.ICANON | termios.ECHO
                termios.tcsetattr(keys, termios.TCSADRAIN, attributes)
                try:
                    return keys.readline().strip()
                finally:
                    termios.tcsetattr(keys, termios.TCSADRAIN, saved)
            return keys.readline().strip()

        send: Callable[[str, ClassLabel | None], object]
        while not stop.is_set():
            if correcting is not None:
                query, previous = correcting
                screen = render(query, "don't know" if previous is None else previous)
                send = lambda item_id, label: desk.correct(annotator, item_id, label)  # noqa: E731
            else:
                held = desk.items(annotator)
                if not held:
                    stop.wait(IDLE_POLL_SECONDS)
                    continue
                query = held[0]
                screen = render(query)
                send = lambda item_id, label: desk.answer(annotator, item_id, label)  # noqa: E731
            status = desk.status(annotator)
            out.write(
                f"\n[{annotator}: {status.labels} labels, {status.labels_per_hour:.0f}/h, "
                f"queue {status.queue_items}, backlog {status.backlog}]\n{screen}\n> "
            )
            out.flush()
            key = read_key()
            options = choices(query)
            label: ClassLabel | None
            if key in ("", "q"):
                break
            if key.isdigit() and 1 <= int(key) <= min(9, len(options)):
                label = options[int(key) - 1]
            elif key in ("0", "s"):
                label = None
            elif key == "n" and new_classes:
                label = read_line("new class: ") or None
                if label is None:
                    continue
            elif key == "u" and correcting is None:
                correcting = desk.undo(annotator)
                if correcting is None:
                    out.write("nothing to undo (the window has passed)\n")
                continue
            else:
                out.write(f"unknown key {key!r}\n")
                continue
            try:
                send(query.id, label)
                answered += 1
            except AnswerRefused as refused:
                out.write(f"not taken: {refused}\n")
            correcting = None
    return answered
