"""Cluster administration for `KafkaEventLog`: creating and checking topics, and reading
consumer groups' committed offsets.

Names here are Kafka names (prefix included); `KafkaEventLog` maps port names to them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kafka import KafkaAdminClient, TopicPartition
from kafka import errors as kafka_errors
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from broker.errors import LogUnavailableError, TopicMismatchError
from broker.log.kafka_connection import KafkaConnection, translate_kafka_error
from broker.log.port import TopicSpec

log = logging.getLogger(__name__)

_UNKNOWN_TOPIC = kafka_errors.UnknownTopicOrPartitionError.errno


class KafkaAdmin:
    """Topic creation, listing and shape checks, and committed offsets, through one
    kafka-python admin client.

    Cleanup policy is checked only where the broker reports it: Apache Kafka always does;
    Tansu reports topic configs only when they were set at creation (which this class
    always does) and only when asked for all configs, not for named ones. Where the
    broker reports nothing, the check is skipped with a warning rather than guessed.
    """

    def __init__(self, connection: KafkaConnection, replication_factor: int) -> None:
        self._connection = connection
        self._replication_factor = replication_factor
        self._lock = threading.Lock()
        try:
            self._client = KafkaAdminClient(**connection.client_options())
        except kafka_errors.KafkaError as exc:
            raise translate_kafka_error(exc, "connect", connection) from exc

    def ensure(self, kafka_topic: str, spec: TopicSpec) -> None:
        """Create `kafka_topic` with the shape of `spec`, or check the shape it has."""
        policy = "compact" if spec.compacted else "delete"
        retention = str(-1 if spec.retention_ms is None else spec.retention_ms)
        new_topic = NewTopic(
            kafka_topic,
            spec.partitions,
            self._replication_factor,
            topic_configs={"cleanup.policy": policy, "retention.ms": retention},
        )
        try:
            with self._lock:
                self._client.create_topics([new_topic])
            return
        except kafka_errors.TopicAlreadyExistsError:
            pass
        except kafka_errors.KafkaError as exc:
            raise translate_kafka_error(
                exc, f"create topic {kafka_topic!r}", self._connection
            ) from exc
        self._check_shape(kafka_topic, spec, retention)

    def partition_count(self, kafka_topic: str) -> int | None:
        """Partitions of `kafka_topic`, or None when the cluster has no such topic."""
        try:
            with self._lock:
                (described,) = self._client.describe_topics([kafka_topic])
        except kafka_errors.KafkaError as exc:
            raise translate_kafka_error(
                exc, f"describe topic {kafka_topic!r}", self._connection
            ) from exc
        error_code = described.get("error_code", 0)
        if error_code == _UNKNOWN_TOPIC:
            return None
        if error_code:
            error = kafka_errors.for_code(error_code)()
            raise translate_kafka_error(error, f"describe topic {kafka_topic!r}", self._connection)
        return len(described["partitions"])

    def topic_names(self) -> list[str]:
        """Every topic name on the cluster."""
        try:
            with self._lock:
                return list(self._client.list_topics())
        except kafka_errors.KafkaError as exc:
            raise translate_kafka_error(exc, "list topics", self._connection) from exc

    def committed_offset(self, group: str, tp: TopicPartition) -> int | None:
        """`group`'s committed offset for `tp`, or None if it never committed.

        Asked through the admin client's own connection: a group member's connection to
        the coordinator is held by a pending JoinGroup during a rebalance (brokers answer
        a connection's requests in order), and the answer should not wait for that.
        """
        try:
            with self._lock:
                answer = self._client.list_group_offsets({group: [tp]})
        except kafka_errors.KafkaError as exc:
            raise translate_kafka_error(exc, "read a committed offset", self._connection) from exc
        committed = answer.get(group, {}).get(tp)
        if committed is None or committed.offset < 0:
            return None
        return int(committed.offset)

    def close(self) -> None:
        """Close the admin client."""
        with self._lock:
            self._client.close()

    # -- internals ------------------------------------------------------------------------

    def _check_shape(self, kafka_topic: str, spec: TopicSpec, retention: str) -> None:
        partitions = self.partition_count(kafka_topic)
        if partitions is None:
            # Deleted between our create and describe: worth another try, not a mismatch.
            raise LogUnavailableError(
                f"topic {kafka_topic!r} vanished while being created; try again"
            )
        configs = self._topic_configs(kafka_topic)
        policy = configs.get("cleanup.policy")
        problems = []
        if partitions != spec.partitions:
            problems.append(
                f"it has {partitions} partition(s) but {spec.partitions} are required. Adding "
                "partitions would move keys to other partitions and break per-key order, so "
                "create the topic afresh (delete it if its records may go, or point "
                "kafka.topic_prefix at a new set of topics)"
            )
        if policy is not None and ("compact" in policy) != spec.compacted:
            wanted = "compact" if spec.compacted else "delete"
            problems.append(
                f"its cleanup.policy is {policy!r} but {wanted!r} is required; set it with "
                f"kafka-configs.sh --alter --entity-type topics --entity-name {kafka_topic} "
                f"--add-config cleanup.policy={wanted}"
            )
        if problems:
            raise TopicMismatchError(
                f"Kafka topic {kafka_topic!r} exists, but " + "; ".join(problems)
            )
        if policy is None:
            log.warning(
                "Kafka topic %r: the broker does not report its cleanup.policy, so it was not "
                "checked (%s is required)",
                kafka_topic,
                "compact" if spec.compacted else "delete",
            )
        current_retention = configs.get("retention.ms")
        if current_retention is not None and current_retention != retention:
            # Retention is the operator's to change on a shared cluster: warn, do not alter.
            log.warning(
                "Kafka topic %r keeps retention.ms=%s, not the configured %s; change it with "
                "kafka-configs.sh --alter --entity-type topics --entity-name %s "
                "--add-config retention.ms=%s",
                kafka_topic,
                current_retention,
                retention,
                kafka_topic,
                retention,
            )

    def _topic_configs(self, kafka_topic: str) -> dict[str, str]:
        resource = ConfigResource(ConfigResourceType.TOPIC, kafka_topic)
        try:
            with self._lock:
                # Asking for all configs rather than named ones: Tansu cannot parse a
                # request that names configs and drops the connection.
                described: Any = self._client.describe_configs([resource], config_filter="all")
        except kafka_errors.UnsupportedVersionError:
            return {}
        except kafka_errors.KafkaError as exc:
            raise translate_kafka_error(
                exc, f"describe the configs of topic {kafka_topic!r}", self._connection
            ) from exc
        entries = described.get("topic", {}).get(kafka_topic, {})
        return {
            name: str(entry["value"])
            for name, entry in entries.items()
            if isinstance(entry, dict) and entry.get("value") is not None
        }
