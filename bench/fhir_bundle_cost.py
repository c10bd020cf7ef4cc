"""CPU a FHIR bundle costs the FHIR source before anything is published, by entry count.

For bundles of empty entries, of lean Observations, and of the BFDR Baby G Quinn birth
report's entries repeated, each as many as fit under the body cap (`api.max_body_bytes`,
1 MiB: nothing bigger reaches the source), prints the CPU milliseconds of what
`receive_bundle` does before publishing: JSON parsing, the entry cap
(`fhir.max_bundle_entries`), validation with `fhir.resources` and mapping; with the
default cap of 1,000 entries and without one. Best of several rounds;
CPU time (`process_time`), which other processes on the machine disturb less than
wall time.

    python bench/fhir_bundle_cost.py [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from connectors.fhir_mapping import (
    BundleTooLarge,
    FhirMappingError,
    MappingDefaults,
    check_entry_count,
    map_bundle,
)
from connectors.fhir_source import InvalidBundle, validate_bundle

BFDR = (Path(__file__).parents[1] / "tests" / "fixtures" / "fhir" / "bfdr"
        / "Bundle-bundle-provider-live-birth-babyg-quinn.json")
OBSERVATION = {"resource": {
    "resourceType": "Observation", "id": "bw", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8339-4"}]},
    "subject": {"reference": "Patient/p"}, "valueQuantity": {"value": 3000, "code": "g"}}}


def bundle_of(kind: str, entries: int) -> bytes:
    if kind == "empty":
        items: list[Any] = [{}] * entries
    elif kind == "observation":
        items = [OBSERVATION] * entries
    else:
        report = json.loads(BFDR.read_text(encoding="utf-8"))["entry"]
        items = [report[i % len(report)] for i in range(entries)]
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": items}).encode()


def cost(body: bytes, limit: int) -> tuple[float, str]:
    started = time.process_time()
    outcome = "mapped"
    try:
        doc = json.loads(body)
        check_entry_count(doc, limit)
        map_bundle(validate_bundle(doc), MappingDefaults("bench"))
    except BundleTooLarge:
        outcome = "413 (cap)"
    except (InvalidBundle, FhirMappingError):
        outcome = "422"
    return time.process_time() - started, outcome


def fitting(kind: str, cap_bytes: int) -> int:
    """The most entries of `kind` whose bundle fits under the body cap."""
    low, high = 1, 400_000
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(bundle_of(kind, middle)) <= cap_bytes \
            else (low, middle - 1)
    return low


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--body-cap", type=int, default=1_048_576,
                        help="api.max_body_bytes: no bigger body reaches the source")
    args = parser.parse_args()
    print(f"{'entries':>8} {'kind':<12} {'body KiB':>9} {'entry cap':>10} {'CPU ms':>9}"
          "  outcome")
    for kind in ("empty", "observation", "bfdr"):
        largest = fitting(kind, args.body_cap)
        for entries in sorted({64, 1000, largest}):
            if entries > largest:
                continue
            body = bundle_of(kind, entries)
            for limit in (1000, None):
                if limit is None and entries <= 1000:
                    continue
                best, outcome = min(cost(body, limit or 10**9) for _ in range(args.rounds))
                print(f"{entries:>8} {kind:<12} {len(body) / 1024:>9.0f} "
                      f"{limit or 'none':>10} {best * 1000:>9.1f}  {outcome}")


if __name__ == "__main__":
    main()
