"""The demo's families are distinct people: record linkage compares addresses, so two
mothers at one address would read as one household to a reader and a matcher alike."""

from __future__ import annotations

from datetime import UTC, datetime

from broker.demo.story import LATER, STORY, Step


def test_each_demo_mother_has_her_own_street_address() -> None:
    now = datetime(2026, 11, 7, 9, tzinfo=UTC)
    homes: dict[str, set[str]] = {}
    for step in (*STORY, *LATER):
        if isinstance(step, Step) and step.event_type == "birth":
            mother = step.build(now)["mother"]
            address = mother["street_address"]
            homes.setdefault(address, set()).add(mother["first_name"] + " "
                                                 + mother["last_name"])
    assert len(homes) >= 3
    shared = {address: names for address, names in homes.items() if len(names) > 1}
    assert shared == {}
