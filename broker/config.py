"""Settings: environment (`HANDOFF_*`, nested with `__`) over an optional YAML file.

`HANDOFF_LOG__BACKEND=kafka` sets `settings.log.backend`. A config file is named with
`--config` on the command line or `HANDOFF_CONFIG`; environment variables win over it.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from broker.errors import ConfigError

_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar("handoff_config_file",
                                                              default=None)
"""Values read from the config file, for the settings being built right now."""


class LogSettings(BaseModel):
    backend: Literal["embedded", "kafka"] = "embedded"
    sync: Literal["normal", "full"] = "normal"
    """Embedded log: `normal` survives a process crash, `full` also a power loss."""
    ingress_partitions: int = Field(default=4, ge=1, le=1024)
    delivery_partitions: int = Field(default=1, ge=1, le=1024)
    doorbell: bool = True
    """Embedded log: processes sharing the data directory (the router process, split
    roles) ring each other after appending, so a waiting one wakes at once."""
    doorbell_poll_ms: float = Field(default=500.0, gt=0, le=60_000)
    """Embedded log, with the doorbell: how often a waiting process still looks for
    other processes' appends (the safety net for lost rings and foreign writers)."""
    cross_process_poll_ms: float = Field(default=2.0, gt=0, le=1000)
    """Embedded log, without the doorbell (turned off, or no Unix sockets): how often a
    process looks for records appended by another process on the same data directory.
    Lower is faster hand-off, higher is less idle CPU."""


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "handoff."
    replication_factor: int = Field(default=1, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    fetch_wait_ms: int = Field(default=10, ge=1, le=1000)
    """Longest the broker may hold a fetch for records appended by other processes
    (ingress to route, deliveries to stream) while records are flowing. Apache Kafka
    answers as soon as a record arrives; Tansu 0.6 only when the wait is over, so there
    it is the latency of each hop."""
    idle_fetch_wait_ms: int = Field(default=250, ge=1, le=10_000)
    """The fetch wait grows to this when no records come, so an idle process asks the
    cluster a few times a second (each fetch costs the client about 1.5 ms of CPU)."""


class RateLimit(BaseModel):
    per_second: float = Field(ge=0)
    burst: int = Field(ge=1)


class ConsoleSettings(BaseModel):
    """The compliance console at `/console` (docs/console.md)."""

    enabled: bool = True
    session_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    """A session ends this long after sign-in, however busy."""
    idle_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    """… or this long after its last request."""
    max_upload_bytes: int = Field(default=4_194_304, ge=1024)
    """Largest zipped policy bundle the dry-run accepts, checked before it is read."""


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body accepted, checked before parsing."""
    max_batch_events: int = Field(default=1000, ge=1)
    max_wait_seconds: float = Field(default=30.0, ge=0)
    """Longest long-poll a subscriber may ask for."""
    rate_limit_per_second: float = Field(default=1000.0, ge=0)
    """Requests per second per API key (per client address before authentication); 0: off."""
    rate_limit_burst: int = Field(default=2000, ge=1)
    rate_limit_per_role: dict[Literal["publish", "subscribe", "admin", "auditor",
                                      "steward", "evaluator"],
                              RateLimit] = Field(default_factory=dict)
    """Overrides by role; a key holding several roles gets the most generous."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    """With a CA bundle, clients must present a certificate it signed (mutual TLS)."""
    console: ConsoleSettings = ConsoleSettings()


class FhirSettings(BaseModel):
    """The FHIR R4 source's endpoint (`fhir_r4` connectors; docs/webhooks.md)."""

    max_bundle_entries: int = Field(default=1000, ge=1, le=1_000_000)
    """Most entries in one posted Bundle (those of nested Bundles included), checked
    before any entry is validated. A BFDR live birth report holds about 64 entries, so
    the default admits some 15 complete reports per bundle, or a thousand lean ones."""


class RouterSettings(BaseModel):
    batch_size: int = Field(default=500, ge=1)
    poll_timeout_seconds: float = Field(default=0.5, gt=0)
    linger_ms: float = Field(default=3.0, ge=0, le=1000)
    """Under steady load (the step before found records too), how long the router waits
    after the first records of a step for more before routing them together; 0 routes
    each poll's records at once. The embedded log only: on Kafka the router's fetch wait
    gathers its batches."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Where the router process that `handoff serve` supervises serves `/healthz`,
    `/readyz` and `/metrics` (on `api.host`); unset, it serves no port and the serving
    process's `/readyz` says whether it runs."""


class ReferralSettings(BaseModel):
    """Closed-loop referrals: the ledger, its service-level timers, the funnel report
    (docs/referrals.md)."""

    tick_seconds: float = Field(default=1.0, gt=0, le=3600)
    """How often the router process catches the referral ledger up with the log and
    publishes the overdue alerts that fell due; also the longest an alert waits."""
    alerts_per_tick: int = Field(default=1000, ge=1, le=100_000)
    """Alerts published per batch; a tick goes on while full batches come back."""
    report_threshold: int = Field(default=11, ge=1)
    """Smallest count the funnel report shows: counts from 1 to this minus one are
    suppressed (and more cells, so none can be worked out from the totals). A caller
    may ask for a higher threshold, never a lower one."""
    report_timezone: str = "UTC"
    """Time zone of the report's months (an IANA name such as America/Chicago)."""


class AuditSettings(BaseModel):
    checkpoint_interval_seconds: float = Field(default=60.0, gt=0)
    public_key_file: Path | None = None
    """The signing key's public half as pinned at install: the console's integrity page
    checks checkpoint signatures against it (unset: the key beside the data, shown as
    unpinned)."""


class WebhookSettings(BaseModel):
    """Webhook delivery (subscriptions with `delivery: {mode: webhook}`); docs/webhooks.md."""

    enabled: bool = True
    secrets_file: Path | None = None
    """YAML mapping subscription id -> list of `whsec_` secrets, newest first; re-read
    when it changes. Defaults to `<data_dir>/webhook-secrets.yaml`."""
    secrets: dict[str, list[SecretStr]] = Field(default_factory=dict)
    """Secrets given in settings, added to the file's."""
    schedule_seconds: tuple[float, ...] = Field(
        default=(0, 5, 300, 1800, 7200, 18000, 36000, 36000), min_length=1)
    """Delay before each attempt of one event (the first is usually 0); its length is
    the number of attempts before the event is dead-lettered."""
    jitter: float = Field(default=0.2, ge=0, le=1)
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    max_retry_after_seconds: float = Field(default=86_400, ge=0)
    """Longest `Retry-After` honoured."""
    timeout_seconds: float = Field(default=15.0, gt=0)


def _seconds(value: Any) -> Any:
    """Durations as seconds, or text such as `90s`, `15m`, `12h`, `30d`, `2w`."""
    if isinstance(value, str) and value.strip()[-1:] in _UNITS:
        text = value.strip()
        try:
            return float(text[:-1]) * _UNITS[text[-1]]
        except ValueError:
            return value   # pydantic then names the setting and the bad value
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
Duration = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]


