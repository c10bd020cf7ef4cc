"""Loading bundles: every mistake reported at once, with file, line and field; the
version hash; rule packs shipped as editable defaults and replaceable per bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from policy_cases import CATALOG, DEMO_DIR, FIXTURES

from policy import BundleError, Problem, load_bundle
from policy.loader import DEFAULT_RULEPACKS

# Every problem in fixtures/broken, in the order they are reported.
BROKEN = [
    ("agencies.yaml", 5, "regimes[1]", "unknown regime 'hipa'"),
    ("agencies.yaml", 6, "publishes[2]", "unknown event type 'births'"),
    ("agencies.yaml", 12, "kind", "unknown agency kind 'home_visitor'"),
    ("agencies.yaml", 16, "colour", "unknown key 'colour'"),
    ("agencies.yaml", 17, "id", "duplicate agency id 'county-general' (first at "
                                "agencies.yaml:2)"),
    ("agreements/more.yaml", 11, "recipient", "unknown agency 'nobody'"),
    ("agreements/more.yaml", 13, "event_types[0]",
     "source 'hv-nfp2' does not publish 'enrollment'"),
    ("agreements/overlap.yaml", 15, "effective", "overlaps agreement 'cg-hv-a' "
                                                 "(agreements/overlap.yaml:2) for birth"),
    ("agreements/vr-hv.yaml", 2, "id", "duplicate agreement id 'vr-hv' "
                                       "(first at agreements/more.yaml:2)"),
    ("agreements/vr-hv.yaml", 6, "event_types[1]", "unknown event type 'referal'"),
    ("agreements/vr-hv.yaml", 11, "fields[2]", "transform generalise:zip3 does not apply to "
                                               "'child.birth_date'"),
    ("agreements/vr-hv.yaml", 12, "fields[3]", "'mother.ssns' is not a field of birth v1"),
    ("agreements/vr-hv.yaml", 13, "fields[4]", "'subject_id' is listed twice"),
    ("agreements/vr-hv.yaml", 17, "purpose", "use lower-case letters, digits and '_'"),
    ("agreements/vr-hv.yaml", 19, "effective", "valid date"),
    ("agreements/vr-hv.yaml", 20, "scope", "'field' or 'record'"),
    ("rulepacks/capta.yaml", 8, "when.tags", "unknown data category 'reporter'"),
    ("rulepacks/state_x.yaml", 5, "id", "duplicate rule id 'hipaa.treatment' (first at "
                                        "<default>/rulepacks/hipaa.yaml:"),
    ("rulepacks/state_x.yaml", 8, "when.fields[0]", "'mother.ssns' is not a field of any"),
    ("rulepacks/wrong_name.yaml", 1, "regime", "regime 'other_name' does not match the file "
                                               "name 'wrong_name.yaml'"),
    ("subscriptions.yaml", 3, "agency", "unknown agency 'hv-nfp3'"),
    ("subscriptions.yaml", 7, "filter.child.sexx", "'child.sexx' is not a field of birth v1"),
    ("subscriptions.yaml", 8, "filter.child.sex", "'FEMININE' is not a symbol of child.sex"),
    ("subscriptions.yaml", 13, "delivery", "webhook delivery needs a url"),
]


@pytest.fixture(scope="module")
def broken() -> list[Problem]:
    with pytest.raises(BundleError) as raised:
        load_bundle(FIXTURES / "broken", CATALOG)
    return raised.value.problems


@pytest.mark.parametrize(("file", "line", "location", "message"), BROKEN,
                         ids=[f"{f}:{n}:{loc}" for f, n, loc, _ in BROKEN])
def test_each_mistake_is_reported_with_file_line_and_field(
        broken: list[Problem], file: str, line: int, location: str, message: str) -> None:
    found = [p for p in broken if (p.file, p.line, p.location) == (file, line, location)]
    assert found, f"no problem at {file}:{line}: {location}"
    assert message in found[0].message


def test_every_mistake_is_reported_at_once_and_nothing_else(broken: list[Problem]) -> None:
    assert [(p.file, p.line, p.location) for p in broken] == [b[:3] for b in BROKEN]


def test_problems_print_as_file_line_field_message(broken: list[Problem]) -> None:
    assert str(broken[11]) == ("agreements/vr-hv.yaml:12: fields[3]: 'mother.ssns' is not a "
                               "field of birth v1")


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(DEMO_DIR, target)
    return target


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("agencies.yaml", "agencies:\n  - id: x\n    name: [unclosed\n",
     "agencies.yaml:4: invalid YAML"),
    ("agencies.yaml", "agencies:\n  - id: a\n    id: b\n", "agencies.yaml:3: invalid YAML"),
    ("agencies.yaml", "- just a list\n", "agencies.yaml:1: expected a mapping with one key, "
                                         "'agencies:'"),
    ("agreements/extra.yaml", "agreements: {id: x}\n", "agreements/extra.yaml:1: agreements: "
                                                      "must be a list"),
])
def test_file_level_mistakes(demo_copy: Path, name: str, text: str, expected: str) -> None:
    write(demo_copy, name, text)
    with pytest.raises(BundleError) as raised:
        load_bundle(demo_copy, CATALOG)
    assert any(str(p).startswith(expected) for p in raised.value.problems), \
        [str(p) for p in raised.value.problems]


def test_missing_agencies_file(demo_copy: Path) -> None:
    (demo_copy / "agencies.yaml").unlink()
    with pytest.raises(BundleError) as raised:
        load_bundle(demo_copy, CATALOG)
    assert str(raised.value.problems[0]) == "agencies.yaml: file is missing"


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError):
        load_bundle(tmp_path / "nope", CATALOG)


@pytest.mark.parametrize(("block", "expected"), [
    ("    consents:\n      relies_on: [hv-nfp, nobody]\n",
     "agencies.yaml:12: consents.relies_on[1]: unknown agency 'nobody'"),
    ("    consents:\n      records_for: [kind:hospitl]\n",
     "agencies.yaml:12: consents.records_for: unknown agency kind 'hospitl'"),
    ("    consents:\n      records_for: ['County General']\n",
     "agencies.yaml:12: consents.records_for: 'County General' is not an agency id"),
    ("    consents:\n      relies_on: [hv-nfp]\n      rely_on: [medicaid]\n",
     "agencies.yaml:13: consents.rely_on: unknown key 'rely_on'"),
])
def test_who_records_consents_is_checked_with_file_line_and_field(
        demo_copy: Path, block: str, expected: str) -> None:
    text = (demo_copy / "agencies.yaml").read_text(encoding="utf-8")
    start = text.index("    consents:\n      # HIPAA")
    end = text.index("    description: Birthing hospital")
    write(demo_copy, "agencies.yaml", text[:start] + block + text[end:])
    with pytest.raises(BundleError) as raised:
        load_bundle(demo_copy, CATALOG)
    assert any(str(p).startswith(expected) for p in raised.value.problems), \
        [str(p) for p in raised.value.problems]


def test_recording_consents_without_publishing_them_is_a_warning(demo_copy: Path) -> None:
    text = (demo_copy / "agencies.yaml").read_text(encoding="utf-8")
    write(demo_copy, "agencies.yaml", text.replace(
        "    publishes: [enrollment, screening, consent, referral_status]\n    consents:",
        "    publishes: [enrollment, screening, referral_status]\n    consents:"))
    bundle = load_bundle(demo_copy, CATALOG)
    assert [w.location for w in bundle.warnings] == ["consents.records_for"]
    assert "does not publish consent events" in str(bundle.warnings[0])


# -- the demo and the shipped packs -------------------------------------------------------


def test_the_demo_bundle_loads_clean() -> None:
    bundle = load_bundle(DEMO_DIR, CATALOG)
    assert bundle.warnings == ()
    assert set(bundle.rulepacks) == {"hipaa", "ferpa", "cfr42_part2", "capta",
                                     "state_vital_records"}
    assert bundle.agencies["recovery-clinic"].regimes == ("cfr42_part2", "hipaa")
    assert bundle.subscriptions["hv-births"].delivery.mode == "webhook"


@pytest.mark.parametrize("pack", sorted(p.name for p in DEFAULT_RULEPACKS.glob("*.yaml")))
def test_shipped_packs_say_they_are_editable_defaults_not_legal_advice(pack: str) -> None:
    text = (DEFAULT_RULEPACKS / pack).read_text(encoding="utf-8")
    assert text.startswith("# EDITABLE DEFAULT, NOT LEGAL ADVICE.")
    bundle = load_bundle(DEMO_DIR, CATALOG)
    loaded = bundle.rulepacks[pack.removesuffix(".yaml")]
    assert "not legal advice" in loaded.notice.lower()
    assert all(rule.citation for rule in loaded.rules)


def test_a_bundle_pack_replaces_the_shipped_one_of_the_same_regime(demo_copy: Path) -> None:
    write(demo_copy, "rulepacks/capta.yaml", (
        "regime: capta\ntitle: Our state's CAPTA rules\nnotice: Editable, not legal advice.\n"
        "rules:\n  - id: state.reporter\n    citation: State statute 48.981(7)\n"
        "    when: {tags: [reporter_identity], source: any}\n    then: deny\n"))
    bundle = load_bundle(demo_copy, CATALOG)
    assert [r.id for r in bundle.rulepacks["capta"].rules] == ["state.reporter"]


def test_subscription_without_an_agreement_is_a_warning(demo_copy: Path) -> None:
    text = (demo_copy / "subscriptions.yaml").read_text(encoding="utf-8")
    write(demo_copy, "subscriptions.yaml", text + (
        "  - id: ma-births\n    agency: medicaid\n    event_types: [birth]\n"
        "    purpose: payment\n"))
    bundle = load_bundle(demo_copy, CATALOG)
    assert [(w.file, w.location, w.severity) for w in bundle.warnings] == [
        ("subscriptions.yaml", "purpose", "warning")]
    assert "no agreement lets 'medicaid' receive birth for 'payment'" in str(bundle.warnings[0])


# -- the version --------------------------------------------------------------------------


def test_version_format_and_stability() -> None:
    first, again = load_bundle(DEMO_DIR, CATALOG), load_bundle(DEMO_DIR, CATALOG)
    assert first.version == again.version
    assert first.version.startswith("sha256:") and len(first.version) == len("sha256:") + 16


def test_comments_and_layout_do_not_change_the_version(demo_copy: Path) -> None:
    before = load_bundle(demo_copy, CATALOG).version
    path = demo_copy / "subscriptions.yaml"
    text = path.read_text(encoding="utf-8")
    text = "# a new comment\n\n" + text.replace("    sources: [cw-hotline]",
                                                "    sources:\n      - cw-hotline  # why")
    path.write_text(text, encoding="utf-8")
    (demo_copy / "agreements" / "hv-nfp.yaml").rename(demo_copy / "agreements" / "z.yaml")
    assert load_bundle(demo_copy, CATALOG).version == before


@pytest.mark.parametrize(("file", "old", "new"), [
    ("agreements/county-general.yaml", "      - mother.phone\n", "      - mother.phone: mask\n"),
    ("agreements/county-general.yaml", "    expires: 2028-12-31", "    expires: 2028-12-30"),
    ("subscriptions.yaml", "    delivery: stream", "    delivery: pull"),
    ("agencies.yaml", "    name: Metro School District", "    name: Metro Schools"),
])
def test_any_change_in_meaning_changes_the_version(demo_copy: Path, file: str, old: str,
                                                   new: str) -> None:
    before = load_bundle(demo_copy, CATALOG).version
    path = demo_copy / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    assert load_bundle(demo_copy, CATALOG).version != before


def test_editing_an_effective_rule_pack_changes_the_version(demo_copy: Path) -> None:
    before = load_bundle(demo_copy, CATALOG).version
    text = (DEFAULT_RULEPACKS / "hipaa.yaml").read_text(encoding="utf-8")
    write(demo_copy, "rulepacks/hipaa.yaml", text.replace("program_evaluation]", "]", 1))
    assert load_bundle(demo_copy, CATALOG).version != before
