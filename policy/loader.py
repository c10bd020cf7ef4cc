"""Loading a policy bundle folder: parse every file, check everything, report all at once.

Layout of a bundle folder:

    agencies.yaml            agencies: [...]
    agreements/*.yaml        agreements: [...]   (one or more per file)
    rulepacks/*.yaml         optional: replaces the shipped pack of the same regime, or
                             adds a state pack
    subscriptions.yaml       subscriptions: [...]
    referrals.yaml           optional: referrals: [...]   referral terms (service levels,
                             feedback) of referral agreements; see policy.referral_terms
    calendars.yaml           optional: calendars: [...]   business calendars they count in
    linkage.yaml             optional: record linkage (who each event type is about and
                             which fields identify them), birth match, CLK agreements;
                             see policy.linkage_terms

The shipped packs (hipaa, ferpa, cfr42_part2, capta) live in `policy/rulepacks/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from policy.bundle import PolicyBundle
from policy.bundle_checks import BundleChecker, Located
from policy.errors import BundleError, Problem
from policy.linkage_checks import LinkageChecker
from policy.linkage_terms import LinkageTerms
from policy.model import Agency, Agreement, RulePack, Subscription
from policy.referral_checks import ReferralChecker
from policy.referral_terms import BusinessCalendar, ReferralTerms
from policy.yamlsource import read_yaml, validation_problems
from schemas.catalog import SchemaCatalog

DEFAULT_RULEPACKS = Path(__file__).parent / "rulepacks"
DEFAULT_PREFIX = "<default>/rulepacks"

EntryT = TypeVar("EntryT", bound=BaseModel)


def load_bundle(directory: Path | str, catalog: SchemaCatalog) -> PolicyBundle:
    """Load and check every file of a bundle folder.

    Raises `BundleError` whose `problems` list every error found, each with the file
    (relative to the folder), line and field. Warnings (for example a subscription whose
    purpose no agreement serves) are kept in `bundle.warnings`.
    """
    root = Path(directory)
    if not root.is_dir():
        raise BundleError([Problem(str(directory), None, "", "not a folder")])
    problems: list[Problem] = []

    agencies = _entries(root / "agencies.yaml", "agencies.yaml", "agencies", Agency,
                        problems, required=True)
    agreements: list[Located[Agreement]] = []
    for path in sorted((root / "agreements").glob("*.yaml")):
        agreements += _entries(path, f"agreements/{path.name}", "agreements", Agreement,
                               problems, required=True)
    subscriptions = _entries(root / "subscriptions.yaml", "subscriptions.yaml",
                             "subscriptions", Subscription, problems, required=False)
    packs = _rulepacks(root, problems)
    calendars = _entries(root / "calendars.yaml", "calendars.yaml", "calendars",
                         BusinessCalendar, problems, required=False)
    referrals = _entries(root / "referrals.yaml", "referrals.yaml", "referrals",
                         ReferralTerms, problems, required=False)

    linkage = _linkage(root / "linkage.yaml", problems)

    checker = BundleChecker(catalog, agencies, agreements, packs, subscriptions)
    problems += checker.run()
    problems += ReferralChecker(catalog, agencies, agreements, calendars, referrals).run()
    problems += LinkageChecker(catalog, agencies, agreements, subscriptions, linkage,
                               terms_unreadable=linkage is None
                               and (root / "linkage.yaml").exists()).run()
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise BundleError(sorted(errors, key=_order))
    return PolicyBundle(
        agencies={a.entry.id: a.entry for a in agencies},
        agreements={a.entry.id: a.entry for a in agreements},
        rulepacks={regime: p.entry for regime, p in sorted(packs.items())},
        subscriptions={s.entry.id: s.entry for s in subscriptions},
        warnings=tuple(sorted((p for p in problems if p.severity == "warning"), key=_order)),
        calendars={c.entry.id: c.entry for c in calendars},
        referrals={r.entry.id: r.entry for r in referrals},
        linkage=linkage.entry if linkage is not None else None,
    )


def _order(problem: Problem) -> tuple[str, int, str]:
    return (problem.file, problem.line or 0, problem.location)


def _entries(
    path: Path, name: str, key: str, model: type[EntryT], problems: list[Problem],
    *, required: bool,
) -> list[Located[EntryT]]:
    """Parse a file holding `key: [entries]`; validate each entry on its own so one bad
    entry does not hide the problems of the others."""
    if not path.exists():
        if required:
            problems.append(Problem(name, None, "", "file is missing"))
        return []
    doc, read_problems = read_yaml(path, name)
    problems += read_problems
    if doc is None:
        return []
    data = doc.data
    if data is None:
        return []
    if not isinstance(data, CommentedMap) or set(data) != {key}:
        problems.append(doc.problem((), f"expected a mapping with one key, '{key}:', "
                                        "holding a list"))
        return []
    items = data[key]
    if items is None:
        return []
    if not isinstance(items, CommentedSeq):
        problems.append(doc.problem((key,), "must be a list of entries"))
        return []
    found: list[Located[EntryT]] = []
    for index, item in enumerate(items):
        try:
            entry = model.model_validate(item)
        except ValidationError as exc:
            problems += validation_problems(doc, exc, prefix=(key, index))
            continue
        found.append(Located(entry, doc, (key, index)))
    return found


def _linkage(path: Path, problems: list[Problem]) -> Located[LinkageTerms] | None:
    """`linkage.yaml`: one mapping (not a list of entries); absent means no linkage."""
    if not path.exists():
        return None
    doc, read_problems = read_yaml(path, path.name)
    problems += read_problems
    if doc is None or doc.data is None:
        return None
    if not isinstance(doc.data, CommentedMap):
        problems.append(doc.problem((), "expected a mapping (thresholds, event_types, "
                                        "birth_match, clk_agreements)"))
        return None
    try:
        terms = LinkageTerms.model_validate(doc.data)
    except ValidationError as exc:
        problems += validation_problems(doc, exc, entry_depth=0)
        return None
    return Located(terms, doc, ())


def _rulepacks(root: Path, problems: list[Problem]) -> dict[str, Located[RulePack]]:
    """The effective packs: shipped defaults, each replaced by a bundle file of the same
    regime name; other bundle files add (state) packs."""
    packs: dict[str, Located[RulePack]] = {}
    sources = [(p, f"{DEFAULT_PREFIX}/{p.name}") for p in sorted(DEFAULT_RULEPACKS.glob("*.yaml"))]
    sources += [(p, f"rulepacks/{p.name}") for p in sorted((root / "rulepacks").glob("*.yaml"))]
    for path, name in sources:
        pack = _rulepack(path, name, problems)
        if pack is not None:
            packs[path.stem] = pack
        else:
            # A broken replacement must not silently fall back to the shipped default.
            packs.pop(path.stem, None)
    return packs


def _rulepack(path: Path, name: str, problems: list[Problem]) -> Located[RulePack] | None:
    doc, read_problems = read_yaml(path, name)
    problems += read_problems
    if doc is None:
        return None
    try:
        pack = RulePack.model_validate(doc.data)
    except ValidationError as exc:
        problems += validation_problems(doc, exc)
        return None
    if pack.regime != path.stem:
        problems.append(doc.problem(("regime",), f"regime '{pack.regime}' does not match the "
                                                  f"file name '{path.name}'"))
        return None
    return Located(pack, doc, ())
