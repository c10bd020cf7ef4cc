"""The file-drop source: a nightly CSV export, as an agency would drop it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from broker.testing import ConnectorHarness
from connectors.errors import FatalConnectorError

HEADER = ("mrn,recorded,child_mrn,child_first,child_last,dob,sex,weight,ga,nicu,exposure,"
          "mother_first,mother_last,mother_dob,medicaid,phone\n")
ROW = ("{mrn},11/06/2026 14:20,C-{mrn},Amara,Lindqvist,{dob},{sex},2410,36,yes,OPIOIDS,"
       "Jolene,Lindqvist,05/14/1995,y,608-555-0142\n")

MAPPING = """\
event_type: birth
fields:
  subject_id: mrn
  occurred_at: {from: recorded, convert: [{datetime: "%m/%d/%Y %H:%M"}]}
  child.child_id: child_mrn
  child.first_name: child_first
  child.last_name: child_last
  child.birth_date: {from: dob, convert: [{date: "%m/%d/%Y"}]}
  child.sex: {from: sex, convert: [upper, {lookup: {F: FEMALE, M: MALE}}]}
  child.birth_weight_grams: {from: weight, convert: [int]}
  child.gestational_age_weeks: {from: ga, convert: [int]}
  child.nicu_admission: {from: nicu, convert: [bool]}
  child.substance_exposure: exposure
  mother.first_name: mother_first
  mother.last_name: mother_last
  mother.birth_date: {from: mother_dob, convert: [{date: "%m/%d/%Y"}]}
  mother.medicaid_covered_birth: {from: medicaid, convert: [bool]}
  mother.phone: {from: phone, default: null}
  hospital_id: {const: "1467533928"}
  county_fips: {const: "55025"}
