"""The command line and the settings at the edges: what a user sees first."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from kafka.net.sasl.oauth import AbstractTokenProvider

from stream_al import __version__
from stream_al.cli import main
from stream_al.schemas import json_schemas
from stream_al.settings import SettingsError, load_settings, unknown_variables

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("STREAM_AL_"):
            monkeypatch.delenv(name)


class TokenProvider(AbstractTokenProvider):
    def token(self) -> str:
        return "a-token"


def test_version_and_help_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"stream-al {__version__}"
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    shown = capsys.readouterr().out
    assert "labels arrive N samples late (default: 0)" in shown
    assert "(default: None)" not in shown and "``" not in shown


def test_a_misspelt_variable_is_reported_with_the_right_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAM_AL_LEARNER_STRATEGY_BUDGET", "0.3")
    monkeypatch.setenv("STREAM_AL_KAFKA__EXTRA", '{"connections_max_idle_ms": 1000}')
    monkeypatch.setenv("STREAM_AL_GROUP_ID", "mine")
    assert unknown_variables() == [
        "STREAM_AL_LEARNER_STRATEGY_BUDGET names no setting and is ignored "
        "(did you mean STREAM_AL_LEARNER__STRATEGY__BUDGET?)"
    ]
    assert main(["config"]) == 0
    captured = capsys.readouterr()
    assert "did you mean STREAM_AL_LEARNER__STRATEGY__BUDGET" in captured.err
    assert re.search(r'^group_id +=  ?"mine"  # STREAM_AL_GROUP_ID$', captured.out, re.M)


def test_config_names_each_source_and_masks_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "stream_al.toml"
    config.write_text(
        '[learner.strategy]\nbudget = 0.2\n[checkpoint]\nhmac_key = "s3cret-s3cret-s3cret"\n'
    )
    monkeypatch.setenv("STREAM_AL_KAFKA__SASL_PLAIN_PASSWORD", "hunter2")
    assert main(["config", "--config", str(config), "--json"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["learner.strategy.budget"] == {"value": 0.2, "source": f"file {config}"}
    assert shown["kafka.sasl_plain_password"]["source"] == "STREAM_AL_KAFKA__SASL_PLAIN_PASSWORD"
    assert shown["group_id"] == {"value": "stream-al", "source": "default"}
    assert "hunter2" not in out and "s3cret" not in out


def test_kafka_client_options_pass_through_and_oauth_takes_a_token_provider() -> None:
    settings = load_settings(
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "OAUTHBEARER",
            "sasl_oauth_token_provider": "tests.unit.test_cli_polish:TokenProvider",
            "extra": {"connections_max_idle_ms": 60_000},
        }
    )
    config = settings.kafka.client_config()
    assert isinstance(config["sasl_oauth_token_provider"], TokenProvider)
    assert config["connections_max_idle_ms"] == 60_000
    with pytest.raises(SettingsError, match=r"sasl_oauth_token_provider .* is required"):
        load_settings(kafka={"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"})
    with pytest.raises(SettingsError, match="did you mean connections_max_idle_ms"):
        load_settings(kafka={"extra": {"connection_max_idle_ms": 1}})
    with pytest.raises(SettingsError, match="group_id is a setting of its own"):
        load_settings(kafka={"extra": {"group_id": "x"}})


def test_a_new_group_starts_at_the_end_of_the_samples_topic_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stream_al.service import kafka_io

    given: list[dict[str, object]] = []
    monkeypatch.setattr(kafka_io, "KafkaConsumer", lambda **options: given.append(options))
    kafka_io.samples_consumer(load_settings())
    kafka_io.samples_consumer(load_settings(kafka={"auto_offset_reset": "earliest"}))
    kafka_io.log_consumer(load_settings())
    assert [options["auto_offset_reset"] for options in given] == [
        "latest",
        "earliest",
        "earliest",  # the labels and oracle logs are positioned by the service itself
    ]


def test_plot_without_matplotlib_stops_before_any_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def without_matplotlib(name: str, *args: object) -> object:
        return None if name == "matplotlib" else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_matplotlib)
    assert main(["simulate", "--dataset", "sea", "--plot", str(tmp_path / "p.png")]) == 2
    captured = capsys.readouterr()
    assert "pip install 'stream_al[plot]'" in captured.err
    assert "samples" not in captured.out  # no simulation ran first


def test_the_package_license_is_an_spdx_expression() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"


def test_the_json_schemas_in_docs_are_those_of_the_models(tmp_path: Path) -> None:
    written = subprocess.run(
        [sys.executable, "-m", "stream_al.schemas", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert len(written.stdout.splitlines()) == len(json_schemas())
    for path in sorted(tmp_path.glob("*.schema.json")):
        committed = ROOT / "docs" / "schemas" / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run python -m stream_al.schemas docs/schemas"
        )
