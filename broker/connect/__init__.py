"""The machinery that runs connectors inside a broker: the host and its worker threads,
source batches through the publisher, positions and dead letters in the event log, and
the test harness. The connector SDK itself (`connectors/`) imports nothing of this."""