"""


def row(mrn: str, dob: str = "11/06/2026", sex: str = "f") -> str:
    return ROW.format(mrn=mrn, dob=dob, sex=sex)


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    (tmp_path / "births.yaml").write_text(MAPPING)
    return folder


@pytest.fixture
def harness(tmp_path: Path):
    with ConnectorHarness(tmp_path / "data") as h:
        yield h


def config(drop: Path, **extra) -> dict:
    return {"type": "file_drop", "name": "cg-births", "agency": "county-general",
            "folder": str(drop), "mapping": str(drop.parent / "births.yaml"),
            "min_age_seconds": 0, **extra}


def report(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}.report.json").read_text())


def test_a_clean_export_is_published_and_moved_to_done_with_a_report(drop, harness):
    (drop / "births-1106.csv").write_text(HEADER + row("MPI-1") + row("MPI-2", sex="m"))
    source = harness.connector(config(drop))
    source.start()
    source.run_until_idle()
    events = {e["subject_id"]: e for e in harness.events("birth")}
    assert sorted(events) == ["MPI-1", "MPI-2"]
    assert events["MPI-2"]["child"]["sex"] == "MALE"
    assert events["MPI-1"]["child"]["birth_date"] == "2026-11-06"
    assert sorted(p.name for p in drop.iterdir()) == [".processing", "done", "failed"]
    assert (drop / "done" / "births-1106.csv").exists()
    assert report(drop / "done", "births-1106.csv") | {"finished_at": None} == {
        "file": "births-1106.csv", "sha256": source.offset["sha256"],
        "connector": "cg-births", "outcome": "done", "error": None, "rows": 2,
        "published": 2, "rejected": [], "finished_at": None}


def test_rejected_rows_are_listed_by_line_and_reason_and_the_file_goes_to_failed(
        drop, harness):
    (drop / "births.csv").write_text(
        HEADER + row("MPI-1") + row("MPI-2", dob="13/45/2026") + "\n"
        + row("MPI-3", sex="x") + row("MPI-4") + "MPI-5,too,few\n" + "a,b,c" + ",x" * 20
        + "\n")
    source = harness.connector(config(drop))
    source.start()
    source.run_until_idle()
    assert sorted(e["subject_id"] for e in harness.events("birth")) == ["MPI-1", "MPI-4"]
    result = report(drop / "failed", "births.csv")
    assert result["outcome"] == "failed" and result["rows"] == 6
    assert result["published"] == 2
    assert [(r["line"], [p["path"] for p in r["problems"]]) for r in result["rejected"]] == [
        (3, ["child.birth_date"]), (5, ["child.sex"]), (7, ["occurred_at"]), (8, ["<row>"])]
    text = json.dumps(result)
    assert "MPI-2" not in text and "13/45" not in text  # reasons, never values
    assert len(harness.dead_letters("cg-births")) == 4


def test_a_file_that_is_not_text_is_failed_whole_and_nothing_published(drop, harness):
    (drop / "births.csv").write_bytes(HEADER.encode() + b"\xff\xfe\x00garbage\n")
    (drop / "empty.csv").write_text("")
    source = harness.connector(config(drop))
    source.start()
    source.run_until_idle()
    assert harness.events("birth") == []
    assert report(drop / "failed", "births.csv")["error"] == "the file is not utf-8-sig text"
    assert report(drop / "failed", "empty.csv")["error"] == "the file has no header row"


def test_json_lines_files_are_read_too(drop, harness, tmp_path):
    doc = json.loads((Path(__file__).parents[3] / "schemas/events/birth.example.json")
                     .read_text())
    doc.pop("event_id")
    lines = [json.dumps({**doc, "subject_id": "MPI-J1"}), "not json", "[1, 2]",
             json.dumps({**doc, "subject_id": "MPI-J2"})]
    (drop / "births.jsonl").write_text("\n".join(lines) + "\n")
    source = harness.connector(config(drop, mapping={"event_type": "birth",
                                                     "passthrough": True}))
    source.start()
    source.run_until_idle()
    assert sorted(e["subject_id"] for e in harness.events("birth")) == ["MPI-J1", "MPI-J2"]
    rejected = report(drop / "failed", "births.jsonl")["rejected"]
    assert [(r["line"], r["problems"][0]["problem"]) for r in rejected] == [
        (2, "not valid JSON"), (3, "expected a JSON object")]


def test_each_file_is_processed_once_even_when_the_same_name_comes_again(drop, harness):
    (drop / "births.csv").write_text(HEADER + row("MPI-1"))
    source = harness.connector(config(drop))
    source.start()
    source.run_until_idle()
    (drop / "births.csv").write_text(HEADER + row("MPI-2"))  # the next night's export
    source.run_until_idle()
    assert sorted(e["subject_id"] for e in harness.events("birth")) == ["MPI-1", "MPI-2"]
    assert sorted(p.name for p in (drop / "done").iterdir()) == [
        "births-2.csv", "births-2.csv.report.json", "births.csv", "births.csv.report.json"]


def test_a_crash_mid_file_resumes_after_the_last_committed_line(drop, harness):
    (drop / "births.csv").write_text(HEADER + "".join(row(f"MPI-{i}") for i in range(10)))
    source = harness.connector(config(drop, batch_size=3))
    source.start()
    source.step()
    source.step(crash_before_commit=True)
    assert (drop / ".processing" / "births.csv").exists()
    source.start()
    source.run_until_idle()
    assert sorted(e["subject_id"] for e in harness.events("birth")) == sorted(
        f"MPI-{i}" for i in range(10))
    assert source.status["records"]["duplicate"] == 3
    assert report(drop / "done", "births.csv")["rows"] == 10


def test_a_file_committed_but_not_yet_moved_is_finished_on_restart(drop, harness):
    (drop / "births.csv").write_text(HEADER + row("MPI-1") + row("MPI-2", sex="x"))
    source = harness.connector(config(drop))
    source.start()
    # Read and publish the whole file, persist the position, then die before `commit`
    # could move the file: what kill -9 at the worst moment leaves behind.
    driver = source._driver
    batch = driver.connector.poll()
    driver.publisher.publish(batch)
    harness.connectors.offsets.commit("cg-births", batch[-1].position)
    source.crash()
    source.start()
    assert source.run_until_idle() == 0
    result = report(drop / "failed", "births.csv")
    assert [r["line"] for r in result["rejected"]] == [3]
    assert [e["subject_id"] for e in harness.events("birth")] == ["MPI-1"]


def test_two_connectors_on_one_folder_never_take_the_same_file(drop, harness):
    for n in range(6):
        (drop / f"part-{n}.csv").write_text(HEADER + row(f"MPI-{n}"))
    first = harness.connector(config(drop))
    second = harness.connector({**config(drop), "name": "cg-births-2"})
    first.start()
    second.start()
    while first.step() | second.step():
        pass
    subjects = [e["subject_id"] for e in harness.events("birth")]
    assert sorted(subjects) == [f"MPI-{n}" for n in range(6)]
    assert len([p for p in (drop / "done").iterdir() if p.suffix == ".csv"]) == 6


def test_files_still_being_written_are_left_alone(drop, harness):
    path = drop / "births.csv"
    path.write_text(HEADER + row("MPI-1"))
    source = harness.connector(config(drop, min_age_seconds=60))
    source.start()
    assert source.run_until_idle() == 0
    assert path.exists()
    old = time.time() - 120
    os.utime(path, (old, old))
    source.run_until_idle()
    assert [e["subject_id"] for e in harness.events("birth")] == ["MPI-1"]


def test_a_name_too_long_for_its_report_is_refused_unpublished_and_later_files_go_on(
        drop, harness):
    long_name = "births-" + "x" * 238 + ".csv"     # 249 characters, as dropped
    assert len(long_name) == 249
    (drop / long_name).write_text(HEADER + row("MPI-LONG"))
    (drop / "later.csv").write_text(HEADER + row("MPI-LATER"))
    source = harness.connector(config(drop))
    source.start()
    source.run_until_idle()
    assert [e["subject_id"] for e in harness.events("birth")] == ["MPI-LATER"]
    assert (drop / "done" / "later.csv").exists()
    (moved,) = [p for p in (drop / "failed").iterdir() if not p.name.endswith(".json")]
    assert moved.name.startswith("births-xxx") and moved.name.endswith(".csv")
    assert moved.read_text() == HEADER + row("MPI-LONG")   # kept whole, under a short name
    result = report(drop / "failed", moved.name)
    assert result["file"] == long_name and result["published"] == 0
    assert "names longer than 231 bytes are refused" in result["error"]
    assert list((drop / ".processing").iterdir()) == []


def test_a_symbolic_link_is_refused_without_reading_its_target_and_later_files_go_on(
        drop, harness, tmp_path):
    outside = tmp_path / "secret-births.csv"
    outside.write_text(HEADER + row("MPI-OUTSIDE"))
    (drop / "linked.csv").symlink_to(outside)
    (drop / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    (drop / "later.csv").write_text(HEADER + row("MPI-LATER"))
    source = harness.connector(config(drop))
    source.start()
    source.run_until_idle()
    assert [e["subject_id"] for e in harness.events("birth")] == ["MPI-LATER"]
    for name in ("linked.csv", "dangling.csv"):
        assert (drop / "failed" / name).is_symlink()          # the link moved, not followed
        result = report(drop / "failed", name)
        assert result["error"].startswith("a symbolic link: links are never followed")
        assert result["sha256"] is None and result["rows"] == 0   # its target never read
    assert outside.read_text() == HEADER + row("MPI-OUTSIDE")
    assert (drop / "done" / "later.csv").exists()


def test_a_link_among_claimed_files_is_not_followed_on_restart(drop, harness, tmp_path):
    outside = tmp_path / "secret-births.csv"
    outside.write_text(HEADER + row("MPI-OUTSIDE"))
    source = harness.connector(config(drop))
    source.start()
    # A file claimed by an earlier run, replaced by a link before this one resumes it.
    (drop / ".processing" / "claimed.csv").symlink_to(outside)
    restarted = harness.connector(config(drop))
    restarted.start()
    restarted.run_until_idle()
    assert harness.events("birth") == []
    assert report(drop / "failed", "claimed.csv")["error"].startswith("a symbolic link")


def test_a_folder_of_the_drop_replaced_by_a_link_stops_the_connector(drop, harness, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (drop / "done").symlink_to(elsewhere)
    source = harness.connector(config(drop))
    with pytest.raises(FatalConnectorError, match="done is a symbolic link"):
        source.start()


def test_dropped_files_are_opened_without_following_links(tmp_path):
    import errno

    from connectors.drop_files import open_text, sha256

    target = tmp_path / "target.csv"
    target.write_text("a,b\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    for opening in (lambda: sha256(link), lambda: open_text(link, "utf-8")):
        with pytest.raises(OSError) as raised:
            opening()
        assert raised.value.errno == errno.ELOOP
    assert sha256(target)
