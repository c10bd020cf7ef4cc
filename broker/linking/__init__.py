"""Record linkage in the broker: each event's subjects resolved to Handoff person ids
before policy runs, clerical review, birth match, and the accounting of disclosures by
person.

The matching itself is the pure `linkage` library; this package wires it in:

- `Linker` (router process, the single writer of the person index) resolves the
  subjects the bundle's `linkage.yaml` names for an event type and audits each link;
- `PersonConsents` matches consents for a person over every agency record linked to it;
- `WatchListFeed` keeps child welfare's restricted list and checks births against it;
- `LinkageJournal` mirrors the index's decisions to the `_linkage` topic on Kafka and
  restores the index from it;
- `LinkageService` is what the API, the console and the referral ledger call: open
  reviews, clerical decisions, `person_of(agency, agency_id)`, the accounting of
  disclosures for a person.
"""
