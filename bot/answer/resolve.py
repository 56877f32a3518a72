"""Resolve follow-up questions against the conversation before retrieval.

"who can enroll in it?" after "tell me about CT071" becomes "who can enroll in it? CT071";
"what about the second one?" after "what happened to patient 1?" becomes
"what happened to patient 2?". Plain rules over the entities this corpus names: cheap,
predictable, and they never invent a topic the person did not raise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.safety.screen import has_control_chars

_NUM = {"one": "1", "first": "1", "1st": "1", "two": "2", "second": "2", "2nd": "2"}
_ENTITY = re.compile(
    r"\b(?:NCT\d{8}|CT0?596|CT0?71|patient\s*(?:#\s*)?(?:1|2|one|two)|pPCL|sPCL|BCMA|GPRC5D|NKG2A|CRS|MRD|"
    r"tocilizumab|Carsgen|tandem\s+transplants?|allo-?CAR-?T|the\s+author|author|writer|wrote|Kleutghen|GvHD|"
    r"graft-versus-host\s+disease)\b",
    re.IGNORECASE,
)
_REFERS_BACK = re.compile(
    r"\b(it|its|it's|this|that|these|those|they|them|their|he|she|his|her|the\s+(?:trial|study|product|drug|"
    r"treatment|therapy|company|patient|other|first|second|former|latter)|(?:first|second|other)\s+one)\b",
    re.IGNORECASE,
)
_PRONOUN = re.compile(r"\b(it|its|it's|they|them|he|she|his|her|him)\b", re.IGNORECASE)
_ELLIPSIS = re.compile(
    r"^\s*(?:and|what\s+about|how\s+about|what\s+of|same\s+for|and\s+for)\b\s*(.*)$", re.IGNORECASE
)
_ORDINAL = re.compile(
    r"\b(?:the\s+)?(first|second|1st|2nd|other|former|latter)(?:\s+(?:one|patient|trial|study))?\b",
    re.IGNORECASE,
)
_TRIALS = ("NCT06333509", "NCT05838131")
# "and for secondary?" after a question on primary PCL swaps the one word for the other.
_CONTRASTS = (
    ("primary", "secondary"),
    ("pPCL", "sPCL"),
    ("autologous", "allogeneic"),
    ("auto", "allo"),
    ("inclusion", "exclusion"),
    ("single", "tandem"),
)


def entities(text: str) -> list[str]:
    """Entities in order of appearance, normalised (patient two -> Patient 2)."""
    out = []
    for m in _ENTITY.finditer(text):
        e = m.group(0)
        p = re.match(r"patient\s*(?:#\s*)?(\w+)", e, re.IGNORECASE)
        if p:
            e = f"Patient {_NUM.get(p.group(1).lower(), p.group(1))}"
        elif e.upper().startswith("CT0") or e.upper().startswith("CT5") or e.upper().startswith("CT7"):
            e = "CT0596" if "59" in e else "CT071"
        elif e.lower() in ("author", "the author", "writer", "wrote", "kleutghen"):
            e = "the author"
        out.append(e)
    return out


def _ordinal_target(word: str, previous: str) -> str | None:
    word = word.lower()
    if previous.startswith("Patient "):
        if word in ("second", "2nd", "latter"):
            return "Patient 2"
        if word in ("first", "1st", "former"):
            return "Patient 1"
        if word == "other":
            return "Patient 1" if previous.endswith("2") else "Patient 2"
    if previous in _TRIALS and word in ("other", "second", "2nd"):
        return _TRIALS[1 - _TRIALS.index(previous)]
    return None


def _swap_contrast(rest: str, previous: str) -> str | None:
    """The previous question with its contrasting word replaced by the one asked about now."""
    for a, b in _CONTRASTS:
        for new, old in ((a, b), (b, a)):
            if re.search(rf"\b{new}\b", rest, re.IGNORECASE) and re.search(
                rf"\b{old}\b", previous, re.IGNORECASE
            ):
                return re.sub(rf"\b{old}\b", new, previous, count=1, flags=re.IGNORECASE)
    return None


def resolve(question: str, history: Sequence[dict] | None) -> str:
    """The question with what it refers to made explicit; unchanged when it stands alone."""
    if not history or not isinstance(history, list | tuple):
        return question
    # Only well-formed user turns count: API callers can send anything as history.
    previous_questions = [
        t["content"]
        for t in history
        if isinstance(t, dict)
        and t.get("role") == "user"
        and isinstance(t.get("content"), str)
        and not has_control_chars(t["content"])
    ][-3:]
    if not previous_questions:
        return question
    prev_q = previous_questions[-1]
    prev_entities = [e for q in reversed(previous_questions) for e in reversed(entities(q))]
    now = entities(question)
    last = prev_entities[0] if prev_entities else None

    ordinal = _ORDINAL.search(question)
    target = _ordinal_target(ordinal.group(1), last) if ordinal and last else None

    ellipsis = _ELLIPSIS.match(question)
    if ellipsis and not now and not target:
        swapped = _swap_contrast(ellipsis.group(1), prev_q)
        if swapped:
            return swapped
    if ellipsis and (now or target):
        new = now[0] if now else target
        old = entities(prev_q)
        if old:
            return re.sub(
                re.escape(old[0]) if not old[0].startswith("Patient") else r"patient\s*(?:#\s*)?\w+",
                new,
                prev_q,
                count=1,
                flags=re.IGNORECASE,
            )
        return f"{prev_q} {new}"
    pronoun = _PRONOUN.search(question)
    if now:
        # "could it happen with CT0596?" after "What is GvHD?": "it" is still the earlier topic.
        if pronoun and last and last not in now and not ellipsis:
            return f"{question} {last}"
        return question
    if target:
        if ellipsis:
            return f"{prev_q} {target}"
        return f"{question} {target}"
    bare = len(question.split()) <= 3 and not re.search(r"\b[a-z]?[A-Z]{2,}", question)
    if last and (_REFERS_BACK.search(question) or ellipsis or bare):
        return f"{question} {last}"
    return question


class Resolve:
    """Resolve stage: the question with what it refers to made explicit."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, q) -> None:
        q.resolved = resolve(q.cleaned, list(q.history)) if self.enabled else q.cleaned
