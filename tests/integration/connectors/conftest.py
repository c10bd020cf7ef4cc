"""Fixtures of the connector integration tests: a real PostgreSQL server."""

from tests.postgres_server import postgres_database, postgres_server  # noqa: F401