class EncryptionSettings(BaseModel):
    """Encryption at rest of record values (docs/security.md, "Data protection")."""

    enabled: bool = False
    kek_file: Path | None = None
    """File holding the key-encryption key (base64); `handoff encryption new-kek`."""
    kek_env: str | None = None
    """Or: the name of an environment variable holding it."""
    previous_kek_file: Path | None = None
    """While rotating: the KEK being retired; keys still under it are re-wrapped."""
    previous_kek_env: str | None = None
    topics: list[str] = Field(default_factory=lambda: ["events.*", "deliver.*",
                                                       "quarantine.*", "deadletter.*",
                                                       "_linkage"])
    """Topics whose values are encrypted (shell-style patterns)."""
    key_period: Duration = 86_400
    """Each topic gets a new data key per period; retention shreds whole periods."""


class RetentionSettings(BaseModel):
    """How long records are kept, per event type and per subscription; past that they
    are deleted and, when encrypted, their data keys shredded."""

    events: dict[str, Duration] = Field(default_factory=dict)
    """Event type -> retention of `events.<type>`, e.g. `{birth: 30d}`."""
    subscriptions: dict[str, Duration] = Field(default_factory=dict)
    """Subscription id -> retention of `deliver.<subscription>`."""
    interval: Duration = 3600
    """How often the broker enforces retention."""


class Settings(BaseSettings):
    """Every setting Handoff reads. Build with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="HANDOFF_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path(".handoff")
    router_process: bool = True
    """`handoff serve` with the router among roles that serve clients runs the router in
    a supervised process of its own, so routing never waits for the interpreter lock the
    HTTP server holds (`--single-process` or false: all in one; docs/operations.md)."""
    policy_dir: Path = Path("policy")
    schema_dir: Path | None = None
    """A folder of the state's own event schemas (`<type>.avsc`, optionally with
    `<type>.example.json`), registered in addition to the shipped ones at start and at
    every policy reload (docs/policy.md, "Add your own event type")."""
    keys_file: Path | None = None
    """YAML file of API keys (hashed). Defaults to `<data_dir>/keys.yaml`."""
    connectors_file: Path | None = None
    """YAML file of connectors that `handoff serve` runs (docs/connectors.md)."""
    log: LogSettings = LogSettings()
    kafka: KafkaSettings = KafkaSettings()
    api: ApiSettings = ApiSettings()
    fhir: FhirSettings = FhirSettings()
    router: RouterSettings = RouterSettings()
    audit: AuditSettings = AuditSettings()
    referrals: ReferralSettings = ReferralSettings()
    webhooks: WebhookSettings = WebhookSettings()
    encryption: EncryptionSettings = EncryptionSettings()
    retention: RetentionSettings = RetentionSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Command-line values (init) beat the environment, which beats the config file
        # that `load_settings` read.
        file_layer = InitSettingsSource(settings_cls, init_kwargs=_FILE_VALUES.get() or {})
        return (init_settings, env_settings, file_layer)

    @property
    def resolved_keys_file(self) -> Path:
        return self.keys_file or self.data_dir / "keys.yaml"


def settings_to_json(settings: Settings) -> str:
    """The settings in force as one line of JSON, secrets included, for a process
    `handoff serve` starts: `settings_from_json` gives back equal settings."""

    def plain(value: object) -> object:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(f"cannot pass a {type(value).__name__} setting to another process")

    return json.dumps(settings.model_dump(mode="python"), default=plain,
                      separators=(",", ":"))


def settings_from_json(text: str) -> Settings:
    """Settings exactly as `settings_to_json` wrote them: no environment or file read."""
    try:
        return Settings.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise ConfigError(f"settings handed to this process are not valid: {exc}") from exc


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config file must be a mapping of settings")
    return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from overrides (command line), environment and a config file.

    Raises `ConfigError` with one line per problem, naming the setting.
    """
    file_path = config_file or (
        Path(os.environ["HANDOFF_CONFIG"]) if os.environ.get("HANDOFF_CONFIG") else None
    )
    file_values = _read_config_file(file_path) if file_path else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    token = _FILE_VALUES.set(file_values)
    try:
        return Settings(**given)
    except ValidationError as exc:
        where = f"{file_path}: " if file_path else ""
        lines = [
            f"{where}{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]
        raise ConfigError("; ".join(lines)) from exc
    finally:
        _FILE_VALUES.reset(token)
