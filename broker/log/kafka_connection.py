"""How the Kafka adapter reaches a cluster, and what it says when it cannot.

Every kafka-python client the adapter creates (producer, admin client, reader, group
members) takes its connection options from one `KafkaConnection`, and every kafka-python
error is turned into a `broker.errors` type by `translate_kafka_error`, so nothing above
the adapter ever sees a kafka-python exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from kafka import errors as kafka_errors
from kafka.net.compat import KafkaNetClient

from broker.errors import ConfigError, LogError, LogUnavailableError, UnknownTopicError

_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
"""What Kafka accepts as a topic name."""

SLOW_STEP_S = 1.0
"""When kafka-python calls one step of its I/O loop slow ("blocking the event loop").

It times each step by the wall clock, so a step that waits for the interpreter lock or
a CPU counts as busy. Measured in Handoff's processes on a loaded 2-core machine, the
steps it reported at its default of 0.1 s used 0-4 ms of their thread's CPU in 108-542
ms: the I/O thread was waiting its turn, not looping. (The flood of them that idle
processes logged came from a producer busy loop, fixed in `RecordWriter`.) A step that
really loops still shows after a second."""


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Connection options shared by every client of one `KafkaEventLog`.

    Security options are handed to kafka-python unchanged; `connect_timeout_s` bounds
    the first contact with the cluster and `request_timeout_s` every request after it,
    so an unreachable cluster turns into an error rather than a hang.
    """

    bootstrap_servers: str
    client_id: str = "handoff"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.bootstrap_servers.strip():
            raise ConfigError("kafka.bootstrap_servers is empty; name at least one host:port")
        if self.connect_timeout_s <= 0 or self.request_timeout_s <= 1:
            raise ConfigError(
                "Kafka timeouts must be positive (connect) and over one second (requests)"
            )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments every kafka-python client takes."""
        options: dict[str, Any] = {
            "bootstrap_servers": [
                s.strip() for s in self.bootstrap_servers.split(",") if s.strip()
            ],
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "bootstrap_timeout_ms": int(self.connect_timeout_s * 1000),
            "request_timeout_ms": int(self.request_timeout_s * 1000),
            # Back off quickly at first so a broker that is restarting is found again
            # soon, but not so often that a dead one is hammered.
            "reconnect_backoff_ms": 50,
            "reconnect_backoff_max_ms": 2000,
            "kafka_client": partial(KafkaNetClient, slow_task_threshold_secs=SLOW_STEP_S),
        }
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            options["sasl_plain_username"] = self.sasl_username
        if self.sasl_password is not None:
            options["sasl_plain_password"] = self.sasl_password
        if self.ssl_cafile is not None:
            options["ssl_cafile"] = self.ssl_cafile
        return options

    def __repr__(self) -> str:
        # The password stays out of reprs, logs and tracebacks.
        return (
            f"KafkaConnection(bootstrap_servers={self.bootstrap_servers!r}, "
            f"client_id={self.client_id!r}, security_protocol={self.security_protocol!r})"
        )


def check_topic_name(kafka_topic: str) -> str:
    """Return `kafka_topic` if Kafka accepts it as a topic name, else raise `LogError`."""
    if not _TOPIC_NAME.fullmatch(kafka_topic):
        raise LogError(
            f"{kafka_topic!r} cannot be a Kafka topic name: use at most 249 letters, digits, "
            "'.', '_' or '-' (check the topic name and kafka.topic_prefix)"
        )
    return kafka_topic


def translate_kafka_error(
    exc: Exception, doing: str, connection: KafkaConnection
) -> LogError | ConfigError:
    """The `broker.errors` type for a kafka-python error met while `doing` something.

    Messages name the cluster and what to check, and use only the error's class and
    documented description: kafka-python messages can quote requests, which we keep out
    of logs.
    """
    name = type(exc).__name__
    servers = connection.bootstrap_servers
    if isinstance(exc, kafka_errors.UnknownTopicOrPartitionError):
        return UnknownTopicError(
            f"Kafka at {servers} does not know the topic (while trying to {doing})"
        )
    if isinstance(exc, kafka_errors.KafkaConfigurationError):
        return ConfigError(f"the Kafka client settings are invalid ({doing}): {exc}")
    if isinstance(exc, kafka_errors.AuthorizationError):
        return LogError(
            f"Kafka at {servers} refused to {doing}: {name}; grant the principal of "
            f"client {connection.client_id!r} access to the topic or group (ACLs)"
        )
    if isinstance(
        exc,
        (
            kafka_errors.SaslAuthenticationFailedError,
            kafka_errors.UnsupportedSaslMechanismError,
            kafka_errors.IllegalSaslStateError,
        ),
    ):
        return LogError(
            f"Kafka at {servers} did not accept our credentials ({doing}); check "
            "kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username and the password"
        )
    if isinstance(exc, OSError) or getattr(exc, "retriable", False):
        return LogUnavailableError(
            f"Kafka at {servers} did not answer in time while trying to {doing} ({name}); "
            f"check that kafka.bootstrap_servers ({servers}) is right, that the brokers are "
            "up and reachable from here, and kafka.security_protocol"
        )
    description = getattr(exc, "description", "")
    detail = f": {description}" if description else ""
    return LogError(f"Kafka at {servers} failed to {doing} ({name}{detail})")
