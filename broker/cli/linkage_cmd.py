"""`handoff linkage`: retrain the matching model on the person index.

`handoff linkage retrain --data DIR` trains a new model with Splink on every record of
the index, re-scores every blocked pair with the model in use and the new one, and
reports how links would change. Nothing changes without `--apply`: it saves the new
model for the router's next start and opens a review item for each pair of different
persons the new model would link (a steward decides; nothing is re-linked silently).
`--apply` writes the person index, so the router must be stopped.

Exit codes: 0 done; 1 training failed; 2 usage errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from broker.audit.errors import AuditKeyError
from broker.audit.paths import pseudonym_key_path
from broker.audit.pseudonym import SubjectPseudonymizer, load_pseudonym_key
from broker.auditor import Auditor
from broker.bootstrap import (
    LINKAGE_MODEL_FILE,
    PERSON_INDEX_FILE,
    load_linkage_model,
    open_audit_store,
    open_event_log,
    open_person_index,
)
from broker.cli.audit_common import ConfigOption, failure, usage_error
from broker.cli.errors import exit_on_config_error
from broker.config import load_settings
from broker.linking.audit_entries import LinkageAuditor
from broker.linking.linker import review_person_of
from broker.linking.terms import RecordRef, thresholds_of
from broker.metrics import Metrics
from broker.roles import Roles, RouterAlreadyRunningError, RouterLock
from linkage.errors import LinkageError
from linkage.resolver import PersonResolver
from linkage.retrain import PairChange, RetrainProposal, apply, propose
from linkage.splink_model import TrainingOptions
from linkage.thresholds import Thresholds
from policy import load_bundle
from schemas.catalog import SchemaCatalog

MIN_TRAINING_RECORDS = 1000

app = typer.Typer(no_args_is_help=True,
                  help="Record linkage: retrain the matching model on the person index.")

DataOption = Annotated[Path, typer.Option(
    "--data", help="The data directory of the broker's router (holds linkage/persons.db).")]
PolicyOption = Annotated[Path | None, typer.Option(
    "--policy", help="Policy folder whose linkage.yaml sets the thresholds (default: "
                     "the settings' policy_dir; linkage defaults if it has none).")]


def _thresholds(policy: Path) -> Thresholds:
    if policy.is_dir():
        terms = load_bundle(policy, SchemaCatalog.load()).linkage
        if terms is not None:
            return thresholds_of(terms)
    return Thresholds.from_probabilities(0.99, 0.5)


def _pairs(title: str, changes: list[PairChange]) -> None:
    typer.echo(title)
    for change in changes:
        left, right = RecordRef.of(change.record_key), RecordRef.of(change.other_record_key)
        typer.echo(f"  {left.agency}/{left.id_system}/{left.id}  {right.agency}/"
                   f"{right.id_system}/{right.id}  {change.before} -> {change.after} "
                   f"(weight {change.new_score.match_weight:.2f})")


def _report(proposal: RetrainProposal, thresholds: Thresholds, listed: bool) -> None:
    typer.echo(f"trained on the index; {proposal.pairs_scored} blocked pairs re-scored "
               f"(link at p >= {thresholds.link_probability:.4g}, review at p >= "
               f"{thresholds.review_probability:.4g})")
    if not proposal.transitions:
        typer.echo("no pair changes outcome: the new model links exactly as the one in use")
    for before, after, pairs in proposal.transitions:
        typer.echo(f"  {before:>10} -> {after:<10} {pairs:>8} pairs")
    newly = [c for c in proposal.newly_linked if not c.same_person_now]
    typer.echo(f"pairs of different persons the new model would link: {len(newly)} "
               "(--apply opens a review item for each)")
    apart = [c for c in proposal.no_longer_linked if c.same_person_now]
    typer.echo(f"pairs of one person it would no longer link: {len(apart)} "
               "(a steward decides; nothing is unlinked automatically)")
    if listed:
        _pairs("would link (agency records):", newly)
        _pairs("would no longer link (agency records):", apart)


@app.command("retrain")
def retrain(
    data: DataOption,
    policy: PolicyOption = None,
    do_apply: Annotated[bool, typer.Option(
        "--apply", help="Use the new model from the router's next start and queue "
                        "newly linking pairs for review (stop the router first).")] = False,
    listed: Annotated[bool, typer.Option(
        "--list", help="Also list the pairs by agency record (agency ids: for a data "
                       "steward's eyes).")] = False,
    u_pairs: Annotated[float, typer.Option(
        "--u-pairs", help="Record pairs sampled to estimate u.")] = 2e6,
    config: ConfigOption = None,
) -> None:
    """Train a new model on the person index and report how links would change."""
    if not (data / PERSON_INDEX_FILE).exists():
        usage_error(f"no person index at {data / PERSON_INDEX_FILE}; is {data} the data "
                    "directory of the broker's router?")
    with exit_on_config_error():
        settings = load_settings(config, data_dir=data,
                                 policy_dir=policy or os.environ.get("HANDOFF_POLICY_DIR"))
        thresholds = _thresholds(settings.policy_dir)
    lock = None
    if do_apply and settings.log.backend == "embedded":
        try:
            lock = RouterLock(data)
        except RouterAlreadyRunningError:
            usage_error("the broker's router is running on this data directory; stop it "
                        "first: --apply writes the person index, which only one process "
                        "may write")
    event_log = open_event_log(settings)
    try:
        handle = open_person_index(settings, event_log)
        index, journal = handle.index, handle.journal
        try:
            model = load_linkage_model(data)
            records, persons = index.counts()
            typer.echo(f"person index: {records} agency records of {persons} persons")
            if records < MIN_TRAINING_RECORDS:
                typer.echo(f"warning: under {MIN_TRAINING_RECORDS} records, a trained model "
                           "is unreliable; keep the shipped one until the index grows")
            try:
                proposal = propose(index, model, thresholds,
                                   TrainingOptions(u_max_pairs=u_pairs))
            except LinkageError as exc:
                failure(f"training failed: {exc}")
            _report(proposal, thresholds, listed)
            if not do_apply:
                typer.echo("nothing changed; run again with --apply to use the new model")
                return
            try:
                key = load_pseudonym_key(pseudonym_key_path(data))
            except AuditKeyError as exc:
                usage_error(f"{exc}; is {data} the data directory of the broker's router?")
            audit = open_audit_store(settings, event_log, Roles.parse("router"))
            try:
                auditor = Auditor(audit, SubjectPseudonymizer(key), Metrics())
                opened = apply(PersonResolver(index, model, thresholds), proposal)
                entries = LinkageAuditor(auditor).entries(
                    opened, review_person=review_person_of(index), actor="linkage-retrain")
                if journal is not None:
                    journal.flush(index)
                auditor.write(entries)
            finally:
                audit.close()
            path = data / LINKAGE_MODEL_FILE
            draft = path.with_name(f".{path.name}.{os.getpid()}")
            draft.write_text(proposal.model.to_json(), encoding="utf-8")
            draft.replace(path)
            typer.echo(f"applied: {len(opened)} review item(s) opened; the router uses the "
                       f"new model ({path}) from its next start")
        finally:
            handle.close()
    finally:
        if lock is not None:
            lock.release()
        event_log.close()
