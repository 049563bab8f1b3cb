"""Service settings: defaults, file, environment, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_al.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("STREAM_AL_"):
            monkeypatch.delenv(name)


def test_defaults_are_valid() -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.learner.strategy.name == "adaptive"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "stream_al.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "file:9092"\n'
        "[learner.strategy]\nbudget = 0.2\n"
        '[topics]\nsamples = "from-file"\n'
    )
    monkeypatch.setenv("STREAM_AL_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    settings = load_settings(config)
    assert settings.kafka.bootstrap_servers == "env:9092"
    assert settings.learner.strategy.budget == 0.2
    assert settings.topics.samples == "from-file"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("STREAM_AL_LEARNER__STRATEGY__BUDGET", "1.5", "learner.strategy.budget"),
        ("STREAM_AL_LEARNER__STRATEGY__NAME", "psychic", "learner.strategy.name"),
        ("STREAM_AL_METRICS__PORT", "http", "metrics.port"),
        ("STREAM_AL_KAFKA__SECURITY_PROTOCOL", "SASL_SSL", "kafka"),
        ("STREAM_AL_CHECKPOINT__TOPIC", "checkpoints", "checkpoint"),
    ],
)
def test_a_bad_value_fails_fast_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert f"invalid setting {named}" in str(caught.value)


def test_an_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[kafka]\nbootstrap_server = 'typo:9092'\n")
    with pytest.raises(SettingsError, match=r"kafka\.bootstrap_server"):
        load_settings(config)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_security_settings_pass_through_to_the_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_AL_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAM_AL_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("STREAM_AL_KAFKA__SASL_PLAIN_USERNAME", "svc")
    monkeypatch.setenv("STREAM_AL_KAFKA__SASL_PLAIN_PASSWORD", "s3cret")
    settings = load_settings()
    config = settings.kafka.client_config()
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(settings)


def test_a_broken_toml_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[kafka\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config)
