"""The safety policy: risk categories, their order of precedence, and the reply kind of each.

One message can carry several risks; the first in `PRECEDENCE` wins. The four emergency
categories all get kind `emergency` and say which one in `reason` (the JSON contract).
"""

from __future__ import annotations

SELF_HARM = "self_harm"
HARM_TO_OTHERS = "harm_to_others"
POISONING = "poisoning"
SYMPTOMS = "symptoms"
DECISION = "decision"
SUPPORT = "support"
NONE = "none"

# Highest first: a message that is both self-harm and a decision is answered as self-harm.
PRECEDENCE = (SELF_HARM, HARM_TO_OTHERS, POISONING, SYMPTOMS, DECISION, SUPPORT, NONE)
RISKS = PRECEDENCE[:-1]
EMERGENCIES = (SELF_HARM, HARM_TO_OTHERS, POISONING, SYMPTOMS)
# Risks said in an earlier turn that keep their reply in the follow-ups.
CARRIED = EMERGENCIES

# category -> (reply kind, reason)
REPLY_KIND = {
    SELF_HARM: ("emergency", "self_harm"),
    HARM_TO_OTHERS: ("emergency", "harm_to_others"),
    POISONING: ("emergency", "poisoning"),
    SYMPTOMS: ("emergency", "symptoms"),
    DECISION: ("medical_advice", "personal"),
    SUPPORT: ("support", "distress"),
}


def first(categories: set[str] | frozenset[str]) -> str:
    """The category that decides the reply when several apply."""
    return next((c for c in PRECEDENCE if c in categories), NONE)
