"""How the Kafka adapter reports cluster problems, and which names it accepts (no I/O)."""

from __future__ import annotations

import pytest
from kafka import errors as kafka_errors

from broker.errors import ConfigError, LogError, LogUnavailableError, UnknownTopicError
from broker.log.kafka_connection import KafkaConnection, check_topic_name, translate_kafka_error

CONNECTION = KafkaConnection("kafka-1.example:9092,kafka-2.example:9092", client_id="router-a")


@pytest.mark.parametrize(
    "error, expected, mentions",
    [
        (kafka_errors.KafkaTimeoutError(), LogUnavailableError, "kafka.bootstrap_servers"),
        (kafka_errors.KafkaConnectionError(), LogUnavailableError, "kafka-1.example:9092"),
        (ConnectionRefusedError(), LogUnavailableError, "brokers are up"),
        (kafka_errors.NotLeaderForPartitionError(), LogUnavailableError, "kafka-2.example:9092"),
        (kafka_errors.UnknownTopicOrPartitionError(), UnknownTopicError, "does not know"),
        (kafka_errors.TopicAuthorizationFailedError(), LogError, "router-a"),
        (kafka_errors.SaslAuthenticationFailedError(), LogError, "kafka.sasl_username"),
        (kafka_errors.KafkaConfigurationError("bad option"), ConfigError, "bad option"),
        (kafka_errors.InvalidReplicationFactorError(), LogError, "InvalidReplicationFactor"),
    ],
    ids=[
        "timeout",
        "connection",
        "refused socket",
        "leader moving",
        "unknown topic",
        "not authorised",
        "bad credentials",
        "bad settings",
        "other broker refusal",
    ],
)
def test_kafka_errors_become_broker_errors_that_say_what_to_check(error, expected, mentions):
    translated = translate_kafka_error(error, "append records to 'events.birth'", CONNECTION)

    assert type(translated) is expected
    assert mentions in str(translated)


def test_only_retriable_problems_are_marked_retriable():
    unavailable = translate_kafka_error(kafka_errors.KafkaTimeoutError(), "commit", CONNECTION)
    refused = translate_kafka_error(
        kafka_errors.InvalidReplicationFactorError(), "create a topic", CONNECTION
    )

    assert getattr(unavailable, "retriable", False) is True
    assert getattr(refused, "retriable", False) is False


def test_error_messages_do_not_quote_what_kafka_python_says():
    # kafka-python messages can quote whole requests; only the class and its documented
    # description reach our messages.
    error = kafka_errors.InvalidTopicError("request quoted: value=b'Jane Doe'")

    assert "Jane Doe" not in str(translate_kafka_error(error, "create a topic", CONNECTION))


def test_the_password_stays_out_of_the_connection_repr():
    connection = KafkaConnection("kafka:9093", sasl_username="handoff", sasl_password="s3cret")

    assert "s3cret" not in repr(connection)
    assert connection.client_options()["sasl_plain_password"] == "s3cret"


def test_client_options_list_every_bootstrap_server():
    options = KafkaConnection(" kafka-1:9092, kafka-2:9092 ,").client_options()

    assert options["bootstrap_servers"] == ["kafka-1:9092", "kafka-2:9092"]


@pytest.mark.parametrize(
    "settings",
    [{"bootstrap_servers": " "}, {"bootstrap_servers": "k:9092", "request_timeout_s": 0.5}],
    ids=["no servers", "request timeout too short"],
)
def test_unusable_connection_settings_are_refused(settings):
    with pytest.raises(ConfigError):
        KafkaConnection(**settings)


@pytest.mark.parametrize(
    "name, accepted",
    [
        ("handoff.events.birth", True),
        ("handoff.deliver.hv-births", True),
        ("handoff._schemas", True),
        ("handoff.deliver/hv births", False),
        ("handoff." + "x" * 250, False),
        ("", False),
    ],
)
def test_topic_names_follow_kafkas_rules(name, accepted):
    if accepted:
        assert check_topic_name(name) == name
    else:
        with pytest.raises(LogError, match="cannot be a Kafka topic name"):
            check_topic_name(name)
