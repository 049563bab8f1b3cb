"""Run a real Prometheus server for tests.

`start_prometheus` writes a config that scrapes the given ``host:port`` targets every second
(job ``stream_al``, the job name the deploy config uses, so alert rules that select on it work
unchanged), optionally loads an alert rules file evaluated every second, starts the
``prometheus`` binary on a free loopback port with its own temporary storage, and waits until
it is ready. `PrometheusServer.query` runs an instant PromQL query through the HTTP API.

The binary is ``$PROMETHEUS_BIN`` or ``prometheus`` on ``PATH`` (Debian: ``apt-get install
prometheus``); `require_binary` skips the calling test when it is missing, unless the ``CI``
environment variable is set, in which case the test fails: CI must not silently skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Job name of the service's scrape config, here and in ``deploy/prometheus/prometheus.yml``.
JOB = "stream_al"
_START_TIMEOUT = 30.0


def find_binary(name: str = "prometheus") -> str | None:
    """Path of ``prometheus`` or ``promtool``: from ``$PROMETHEUS_BIN`` if set, else PATH."""
    override = os.environ.get("PROMETHEUS_BIN")
    if override:
        candidate = Path(override) if name == "prometheus" else Path(override).parent / name
        return str(candidate) if candidate.is_file() else None
    return shutil.which(name)


def require_binary(name: str = "prometheus") -> str:
    """The binary's path; skip the test when it is missing (fail instead when ``CI`` is set)."""
    path = find_binary(name)
    if path is None:
        reason = (
            f"{name!r} not found (set PROMETHEUS_BIN or install it: apt-get install prometheus)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so this is an error, not a skip")
        pytest.skip(reason)
    return path


def free_port() -> int:
    """A TCP port free on loopback right now (another process could take it before us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, targets: list[str], rules: Path | None, interval: str = "1s") -> None:
    """Write a Prometheus config scraping ``targets`` under job `JOB`.

    JSON is valid YAML, so no YAML library is needed here.
    """
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": JOB,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    if rules is not None:
        config["rule_files"] = [str(Path(rules).resolve())]
    path.write_text(json.dumps(config, indent=2))


@dataclass
class PrometheusServer:
    """A running Prometheus process and a small client for its HTTP API."""

    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    _owns_workdir: bool = field(default=True, repr=False)

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; return ``data``, raising on an API error."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as resp:
                payload = json.load(resp)
        except urllib.error.HTTPError as exc:
            # Bad PromQL answers 400 with a JSON body that says why.
            payload = json.loads(exc.read() or b"{}")
            raise PrometheusQueryError(
                f"{path} {params}: {payload.get('errorType')}: {payload.get('error')}"
            ) from exc
        if payload.get("status") != "success":
            raise PrometheusQueryError(f"{path} {params}: {payload}")
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate ``expr`` now; return the result as a list of ``{metric, value}`` items.

        A scalar or string result comes back as a single item with an empty ``metric``.
        """
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll ``query(expr)`` until ``predicate(result)`` holds; return that result."""
        deadline = time.monotonic() + timeout
        result = self.query(expr)
        while not predicate(result):
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout}s, {expr!r} gives {result}")
            time.sleep(0.25)
            result = self.query(expr)
        return result

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health and last error."""
        return list(self.api("targets")["activeTargets"])

    def rule_groups(self) -> list[dict[str, Any]]:
        """The loaded rule groups, each rule with its health and last evaluation error."""
        return list(self.api("rules")["groups"])

    def log(self) -> str:
        """Prometheus' own log so far (for failure messages)."""
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the process and delete its storage."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: A PromQL string literal, a label-matcher block, or a comparison operator with the ``bool``
#: modifier if it has one. Literals and matcher blocks are matched (and kept as they are) so
#: that ``!=`` inside ``{job!="x"}`` or an operator inside a string is never rewritten.
_PROMQL_COMPARISON = re.compile(
    r""""(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`"""
    r"""|\{(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^}"'])*\}"""
    r"|(?P<op>==|!=|>=|<=|>|<)(?P<space>\s*)(?P<bool>bool\b)?"
)


def with_bool_comparisons(expr: str) -> str:
    """``expr`` with the ``bool`` modifier on every comparison operator.

    A comparison filters: an alert expression returns nothing while its condition is false,
    which cannot be told apart from a selector that matches no series. With ``bool`` every
    series the condition is evaluated on comes back (as 0 or 1), so a non-empty result
    shows that the expression reaches real series and that the two sides of ``and``/``or``
    match on their labels.

    >>> with_bool_comparisons('up{job="x", a!="b"} == 0 or rate(y[5m]) > 0.5')
    'up{job="x", a!="b"} == bool 0 or rate(y[5m]) > bool 0.5'
    >>> with_bool_comparisons("a >= bool 1 and b<2")
    'a >= bool 1 and b< bool 2'
    >>> with_bool_comparisons('x{a="}>"} > 1')
    'x{a="}>"} > bool 1'
    """

    def rewrite(match: re.Match[str]) -> str:
        if match["op"] is None or match["bool"] is not None:
            return match[0]
        return f"{match['op']} bool{match['space'] or ' '}"

    return _PROMQL_COMPARISON.sub(rewrite, expr)


class PrometheusQueryError(RuntimeError):
    """The Prometheus HTTP API answered with an error (e.g. a PromQL parse error)."""


def start_prometheus(
    targets: list[str],
    rules: Path | None = None,
    *,
    interval: str = "1s",
    binary: str | None = None,
    workdir: Path | None = None,
) -> PrometheusServer:
    """Start Prometheus scraping ``targets`` (``host:port``) and wait until it is ready.

    ``rules`` is an alert/recording rules file to load. Storage, config and log go to
    ``workdir`` (a fresh temporary directory, deleted on `PrometheusServer.stop`, by default).
    """
    binary = binary or find_binary()
    if binary is None:
        raise FileNotFoundError("prometheus binary not found (set PROMETHEUS_BIN)")
    owns_workdir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="prometheus-")) if workdir is None else workdir
    config = workdir / "prometheus.yml"
    write_config(config, targets, rules, interval)
    port = free_port()
    log_file = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    log_file.close()  # the child holds its own descriptor
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, workdir, owns_workdir)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: PrometheusServer) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"prometheus exited with {server.process.returncode}:\n{server.log()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise TimeoutError(f"prometheus not ready after {_START_TIMEOUT}s:\n{server.log()}")
        time.sleep(0.1)


@pytest.fixture
def prometheus_factory() -> Iterator[Callable[..., PrometheusServer]]:
    """``start_prometheus`` with the binary required and every server stopped at teardown."""
    binary = require_binary()
    started: list[PrometheusServer] = []

    def factory(targets: list[str], rules: Path | None = None, **kwargs: Any) -> PrometheusServer:
        server = start_prometheus(targets, rules, binary=binary, **kwargs)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
