"""Resolve stage: make a follow-up stand on its own before retrieval.

"who can enroll in it?" after "tell me about CT071" becomes "who can enroll in it? CT071";
"what about the second one?" after "what happened to patient 1?" becomes "what happened to
patient 2?"; "and for secondary?" after a question on primary PCL swaps the one for the other.

Nothing here names this corpus's topics. What counts as a topic comes from the corpus itself
(`Vocabulary.from_corpus`): codes and rare terms of the sources, the article's author, the trial
records' numbers, and pairs of contrasting words read off the glossary's headings ("Primary PCL
(pPCL) and secondary PCL (sPCL)"). The rules only decide when a question leans on the one
before: a pronoun, "what about", an ordinal, or too few words of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bot.query import Query
from bot.retrieval.lexicon import FRAME_WORDS
from bot.retrieval.search import STOPWORDS, identifiers

_NUM = {"one": "1", "first": "1", "1st": "1", "two": "2", "second": "2", "2nd": "2", "other": ""}
_PATIENT = re.compile(r"\bpatient\s*(?:#\s*)?(\d+|one|two|first|second)\b", re.IGNORECASE)
_REFERS_BACK = re.compile(
    r"\b(it|its|it's|this|that|these|those|they|them|their|he|she|his|her|him|the\s+(?:trial|study|"
    r"product|drug|treatment|therapy|company|patient|other|first|second|former|latter|author|writer)|"
    r"(?:first|second|other)\s+one)\b",
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
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9-]+")
_ABBREVIATION = re.compile(r"\(([^)]{2,10})\)")
_AUTHOR_WORDS = ("author", "writer", "wrote")
_PROPER_NOUN = re.compile(r"(?<=[a-z,] )([A-Z][a-z]+[A-Za-z]*)\b")


@dataclass(frozen=True)
class Vocabulary:
    """What can be a topic of a conversation, read from the corpus."""

    terms: frozenset[str] = frozenset()  # lower-case rare words and codes of the sources
    authors: tuple[str, ...] = ()  # article authors' names
    records: tuple[str, ...] = ()  # trial record ids, in corpus order
    contrasts: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def from_corpus(cls, docs: Iterable, rare: frozenset[str]) -> Vocabulary:
        """`rare`: words found in few passages; names written with a capital inside a sentence
        (Carsgen, Durham) count too; contrasting words (primary, secondary) are swapped, not
        topics of their own."""
        docs = list(docs)
        authors, records, contrasts = [], [], []
        names = {m.group(1).lower() for d in docs for m in _PROPER_NOUN.finditer(d.page_content)}
        for d in docs:
            md = d.metadata
            if md.get("author") and md["author"] not in authors:
                authors.append(md["author"])
            if md.get("kind") == "trial" and md["source_id"] not in records:
                records.append(md["source_id"])
            if md.get("kind") == "glossary":
                contrasts += _contrasts_in(md.get("section", ""))
        swapped = {w.lower() for pair in contrasts for w in pair}
        terms = frozenset((set(rare) | names) - swapped - STOPWORDS - FRAME_WORDS)
        return cls(terms, tuple(authors), tuple(records), tuple(dict.fromkeys(contrasts)))


def _contrasts_in(heading: str) -> list[tuple[str, str]]:
    """'Primary PCL (pPCL) and secondary PCL (sPCL)' -> (primary, secondary), (pPCL, sPCL)."""
    heading = heading.split(":")[-1]
    if " and " not in heading:
        return []
    left, right = heading.split(" and ", 1)
    pairs = []
    lw, rw = _WORD.findall(_ABBREVIATION.sub("", left)), _WORD.findall(_ABBREVIATION.sub("", right))
    if lw and rw and lw[0].lower() != rw[0].lower() and not {lw[0].lower(), rw[0].lower()} & STOPWORDS:
        pairs.append((lw[0].lower(), rw[0].lower()))
    la, ra = _ABBREVIATION.findall(left), _ABBREVIATION.findall(right)
    if la and ra and la[0] != ra[0]:
        pairs.append((la[0], ra[0]))
    return pairs


class Resolve:
    def __init__(self, enabled: bool, vocabulary: Vocabulary) -> None:
        self.enabled = enabled
        self.vocabulary = vocabulary

    def __call__(self, q: Query) -> None:
        q.resolved = resolve(q.cleaned, q.user_turns, self.vocabulary) if self.enabled else q.cleaned
        # "Is it approved?" with nothing earlier to refer to: ask, rather than guess what "it" is.
        q.extra["unclear"] = bool(
            self.enabled
            and not q.user_turns
            and _PRONOUN.search(q.cleaned)
            and not entities(q.cleaned, self.vocabulary)
            and len(q.cleaned.split()) <= 8
        )


def entities(text: str, v: Vocabulary) -> list[str]:
    """The topics a text names, in order of appearance, normalised (patient two -> Patient 2)."""
    found: list[tuple[int, str]] = []
    for m in _PATIENT.finditer(text):
        n = _NUM.get(m.group(1).lower(), m.group(1))
        if n:
            found.append((m.start(), f"Patient {n}"))
    codes = identifiers(text)
    taken = [(m.start(), m.end()) for m in _PATIENT.finditer(text)]
    for m in _WORD.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        word = m.group(0)
        low = word.lower()
        if low in _AUTHOR_WORDS or any(low in a.lower().split() for a in v.authors):
            found.append((m.start(), "the author"))
        elif low in codes and not low.startswith("patient"):
            found.append((m.start(), word.upper() if low.startswith("nct") else word))
        elif low in v.terms and low not in STOPWORDS:
            found.append((m.start(), word))
    return [e for _, e in sorted(found)]


def _ordinal_target(word: str, previous: str, v: Vocabulary) -> str | None:
    word = word.lower()
    if previous.startswith("Patient "):
        if word in ("second", "2nd", "latter"):
            return "Patient 2"
        if word in ("first", "1st", "former"):
            return "Patient 1"
        if word == "other":
            return "Patient 1" if previous.endswith("2") else "Patient 2"
    if previous.upper() in v.records and word in ("other", "second", "2nd") and len(v.records) == 2:
        return v.records[1 - v.records.index(previous.upper())]
    return None


def _swap_contrast(rest: str, previous: str, v: Vocabulary) -> str | None:
    """The previous question with its contrasting word replaced by the one asked about now."""
    for a, b in v.contrasts:
        for new, old in ((a, b), (b, a)):
            if re.search(rf"\b{re.escape(new)}\b", rest, re.IGNORECASE) and re.search(
                rf"\b{re.escape(old)}\b", previous, re.IGNORECASE
            ):
                return re.sub(rf"\b{re.escape(old)}\b", new, previous, count=1, flags=re.IGNORECASE)
    return None


def resolve(question: str, user_turns: Sequence[str], v: Vocabulary) -> str:
    """The question with what it refers to made explicit; unchanged when it stands alone."""
    previous_questions = list(user_turns)[-3:]
    if not previous_questions:
        return question
    prev_q = previous_questions[-1]
    prev_entities = [e for q in reversed(previous_questions) for e in reversed(entities(q, v))]
    now = entities(question, v)
    last = prev_entities[0] if prev_entities else None

    ordinal = _ORDINAL.search(question)
    target = _ordinal_target(ordinal.group(1), last, v) if ordinal and last else None

    ellipsis = _ELLIPSIS.match(question)
    if ellipsis and not now and not target:
        swapped = _swap_contrast(ellipsis.group(1), prev_q, v)
        if swapped:
            return swapped
    if ellipsis and (now or target):
        new = now[0] if now else target
        old = entities(prev_q, v)
        if old:
            pattern = re.escape(old[0]) if not old[0].startswith("Patient") else r"patient\s*(?:#\s*)?\w+"
            return re.sub(pattern, new, prev_q, count=1, flags=re.IGNORECASE)
        return f"{prev_q} {new}"
    pronoun = _PRONOUN.search(question)
    if now:
        # "could it happen with CT0596?" after "What is GvHD?": "it" is still the earlier topic.
        if pronoun and last and last not in now and not ellipsis:
            return f"{question} {last}"
        return question
    if target:
        return f"{prev_q} {target}" if ellipsis else f"{question} {target}"
    bare = len(question.split()) <= 3 and not re.search(r"\b[a-z]?[A-Z]{2,}", question)
    if last and (_REFERS_BACK.search(question) or ellipsis or bare):
        return _substituted(question, last) or f"{question} {last}"
    return question


# A lone object or subject pronoun that can stand for a product, trial or record ("who can join
# it?", "is it approved?"): replaced in place, so the question reads as if typed in full.
_THING_PRONOUN = re.compile(r"\b(it|its|it's)\b", re.IGNORECASE)


def _substituted(question: str, referent: str) -> str | None:
    """The question with its one thing-pronoun replaced by the referent, or None."""
    if (
        referent.startswith("Patient")
        or referent == "the author"
        or len(_THING_PRONOUN.findall(question)) != 1
    ):
        return None
    m = _THING_PRONOUN.search(question)
    word = m.group(1).lower()
    replacement = f"{referent}'s" if word == "its" else f"{referent} is" if word == "it's" else referent
    return question[: m.start()] + replacement + question[m.end() :]
