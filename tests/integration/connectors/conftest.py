"""Fixtures of the connector integration tests: a real PostgreSQL server, and the event
log on both backends (embedded and a Tansu broker)."""

from tests.contract.conftest import event_log_factory  # noqa: F401
from tests.kafka_broker import kafka_broker  # noqa: F401
from tests.postgres_server import postgres_database, postgres_server  # noqa: F401
