"""The router's linkage stage holds the person index's reads for a batch and lets go at
its end, also when putting the batch's decisions on the linkage topic fails: after it,
a change another connection made to the file shows in the next read."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.audit import SubjectPseudonymizer
from broker.auditor import Auditor
from broker.linking.audit_entries import LinkageAuditor
from broker.linking.linker import Linker
from broker.linking.stage import LinkageStage
from broker.metrics import Metrics
from linkage.default_model import default_model
from linkage.errors import LinkageError
from linkage.index import PersonIndex
from linkage.resolver import PersonResolver
from linkage.sqlite_index import SqlitePersonIndex
from linkage.thresholds import Thresholds
from tests.unit.broker.fakes import MemoryAuditStore
from tests.unit.linkage.linkage_people import hospital

THRESHOLDS = Thresholds.from_probabilities(link=0.99, review=0.5)


class FailingJournal:
    def flush(self, index: PersonIndex) -> int:
        raise LinkageError("the linkage topic cannot be written")


def stage_over(index: SqlitePersonIndex, journal: FailingJournal | None) -> LinkageStage:
    metrics = Metrics()
    auditor = Auditor(MemoryAuditStore(), SubjectPseudonymizer(b"k" * 32), metrics)
    linker = Linker(index, PersonResolver(index, default_model(), THRESHOLDS),
                    LinkageAuditor(auditor), metrics, journal)  # type: ignore[arg-type]
    return LinkageStage(linker, None, metrics)


@pytest.mark.parametrize("journal", [None, FailingJournal()], ids=["flushed", "failed"])
def test_a_batch_lets_go_of_the_reads_it_held(tmp_path: Path,
                                               journal: FailingJournal | None) -> None:
    path = tmp_path / "persons.db"
    router, other = SqlitePersonIndex(path), SqlitePersonIndex(path)
    mother = PersonResolver(other, default_model(), THRESHOLDS).resolve(hospital())
    key = hospital().agency_id.key
    stage = stage_over(router, journal)

    stage.begin(None)                       # the batch's one look sees the link
    assert router.record(key).person_id == mother.person_id
    if journal is None:
        stage.flush()
    else:
        with pytest.raises(LinkageError):
            stage.flush()

    change = PersonResolver(other, default_model(), THRESHOLDS).unlink(
        key, by="steward", reason="test")
    assert router.record(key).person_id == change.rekeys[0].to_person_id
    router.close()
    other.close()
