"""Subject pseudonyms: stable per key, one-way, and never the raw identifier."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from broker.audit import AuditKeyError, SubjectPseudonymizer
from broker.audit.pseudonym import is_subject_pseudonym

KEY = bytes(range(32))


def test_pseudonym_matches_the_documented_formula():
    expected = "sp_" + hmac.new(
        KEY, b"handoff-audit-subject\x00MPI-0048213", hashlib.sha256
    ).hexdigest()[:32]
    assert SubjectPseudonymizer(KEY).pseudonym("MPI-0048213") == expected


def test_pseudonym_is_stable_and_well_formed():
    first = SubjectPseudonymizer(KEY).pseudonym("MPI-0048213")
    assert first == SubjectPseudonymizer(KEY).pseudonym("MPI-0048213")
    assert is_subject_pseudonym(first)
    assert "0048213" not in first


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ((KEY, "MPI-0048213"), (KEY, "MPI-0048214")),
        ((KEY, "MPI-0048213"), (bytes(32), "MPI-0048213")),
        ((KEY, "MPI-0048213"), (KEY, "mpi-0048213")),
        ((KEY, "MPI-0048213"), (KEY, " MPI-0048213")),
    ],
)
def test_different_subject_or_key_gives_a_different_pseudonym(left, right):
    assert SubjectPseudonymizer(left[0]).pseudonym(left[1]) != SubjectPseudonymizer(
        right[0]
    ).pseudonym(right[1])


def test_short_key_is_refused():
    with pytest.raises(AuditKeyError, match="at least 16 bytes"):
        SubjectPseudonymizer(b"short")


def test_the_auditor_names_each_subject_as_the_pseudonymizer_does_however_often_asked(
        monkeypatch):
    from broker import auditor as auditor_module
    from broker.auditor import Auditor
    from broker.metrics import Metrics

    monkeypatch.setattr(auditor_module, "PSEUDONYMS_KEPT", 3)
    pseudonymizer = SubjectPseudonymizer(KEY)
    auditor = Auditor(None, pseudonymizer, Metrics())  # type: ignore[arg-type]
    subjects = [f"MPI-{n % 5}" for n in range(12)] + ["hp_abc", "st-marys|mrn|M-1"]
    for subject in subjects:  # more distinct subjects than are kept, some asked again
        assert auditor.subject(subject) == pseudonymizer.pseudonym(subject)
    assert auditor.subject("MPI-0") != auditor.subject("MPI-1")
