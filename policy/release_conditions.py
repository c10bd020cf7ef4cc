"""Release conditions: agreements that release a record only about the recipient's own
referrals.

Two kinds of agreement carry events about one referral between two agencies, and an
agreement's parties and event types alone would release more than they should:

- a **feedback agreement** (named by referral terms' `feedback.agreement`, from the
  receiver back to the referrer) carries the receiver's `referral_status` events. A
  status is released only when its `referrer` is the recipient (it answers one of the
  recipient's own referrals, not another agency's referral to the same program) and the
  terms' `feedback` lists its status and business status;
- an agreement carrying **`handoff_overdue`** (from the broker) releases an alert only
  to the referral's parties: its `referrer` or its `receiver` is the recipient.

The engine checks the condition of the agreement in force for each event, before
consent; a record that fails is denied whole with its reason code (`not_a_party`,
`feedback`), and the decision is audited like any other. Pure: the bundle decides, the
ledger is not consulted (a status carries its referrer, an alert both parties).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy.bundle import PolicyBundle
from policy.decision import ReasonCode
from policy.model import Agreement
from policy.referral_terms import FeedbackTerms
from policy.vocabulary import BROKER_EVENT_TYPES

STATUS_EVENT = "referral_status"


@dataclass(frozen=True)
class ReleaseCondition:
    """What one record must say for an agreement to release it to its recipient."""

    agreement_id: str
    party_fields: tuple[str, ...]
    """Fields of the record one of which must name the recipient agency."""
    feedback: FeedbackTerms | None = None
    """For a feedback agreement: which statuses flow back."""
    terms_ids: tuple[str, ...] = ()
    """The referral terms whose feedback this is (for reasons)."""

    def refusal(self, record: Mapping[str, Any], recipient: str
                ) -> tuple[ReasonCode, str] | None:
        """None when the record may be released; else the code and reason to deny it.
        Reasons name fields, statuses and agency ids, never a record's other values."""
        if not any(record.get(f) == recipient for f in self.party_fields):
            named = " or ".join(self.party_fields)
            return (ReasonCode.NOT_A_PARTY,
                    f"agreement {self.agreement_id} releases only records whose {named} is "
                    f"{recipient}: this one is about a referral {recipient} is not a party to")
        if self.feedback is not None:
            status = str(record.get("status"))
            business = record.get("business_status")
            if not self.feedback.allows(status, str(business) if business else None):
                what = f"{status} with {business}" if business else status
                return (ReasonCode.FEEDBACK,
                        f"the feedback terms of referral terms {', '.join(self.terms_ids)} "
                        f"(referrals.yaml) do not send {what} back to the referrer")
        return None


def release_condition(bundle: PolicyBundle, agreement: Agreement, event_type: str
                      ) -> ReleaseCondition | None:
    """The condition `agreement` puts on releasing `event_type` records, if any."""
    if event_type in BROKER_EVENT_TYPES:
        return ReleaseCondition(agreement.id, ("referrer", "receiver"))
    if event_type != STATUS_EVENT:
        return None
    terms = sorted((t for t in bundle.referrals.values()
                    if t.feedback is not None and t.feedback.agreement == agreement.id),
                   key=lambda t: t.id)
    if not terms:
        return None
    # `policy check` refuses terms that share a feedback agreement but differ in what
    # flows back, so the first terms' feedback speaks for all of them.
    assert terms[0].feedback is not None
    return ReleaseCondition(agreement.id, ("referrer",), terms[0].feedback,
                            tuple(t.id for t in terms))
