"""CPU a router spends polling the embedded log for records another process appends.

The router owns every ingress partition of every event type (9 topics of 4 partitions
here) while births arrive on one of them, appended by another process (the serving
process's group commit) every few milliseconds. Each step polls as `Router.step` does:
a poll that waits for the doorbell, a linger, then a poll that does not wait. This
prints the polling thread's CPU per step with the records per step, so versions of
the consumer (`broker/log/embedded_group.py`) can be compared. Asserts nothing; on a
shared machine run it a few times, alternating versions.

    python bench/router_poll_cpu.py
    python bench/router_poll_cpu.py --seconds 10 --every-ms 1
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from broker.log import SqliteEventLog, TopicSpec  # noqa: E402

TOPICS = [f"events.type{n}" for n in range(9)]
LINGER_S = 0.003
WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from broker.log import NewRecord, SqliteEventLog
log = SqliteEventLog(Path(sys.argv[1]))
end, every, n = time.monotonic() + float(sys.argv[2]), float(sys.argv[3]), 0
while time.monotonic() < end:
    log.append("events.type0", [NewRecord(b"x" * 300, key=str(n % 7).encode())])
    n += 1
    time.sleep(every)
log.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="how long to poll")
    parser.add_argument("--every-ms", type=float, default=3.0,
                        help="the writer's pause between appends of one record")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.db"
        log = SqliteEventLog(path)
        for topic in TOPICS:
            log.ensure_topic(TopicSpec(topic, partitions=4))
        member = log.consumer("router", TOPICS)
        member.poll(0)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path),
                                   str(args.seconds + 2), str(args.every_ms / 1000), str(REPO)])
        time.sleep(0.5)
        steps = records = 0
        cpu, started = time.thread_time(), time.monotonic()
        while time.monotonic() - started < args.seconds:
            polled = member.poll(0.5)
            if polled:
                time.sleep(LINGER_S)
                polled += member.poll(0)
                steps += 1
                records += len(polled)
        cpu = time.thread_time() - cpu
        writer.wait()
        log.close()
    print(f"polling: {cpu / max(steps, 1) * 1e6:.0f} µs CPU per step, {steps} steps, "
          f"{records / max(steps, 1):.1f} records per step (9 topics, 4 partitions each; "
          f"one record appended every {args.every_ms:g} ms by another process)")


if __name__ == "__main__":
    main()
