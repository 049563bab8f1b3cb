"""Service settings: one validated model, from defaults, a TOML file and the environment.

Precedence, lowest first: defaults, the TOML file named by ``STREAM_AL_CONFIG_FILE`` (or
``--config``), environment variables. Variables take the ``STREAM_AL_`` prefix and
``__`` between nested names, e.g. ``STREAM_AL_KAFKA__BOOTSTRAP_SERVERS`` or
``STREAM_AL_LEARNER__STRATEGY__BUDGET``. A bad value stops the service at start with a
message naming the setting (``load_settings``).
"""

from __future__ import annotations

import difflib
import importlib.util
import ipaddress
import os
import socket
import tomllib
import typing
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from stream_al.core.aggregation import AggregationConfig
from stream_al.core.config import LearnerConfig
from stream_al.core.imports import load_object
from stream_al.mapping import FieldMapping
from stream_al.schemas import DEFAULT_MAX_MESSAGE_BYTES

ENV_PREFIX = "STREAM_AL_"
CONFIG_FILE_VARIABLE = "STREAM_AL_CONFIG_FILE"
#: Variables of the prefix that are not settings: the config file's, and the test suite's.
_NOT_SETTINGS = (CONFIG_FILE_VARIABLE, "STREAM_AL_TEST_")
#: librdkafka properties the service sets itself or maps from the settings above.
_MANAGED_LIBRDKAFKA_PROPERTIES = frozenset(
    {
        "bootstrap.servers",
        "client.id",
        "group.id",
        "enable.auto.commit",
        "auto.offset.reset",
        "acks",
        "partitioner",
        "message.max.bytes",
        "max.partition.fetch.bytes",
        "on_commit",
        "error_cb",
        "logger",
        "oauth_cb",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
    }
)
#: Client options the service sets itself, per client (offsets, serialisation, groups).
_MANAGED_OPTIONS = frozenset(
    {
        "group_id",
        "enable_auto_commit",
        "auto_offset_reset",
        "key_serializer",
        "value_serializer",
        "key_deserializer",
        "value_deserializer",
        "acks",
        "max_request_size",
        "max_partition_fetch_bytes",
        "max_poll_records",
    }
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
    """How to reach the cluster; security settings are passed through to the client."""

    bootstrap_servers: str = "127.0.0.1:9092"
    #: The client the service's loop runs on: ``kafka-python`` (pure Python, the default)
    #: or ``librdkafka`` (confluent-kafka, about three times less CPU per sample; install
    #: ``stream_al[librdkafka]``). The admin requests and the other commands use kafka-python.
    client: Literal["kafka-python", "librdkafka"] = "kafka-python"
    client_id: str = "stream-al"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True
    request_timeout_ms: int = Field(30_000, ge=1000)
    #: Where a consumer group that has no committed offset yet starts on the samples topic:
    #: ``latest`` scores only what arrives from now on (a new group on a topic with a long
    #: history would otherwise score it all and spend the labeling budget on the past);
    #: ``earliest`` scores the retained history first.
    auto_offset_reset: Literal["latest", "earliest"] = "latest"
    #: For OAUTHBEARER: ``module:attribute`` naming a kafka-python ``AbstractTokenProvider``
    #: subclass or factory, called without arguments.
    sasl_oauth_token_provider: str | None = None
    #: Further kafka-python client options, passed through as they are (e.g.
    #: ``{connections_max_idle_ms = 300000}``); those named above are set above.
    extra: dict[str, Any] = {}
    #: With ``client = "librdkafka"``: librdkafka properties of its own, passed through
    #: (e.g. ``{"statistics.interval.ms" = 0}``); librdkafka refuses unknown names at start.
    librdkafka: dict[str, str | int | float | bool] = {}

    @model_validator(mode="after")
    def _librdkafka_installed(self) -> KafkaSettings:
        if self.client == "librdkafka" and importlib.util.find_spec("confluent_kafka") is None:
            raise ValueError(
                "kafka.client = 'librdkafka' needs confluent-kafka: "
                "pip install 'stream_al[librdkafka]'"
            )
        return self

    @field_validator("librdkafka")
    @classmethod
    def _librdkafka_unmanaged(
        cls, properties: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        for name in properties:
            if name in _MANAGED_LIBRDKAFKA_PROPERTIES or name.startswith(("security.", "sasl.")):
                raise ValueError(f"{name} is set by the service or by a setting of its own")
        return properties

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError("kafka.sasl_mechanism is required with a SASL security_protocol")
        if self.sasl_mechanism == "OAUTHBEARER" and self.sasl_oauth_token_provider is None:
            raise ValueError(
                "kafka.sasl_oauth_token_provider (module:attribute) is required with "
                "sasl_mechanism OAUTHBEARER"
            )
        if self.sasl_oauth_token_provider is not None:
            load_object(self.sasl_oauth_token_provider, "kafka.sasl_oauth_token_provider")
        return self

    @field_validator("extra")
    @classmethod
    def _extra_known(cls, extra: dict[str, Any]) -> dict[str, Any]:
        from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

        known = (
            set(KafkaProducer.DEFAULT_CONFIG)
            | set(KafkaConsumer.DEFAULT_CONFIG)
            | set(KafkaAdminClient.DEFAULT_CONFIG)
        )
        named = set(cls.model_fields) - {"extra"}
        for option in extra:
            if option in named or option in _MANAGED_OPTIONS:
                raise ValueError(f"{option} is a setting of its own here, not an extra option")
            if option not in known:
                close = difflib.get_close_matches(option, sorted(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(f"{option} is not a kafka-python client option{hint}")
        return extra

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments shared by kafka-python's producer, consumer and admin client."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism is not None:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_plain_username
            if self.sasl_plain_password is not None:
                config["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        if self.sasl_oauth_token_provider is not None:
            provider = load_object(
                self.sasl_oauth_token_provider, "kafka.sasl_oauth_token_provider"
            )
            config["sasl_oauth_token_provider"] = provider() if callable(provider) else provider
        if self.security_protocol in ("SSL", "SASL_SSL"):
            config["ssl_check_hostname"] = self.ssl_check_hostname
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                value = getattr(self, name)
                if value is not None:
                    config[name] = str(value)
        return {**config, **self.extra}


class TopicSettings(_Section):
    samples: str = "stream_al.samples"
    oracle: str = "stream_al.oracle"
    labels: str = "stream_al.labels"
    #: Every sample's prediction goes here; empty turns predictions off.
    predictions: str = "stream_al.predictions"
    dead_letters: str = "stream_al.dead_letters"
    #: Create missing topics at start with this many partitions and replicas.
    create: bool = True
    partitions: int = Field(3, ge=1)
    replication_factor: int = Field(1, ge=1)


class MetricsSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)


class CheckpointSettings(_Section):
    #: Local folder for checkpoints; empty turns local checkpoints off.
    directory: Path | None = None
    #: Kafka topic (compacted) for checkpoints; needs ``hmac_key`` or ``key_file``.
    topic: str | None = None
    every_labels: int = Field(500, ge=1)
    every_seconds: float = Field(60.0, gt=0)
    keep: int = Field(3, ge=1)
    #: The signing key itself; wins over ``key_file``.
    hmac_key: SecretStr | None = None
    #: File holding the signing key (mode 0600, outside ``directory``). Unset, a directory
    #: store uses ``$XDG_CONFIG_HOME/stream_al/checkpoint.key`` (else
    #: ``~/.config/stream_al/checkpoint.key``), generated if missing.
    key_file: Path | None = None
    #: Bound on one checkpoint save or read (and on the final save at shutdown).
    timeout_seconds: float = Field(10.0, gt=0)
    #: Ignore a checkpoint that does not fit the configuration instead of refusing to start.
    start_fresh: bool = False

    @field_validator("key_file")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _topic_needs_key(self) -> CheckpointSettings:
        # Never a generated key: every replica, on whatever machine, must sign alike.
        if self.topic and self.hmac_key is None and self.key_file is None:
            raise ValueError(
                "checkpoint.hmac_key or checkpoint.key_file is required when checkpoint.topic "
                "is set (a key shared by every replica)"
            )
        return self


class LabelingSettings(_Section):
    """The people who label: how many answer each item, and how their answers are combined.

    The service reads the first block (aggregation of the answers, the labelers' backlog);
    the labeling clients (``stream-al label``) read the rest.
    """

    # --- Service side: several annotators per item, and the labelers' backlog. ---
    #: k: each query is shown to this many distinct annotators; the service learns each
    #: item once, from the aggregate of their answers. 1 learns the first answer, as before.
    annotators_per_item: int = Field(1, ge=1, le=100)
    #: The labelers' consumer group on the oracle topic: its lag is their backlog (read by
    #: the service for ``strategy.target_backlog``, and exported as a metric).
    group_id: str = Field("stream-al-labelers", min_length=1)
    #: How k answers become one label: ``majority`` (ties go to the answer that came
    #: first) or ``weighted`` (each annotator's vote weighs by their estimated reliability,
    #: learned online from their agreement with the aggregates, Dawid-Skene style).
    aggregation: Literal["majority", "weighted"] = "majority"
    #: An item with fewer than k answers after this long (seconds of the samples' clock,
    #: since its query) is decided from the answers that came; none at all: it expires.
    answer_timeout_seconds: float = Field(3600.0, gt=0.0)
    #: At most this many annotators are named in the agreement metric; the others are
    #: counted together as ``other`` (the metric's label values stay bounded).
    max_annotators_in_metrics: int = Field(50, ge=1, le=1000)
    #: How often the service reads the labelers' backlog (seconds; wall clock).
    backlog_poll_seconds: float = Field(10.0, gt=0.0)

    # --- Client side: ``stream-al label`` (web app and terminal). ---
    #: Address of the web labeling app. Beyond loopback it needs ``token``.
    host: str = "127.0.0.1"
    port: int = Field(8400, ge=0, le=65535)
    #: A shared secret a labeler types in once (then a session cookie). Off by default;
    #: required when ``host`` is not a loopback address.
    token: SecretStr | None = None
    #: A handed-out item comes back to the queue when its labeler has neither answered nor
    #: shown it on an open page for this long (a closed tab, a crashed client).
    lease_seconds: float = Field(60.0, gt=0.0)
    #: A query older than this (wall clock, since the service asked) is dropped unasked and
    #: counted as stale; unset: never.
    stale_after_seconds: float | None = Field(3600.0, gt=0.0)
    #: How long after an answer a labeler may take it back (a correction message).
    undo_seconds: float = Field(30.0, gt=0.0)
    #: Fetched queries held by one client, at most; fetching pauses above it.
    max_items: int = Field(500, ge=1)
    #: The labeling app's own Prometheus endpoint (``/metrics``) on ``metrics.host``; 0
    #: takes a free port, unset turns it off.
    metrics_port: int | None = Field(8401, ge=0, le=65535)

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> LabelingSettings:
        if self.token is None and not _is_loopback(self.host):
            raise ValueError(
                f"labeling.token is required when labeling.host ({self.host}) is not a "
                "loopback address: anyone who reaches it could label"
            )
        return self

    def aggregation_config(self) -> AggregationConfig:
        """What the core's aggregator needs of these settings."""
        return AggregationConfig(
            annotators_per_item=self.annotators_per_item,
            method=self.aggregation,
            timeout_seconds=self.answer_timeout_seconds,
        )


def _is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``).

    >>> _is_loopback("127.0.0.1"), _is_loopback("localhost"), _is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


class WarmStartSettings(_Section):
    """Where a service without a checkpoint starts from (any or all, in this order)."""

    #: A trained learner: a checkpoint file, e.g. one ``stream-al train`` wrote; signed
    #: with the checkpoint key (``checkpoint.hmac_key`` or ``checkpoint.key_file``).
    model_file: Path | None = None
    #: A file of labelled samples (CSV, JSON Lines, Parquet) with its label column.
    data: Path | None = None
    target: str | None = None
    id_column: str | None = None
    #: The labels topic from its beginning: the labels that carry their features.
    replay_labels: bool = False

    @model_validator(mode="after")
    def _data_has_target(self) -> WarmStartSettings:
        if self.data is not None and self.target is None:
            raise ValueError("warm_start.target (the label column) is required with data")
        return self


class Settings(BaseSettings):
    """Everything the service needs, validated at start."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    #: Consumer group of the samples consumer, shared by the replicas.
    group_id: str = "stream-al"
    #: Names this replica (labels consumer, checkpoints); defaults to the host name.
    replica_id: str = Field(default_factory=socket.gethostname, min_length=1)
    learner: LearnerConfig = LearnerConfig()
    #: How samples and labels are read: stream_al's envelope, or a team's own events.
    mapping: FieldMapping = FieldMapping()
    labeling: LabelingSettings = LabelingSettings()
    metrics: MetricsSettings = MetricsSettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    warm_start: WarmStartSettings = WarmStartSettings()
    max_message_bytes: int = Field(DEFAULT_MAX_MESSAGE_BYTES, ge=1024)
    #: Largest number of records taken per poll.
    max_poll_records: int = Field(500, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get(CONFIG_FILE_VARIABLE)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


#: The file named by ``load_settings(config_file)``, seen by ``settings_customise_sources``.
_config_file: ContextVar[Path | None] = ContextVar("config_file", default=None)


class SettingsError(ValueError):
    """Invalid configuration, with one line per bad setting."""


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read and validate the settings, or raise ``SettingsError`` naming each bad setting."""
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"config file {config_file} does not exist")
    named = os.environ.get(CONFIG_FILE_VARIABLE)
    if config_file is None and named and not Path(named).is_file():
        raise SettingsError(f"{CONFIG_FILE_VARIABLE}={named}: no such file")
    token = _config_file.set(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            path = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
            name = ".".join(path) or "settings"
            env = ENV_PREFIX + "__".join(part.upper() for part in path)
            lines.append(f"invalid setting {name} ({env}): {error['msg']}")
        raise SettingsError("\n".join(lines)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {config_file or named} is not valid TOML: {exc}") from exc
    finally:
        _config_file.reset(token)


def _setting_variables(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, bool]]:
    """(variable, open) for every setting; ``open`` when nested names may follow."""
    for name, info in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield variable, False
            yield from _setting_variables(annotation, variable + "__")
        else:
            yield variable, typing.get_origin(annotation) is dict


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each ``STREAM_AL_`` variable that names no setting (with a guess).

    >>> for warning in unknown_variables({"STREAM_AL_LEARNER_STRATEGY_BUDGET": "0.3"}):
    ...     print(warning.replace("ignored (", "ignored\\n("))
    STREAM_AL_LEARNER_STRATEGY_BUDGET names no setting and is ignored
    (did you mean STREAM_AL_LEARNER__STRATEGY__BUDGET?)
    """
    environ = os.environ if environ is None else environ
    variables = dict(_setting_variables(Settings, ENV_PREFIX))
    open_prefixes = [name + "__" for name, is_open in variables.items() if is_open]
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper.startswith(_NOT_SETTINGS):
            continue
        if upper in variables or upper.startswith(tuple(open_prefixes)):
            continue
        guess = difflib.get_close_matches(upper, list(variables), n=1, cutoff=0.8)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        warnings.append(f"{name} names no setting and is ignored{hint}")
    return warnings


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in values.items():
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def describe_settings(
    settings: Settings, config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> list[tuple[str, Any, str]]:
    """(dotted name, value, source) for every setting; secrets come out masked.

    The source is the variable that set it, the config file, or ``default``.

    >>> described = describe_settings(Settings(), environ={})
    >>> [(name, value, source) for name, value, source in described if name == "group_id"]
    [('group_id', 'stream-al', 'default')]
    """
    environ = os.environ if environ is None else environ
    named = config_file or environ.get(CONFIG_FILE_VARIABLE)
    in_file: set[str] = set()
    if named:
        with Path(named).open("rb") as handle:
            in_file = {name for name, _ in _flatten(tomllib.load(handle))}
    upper_environ = {name.upper() for name in environ}
    described = []
    for name, value in _flatten(settings.model_dump(mode="json")):
        parts = name.split(".")
        # The variable of this setting, or of a section above it given as JSON.
        variables = [ENV_PREFIX + "__".join(parts[:n]).upper() for n in range(len(parts), 0, -1)]
        source = next((v for v in variables if v in upper_environ), None)
        if source is None:
            source = (
                f"file {named}"
                if any(".".join(parts[:n]) in in_file for n in range(len(parts), 0, -1))
                else "default"
            )
        described.append((name, value, source))
    return described
