"""Be one member of a Kafka consumer group in its own process, reporting what it gets.

Usage: python kafka_group_member.py BOOTSTRAP_SERVERS TOPIC_PREFIX GROUP TOPIC

Prints, flushed, one line per event:

    assignment [[topic, partition], ...]   whenever the member's partitions change
    record PARTITION OFFSET                for every record it receives

and commits what it received after each poll. Leaves the group and exits when its
stdin closes, or after a minute so a failed test leaves nothing running.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from broker.log.kafka import KafkaEventLog

_GIVE_UP_AFTER_S = 60.0


def main() -> None:
    servers, prefix, group, topic = sys.argv[1:5]
    stdin_closed = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        stdin_closed.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    log = KafkaEventLog(servers, topic_prefix=prefix)
    member = log.consumer(group, [topic])
    reported: set[tuple[str, int]] | None = None
    stop_at = time.monotonic() + _GIVE_UP_AFTER_S
    while not stdin_closed.is_set() and time.monotonic() < stop_at:
        records = member.poll(0.1)
        assignment = member.assignment()
        if assignment != reported:
            print("assignment", json.dumps(sorted(assignment)), flush=True)
            reported = assignment
        for record in records:
            print("record", record.partition, record.offset, flush=True)
        if records:
            ends: dict[tuple[str, int], int] = {}
            for record in records:
                ends[(record.topic, record.partition)] = record.offset + 1
            member.commit(ends)
    log.close()


if __name__ == "__main__":
    main()
