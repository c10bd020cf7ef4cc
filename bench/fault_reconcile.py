"""The reconciliation at the end of a fault loop (`bench/fault_kill_loop.py`): every
delivery of each subscription and every audited decision, read back over the broker's
HTTP API and checked against the events the publisher saw acknowledged."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SubscriptionTally:
    delivered: int = 0
    unique: int = 0
    lost: int = 0
    duplicates: int = 0
    inconsistent: int = 0
    unaudited: int = 0
    undecided: int = 0


@dataclass
class KillLoopReport:
    kills_survived: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    """Faults injected, by victim (a process role, or `kafka-freeze`)."""
    audit_repeats: int = 0
    acknowledged: int = 0
    acknowledged_as_duplicate: int = 0
    resent: int = 0
    audited_decisions: int = 0
    audit_verified: bool = False
    seconds: float = 0.0
    restart_seconds: list[float] = field(default_factory=list)
    subscriptions: dict[str, SubscriptionTally] = field(default_factory=dict)

    @property
    def sound(self) -> bool:
        """Nothing lost, nothing unaudited or undecided, duplicates consistent."""
        return self.audit_verified and all(
            t.lost == 0 and t.unaudited == 0 and t.undecided == 0 and t.inconsistent == 0
            for t in self.subscriptions.values())

    def lines(self) -> list[str]:
        restarts = sorted(self.restart_seconds)
        median = restarts[len(restarts) // 2] if restarts else 0.0
        victims = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        out = [
            f"faults survived:       {sum(self.faults.values())} ({victims}); "
            f"kill -9s {self.kills_survived}",
            f"events acknowledged:   {self.acknowledged} "
            f"({self.acknowledged_as_duplicate} on a re-send, {self.resent} re-sends)",
            f"audit decisions:       {self.audited_decisions} ({self.audit_repeats} repeated "
            f"by replays); chain verifies: {'yes' if self.audit_verified else 'NO'}",
            f"run time:              {self.seconds:.0f} s; restart to ready: median "
            f"{median:.1f} s, max {max(restarts, default=0.0):.1f} s",
        ]
        for sub, t in sorted(self.subscriptions.items()):
            out.append(f"{sub:<22} delivered {t.delivered} ({t.unique} events), lost {t.lost}, "
                       f"duplicates {t.duplicates} (inconsistent {t.inconsistent}), "
                       f"unaudited {t.unaudited}, undecided {t.undecided}")
        out.append("RESULT: " + ("sound" if self.sound else "FAILED"))
        return out


def pull_everything(url: str, key: str, sub: str, expect_ids: set[str], timeout: float
                    ) -> list[dict[str, Any]]:
    """Every delivery of `sub` from the start, waiting until `expect_ids` all arrived."""
    http = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"})
    deliveries: list[dict[str, Any]] = []
    cursor = ""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        response = http.get(f"/v1/subscriptions/{sub}/events",
                            params={"after": cursor, "limit": 1000, "wait": 1})
        response.raise_for_status()
        body = response.json()
        deliveries += body["events"]
        seen.update(d["event_id"] for d in body["events"])
        cursor = body["next"]
        if not body["events"] and expect_ids <= seen:
            break
    http.close()
    return deliveries


def audited_decisions(url: str, key: str) -> list[dict[str, Any]]:
    http = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"})
    records: list[dict[str, Any]] = []
    after = 0
    while True:
        page = http.get("/v1/audit/decisions", params={"after": after, "limit": 1000})
        page.raise_for_status()
        body = page.json()
        if not body["records"]:
            break
        records += body["records"]
        after = body["next"]
    http.close()
    return records


def reconcile(report: KillLoopReport, acked: set[str], deliveries: dict[str, list[dict]],
              decisions: list[dict[str, Any]]) -> None:
    report.audited_decisions = len(decisions)
    audited_ids = {d["decision_id"] for d in decisions}
    report.audit_repeats = len(decisions) - len(audited_ids)
    decided: dict[str, set[str]] = defaultdict(set)
    for d in decisions:
        if d.get("subscription") and d.get("event_id"):
            decided[d["subscription"]].add(d["event_id"])
    for sub, items in deliveries.items():
        by_event: dict[str, set[str]] = defaultdict(set)
        for d in items:
            by_event[d["event_id"]].add(d["decision_id"])
        report.subscriptions[sub] = SubscriptionTally(
            delivered=len(items),
            unique=len(by_event),
            lost=len(acked - by_event.keys()),
            duplicates=len(items) - len(by_event),
            inconsistent=sum(1 for ids in by_event.values() if len(ids) > 1),
            unaudited=sum(1 for d in items if d["decision_id"] not in audited_ids),
            undecided=len(acked - decided[sub]),
        )
