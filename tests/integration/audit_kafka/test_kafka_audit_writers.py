"""Several writers on one audit log in Kafka: processes appending at once, and a router
that lost its partitions in a rebalance but still finishes its batch. No chain forks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.audit.kafka_store import _Chain
from broker.audit.kafka_verify import verify_kafka
from broker.log.port import NewRecord, TopicSpec
from tests.integration.audit_kafka.conftest import decision
from tests.waiting import eventually

WRITER = Path(__file__).with_name("audit_writer.py")
REPO = Path(__file__).resolve().parents[3]
GENEROUS_S = 30.0


@pytest.mark.slow
def test_two_writer_processes_appending_at_once_keep_sound_chains(space, signer):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen(
            [sys.executable, str(WRITER), space.broker.bootstrap_servers, space.prefix,
             str(space.tmp_path / f"index-{n}.db"), f"router-{n}", "20"],
            stdout=subprocess.PIPE, text=True, env=env)
        for n in range(2)
    ]
    chains = [writer.communicate(timeout=120)[0].strip() for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0]
    reader = space.store("api")
    signer.checkpoint(reader)
    report = verify_kafka(space.log(), signer.public_key)
    assert report.ok, report.problem
    assert (report.records_checked, report.chains) == (400, 2)
    assert reader.chains() == {chain: (200, reader.chains()[chain][1]) for chain in chains}
    # Both processes' records are interleaved in the one topic, each chain intact.
    assert {r.chain for r in reader.iter_records()} == set(chains)


def _poll_until(consumer, want, timeout=GENEROUS_S):
    got = []

    def polled_enough() -> bool:
        got.extend(consumer.poll(0.2, 100))
        return len(got) >= want

    eventually(polled_enough, timeout=timeout, interval=0,
               message=lambda: f"polled {len(got)} of {want} records")
    return got


@pytest.mark.slow
def test_a_router_that_lost_its_partitions_still_appends_without_forking(space, signer):
    """Router A polls a batch, then router B joins and takes over A's partitions before A
    has committed. A still finishes its batch (audit records written), and B decides the
    same events again. Each wrote its own chain: the log verifies, and the events are
    audited twice, never lost."""
    ingress = "events.birth"
    log_a, log_b = space.log(), space.log()
    log_a.ensure_topic(TopicSpec(ingress, partitions=2))
    log_a.append(ingress, [NewRecord(value=f"e{n}".encode(), key=f"MPI-{n}".encode())
                           for n in range(20)])
    audit_a, audit_b = space.store("router-a"), space.store("router-b")
    router_a = log_a.consumer("handoff-router", [ingress])
    batch_a = _poll_until(router_a, 20)
    assert len(batch_a) == 20
    router_b = log_b.consumer("handoff-router", [ingress])
    batch_b = _poll_until(router_b, 1)   # B only gets records once the group rebalanced
    owned = sum(log_b.end_offset(ingress, p) for _, p in router_b.assignment())
    batch_b += _poll_until(router_b, owned - len(batch_b))   # all of B's partitions
    assert batch_b, "router B should have taken over a partition"
    assert len(router_a.assignment()) < 2
    # A finishes its batch after losing the partitions: audit, then its commit is refused
    # for partitions it no longer owns (the port never commits for another member).
    audit_a.append([decision(int(r.value[1:]), f"MPI-{r.value[1:].decode()}")
                    for r in batch_a])
    audit_b.append([decision(int(r.value[1:]), f"MPI-{r.value[1:].decode()}")
                    for r in batch_b])
    router_b.commit({(r.topic, r.partition): r.offset + 1 for r in batch_b})
    router_a.close()
    router_b.close()

    signer.checkpoint(audit_b)
    report = verify_kafka(space.log(), signer.public_key)
    assert report.ok, report.problem
    assert report.chains == 2
    redecided = {f"ev-{int(r.value[1:])}" for r in batch_b}
    by_event: dict[str, set[str]] = {}
    for record in audit_b.iter_records():
        by_event.setdefault(record.event_id, set()).add(record.chain)
    assert set(by_event) == {f"ev-{n}" for n in range(20)}
    assert {e for e, chains in by_event.items() if len(chains) == 2} == redecided


def test_a_chain_written_by_two_writers_would_be_reported(space, signer):
    """One chain per store makes this impossible; should a chain id ever be reused by a
    second writer (a copied process state, a bug), verification says so."""
    original, impostor = space.store("router"), space.store("router")
    original.append([decision(1), decision(2)])
    twin = _Chain(original.chain)
    twin.seq, twin.hash = original._chain.seq, original._chain.hash
    impostor._chain = twin
    original.append([decision(3)])
    impostor.append([decision(4)])
    report = verify_kafka(space.log(), signer.public_key)
    assert report.problem == (f"chain {original.chain} record 3: appears twice (again at "
                              "position 4; forged, or written by a second writer)")
