"""Reading a FHIR R4 Bundle: resolving references between its entries, and picking the
element a person would mean (the current name, the home address) among several.

References resolve as FHIR says they do inside a Bundle: by an entry's `fullUrl`
(`urn:uuid:…` or an absolute URL), or by `Type/id` relative to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Problem = tuple[str, str, str]
"""(resource, element, message): `("Observation/bw", "valueQuantity", "...")`."""

Resource = Mapping[str, Any]

_NAME_ORDER = {"official": 0, "usual": 1, None: 2, "nickname": 3, "temp": 4}
_ADDRESS_ORDER = {"home": 0, None: 1, "temp": 2, "work": 3}
"""Name and address `use`, most to least preferred; others (old, maiden, anonymous,
billing) are never chosen, nor is one whose `period` has ended."""


class BundleTooLarge(ValueError):
    """The bundle holds more entries than a source accepts."""

    def __init__(self, entries: int, limit: int) -> None:
        self.entries, self.limit = entries, limit
        super().__init__(f"the bundle holds {entries} entries (nested bundles included); "
                         f"the limit is {limit}")


def check_entry_count(doc: Any, limit: int) -> None:
    """Refuse a bundle of more than `limit` entries, counting those of bundles nested in
    its entries, before anything looks at what the entries hold."""
    count, pending = 0, [doc]
    while pending:
        node = pending.pop()
        entries = node.get("entry") if isinstance(node, Mapping) else None
        if not isinstance(entries, list):
            continue
        count += len(entries)
        if count > limit:
            raise BundleTooLarge(count, limit)
        for entry in entries:
            inner = entry.get("resource") if isinstance(entry, Mapping) else None
            if isinstance(inner, Mapping) and inner.get("resourceType") == "Bundle":
                pending.append(inner)


def label(resource: Resource | None) -> str:
    """`Patient/newborn-1`: how problems name a resource."""
    resource = resource or {}
    return f"{resource.get('resourceType')}/{resource.get('id', '?')}"


class BundleIndex:
    """The resources of one Bundle, found by type and by reference."""

    def __init__(self, bundle: Mapping[str, Any]) -> None:
        self.resources: list[Resource] = []
        self._by_key: dict[str, Resource] = {}
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if not isinstance(resource, Mapping):
                continue
            self.resources.append(resource)
            full_url = str(entry.get("fullUrl") or "")
            relative = f"{resource.get('resourceType')}/{resource.get('id')}"
            for key in (full_url, relative if resource.get("id") else ""):
                if key:
                    self._by_key.setdefault(key, resource)

    def of_type(self, kind: str) -> Iterator[Resource]:
        return (r for r in self.resources if r.get("resourceType") == kind)

    def get(self, reference: Mapping[str, Any] | None) -> Resource | None:
        """The entry a `Reference` points at, or None when it is not in the bundle."""
        ref = str((reference or {}).get("reference") or "")
        if not ref:
            return None
        found = self._by_key.get(ref)
        if found is None and "/" in ref:
            # An absolute URL whose tail is Type/id ("http://x/fhir/Patient/p1").
            parts = ref.rstrip("/").split("/")
            if len(parts) >= 2:
                found = self._by_key.get(f"{parts[-2]}/{parts[-1]}")
        return found

    def refers_to(self, reference: Mapping[str, Any] | None, resource: Resource) -> bool:
        return self.get(reference) is resource


# -- codes and profiles -----------------------------------------------------------------


def codings(concept: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(system, code) of each coding of a CodeableConcept."""
    return [(str(c.get("system") or ""), str(c.get("code") or ""))
            for c in (concept or {}).get("coding") or [] if isinstance(c, Mapping)]


def has_code(concept: Mapping[str, Any] | None, system: str, *codes: str) -> bool:
    return any(s == system and c in codes for s, c in codings(concept))


def has_profile(resource: Resource, profile_id: str) -> bool:
    """True when `meta.profile` claims the StructureDefinition `profile_id` of any IG
    (`…/StructureDefinition/Encounter-birth`, with or without `|version`)."""
    for url in (resource.get("meta") or {}).get("profile") or []:
        if str(url).split("|")[0].rstrip("/").endswith(f"/StructureDefinition/{profile_id}"):
            return True
    return False


def extension(element: Mapping[str, Any] | None, url_tail: str) -> Mapping[str, Any] | None:
    """The first extension whose URL ends with `url_tail`."""
    for ext in (element or {}).get("extension") or []:
        if isinstance(ext, Mapping) and str(ext.get("url") or "").endswith(url_tail):
            return ext
    return None


def extension_value(ext: Mapping[str, Any] | None) -> Any:
    for key, value in (ext or {}).items():
        if key.startswith("value"):
            return value
    return None


# -- the element a person means ---------------------------------------------------------


def _current(element: Mapping[str, Any]) -> bool:
    return not (element.get("period") or {}).get("end")


def _preferred(elements: Any, order: Mapping[str | None, int]) -> Mapping[str, Any] | None:
    found = [e for e in elements or [] if isinstance(e, Mapping)
             and e.get("use") in order and _current(e)]
    return min(found, key=lambda e: order[e.get("use")], default=None)


def person_name(resource: Resource | None) -> tuple[str | None, str | None]:
    """(first given name, family name) of the current official or usual name."""
    name = _preferred((resource or {}).get("name"), _NAME_ORDER) or {}
    given = [g for g in name.get("given") or [] if g]
    return (given[0] if given else None), name.get("family") or None


def home_address(resource: Resource | None) -> Mapping[str, Any]:
    """The current home address (never a billing or old one), or `{}`."""
    return _preferred((resource or {}).get("address"), _ADDRESS_ORDER) or {}


def phone(resource: Resource | None) -> str | None:
    numbers = [t for t in (resource or {}).get("telecom") or []
               if isinstance(t, Mapping) and t.get("system") == "phone" and t.get("value")
               and t.get("use") != "old" and _current(t)]
    numbers.sort(key=lambda t: {"mobile": 0, "home": 1}.get(str(t.get("use")), 2))
    return str(numbers[0]["value"]) if numbers else None
