"""A throwaway local Kafka broker for the demo and the benchmarks: own ports, own state.

Other processes may run brokers on this machine, some on the default port: a broker started
here takes free ports and a fresh state folder, and is stopped on every way out (an error,
Ctrl-C, SIGTERM), so nothing is left running for a later command to reach by accident.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

#: One stream of draws per process, so that two calls do not draw the same port.
_PORT_DRAWS = random.Random(os.getpid())


def _ephemeral_port_floor() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default floor


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(rng: random.Random | None = None) -> int:
    """A free TCP port on 127.0.0.1 *below* the kernel's ephemeral range.

    A port from ``bind(0)`` is ephemeral, and that breaks broker restarts: while the broker
    is down, clients keep reconnecting to its port from ephemeral source ports, and sooner
    or later the kernel picks the listener's own port as a source port (a TCP self-connect),
    which then holds the port and the restarted broker cannot bind it. Ports in
    20000..floor-1 are never handed out as source ports and clear of well-known services.
    """
    rng = rng or _PORT_DRAWS
    high = min(_ephemeral_port_floor(), 32768) - 1
    for _ in range(500):
        port = rng.randint(20000, high)
        if _port_is_free(port):
            return port
    raise RuntimeError(f"no free TCP port in 20000..{high} on 127.0.0.1")


@contextmanager
def local_broker(launcher: Path, label: str = "stream-al") -> Iterator[str]:
    """Start a broker with ``launcher`` (``deploy/kafka/kafka-local``); yield its address."""
    port = free_port()
    controller = free_port()
    while controller == port:
        controller = free_port()
    with tempfile.TemporaryDirectory(prefix=f"{label}-kafka-") as state:
        env = {
            **os.environ,
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(controller),
            "KAFKA_STATE_DIR": state,
        }
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            started = subprocess.run(
                [str(launcher), "start"], env=env, capture_output=True, text=True, check=False
            )
            if started.returncode != 0:
                raise RuntimeError(f"the broker did not start:\n{started.stdout}{started.stderr}")
            yield started.stdout.strip().splitlines()[-1]
        finally:
            subprocess.run([str(launcher), "stop"], env=env, capture_output=True, check=False)
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the ``finally`` that stops the broker
