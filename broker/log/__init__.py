"""The event log: the port every backend implements, and the embedded SQLite backend."""

from broker.log.partitioner import partition_for
from broker.log.port import (
    AppendResult,
    Consumer,
    EventLog,
    LogRecord,
    NewRecord,
    TopicSpec,
)
from broker.log.sqlite import SqliteEventLog

__all__ = [
    "AppendResult",
    "Consumer",
    "EventLog",
    "LogRecord",
    "NewRecord",
    "SqliteEventLog",
    "TopicSpec",
    "partition_for",
]
