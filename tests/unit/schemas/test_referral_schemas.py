"""The referral schemas: compatible with the versions before them, and in step with the
referral package's statuses, steps and alerts."""

from __future__ import annotations

import copy

import fastavro
import pytest

from policy.referral_terms import STEPS
from referrals.alerts import OverdueAlert
from referrals.events import ReferralKey
from referrals.lifecycle import BusinessStatus, Reason, Status
from schemas.catalog import SchemaCatalog
from schemas.compatibility import CompatibilityLevel, incompatibilities, parse_for_resolution

CATALOG = SchemaCatalog.load()


def _parsed(schema):
    return parse_for_resolution(copy.deepcopy(dict(schema)), {})


@pytest.mark.parametrize(("event_type", "added"), [
    ("referral", "referred_to_program"),
    ("enrollment", "referred_by"),
])
def test_extended_schemas_stay_backward_compatible(event_type, added):
    current = dict(CATALOG.get(event_type).schema)
    before = {**current, "fields": [f for f in current["fields"] if f["name"] != added]}
    assert len(before["fields"]) == len(current["fields"]) - 1
    assert incompatibilities(_parsed(current), _parsed(before),
                             CompatibilityLevel.BACKWARD) == []


def _symbols(event_type: str, path: str) -> list[str]:
    spec = CATALOG.get(event_type).field(path).avro_type
    if isinstance(spec, list):
        spec = next(t for t in spec if t != "null")
    return list(spec["symbols"])


def test_status_schema_and_lifecycle_agree():
    assert _symbols("referral_status", "status") == [s.value for s in Status]
    assert _symbols("referral_status", "business_status") == [b.value for b in BusinessStatus]
    assert _symbols("referral_status", "reason") == [r.value for r in Reason]
    assert _symbols("handoff_overdue", "status") == [s.value for s in Status]
    assert _symbols("handoff_overdue", "service_level") == [s.upper() for s in STEPS]
    assert _symbols("handoff_overdue", "service") == _symbols("referral",
                                                              "referred_to_service")


def test_personal_fields_of_the_new_schemas_are_tagged():
    status = CATALOG.get("referral_status")
    assert status.field("subject_id").tags == {"identifier.direct"}
    assert status.field("referral_id").tags == {"identifier.direct"}
    assert status.field("reason").tags == {"health"}
    assert not status.field("status").tags
    overdue = CATALOG.get("handoff_overdue")
    assert overdue.field("subject_id").tags == {"identifier.direct"}


def test_an_overdue_alert_is_a_valid_handoff_overdue_record():
    alert = OverdueAlert(ReferralKey("cw-hotline", "HL-1"), "first_contact", "CLEARED",
                         "MPI-1", "hv-nfp", None, "HOME_VISITING", "3 business days",
                         "hotline-to-nfp", 1, 2, 3, Status.IN_PROGRESS)
    assert fastavro.validation.validate(alert.record(), CATALOG.get("handoff_overdue").parsed,
                                        raise_errors=True)
