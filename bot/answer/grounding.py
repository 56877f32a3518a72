"""The grounding guard: every sentence a language model writes is checked against what it cites.

A generated sentence is kept only when all of these hold (`GroundingGuard.check`):

1. it cites at least one passage as `[n]`, and every `[n]` it cites was in the prompt;
2. it is not planted text (`bot/safety/planted.py`: speaks to an AI, orders readers about their
   treatment, asks to drop the disclaimer or citations) and not an attempt to change the rules;
3. every number, unit, name or code (drug and product names, trial IDs, all-caps terms, words
   capitalized mid-sentence, drug-like words such as "-mab") and every negation in it appears in
   the passages it cites (number words count as their digits, "percent" as "%");
4. the source sentence closest in meaning keeps its negation ("not", "no", "without"...) in the
   generated one: a sentence may not turn "was not observed" into "was observed";
5. most of its content words (`MIN_OVERLAP`, stemmed) are in the passages it cites;
6. its meaning is close to each passage it cites: cosine similarity of the sentence and the
   passage (the pipeline's all-MiniLM-L6-v2) at least `min_similarity`, calibrated on the eval
   set's dev split (`python -m evals.calibrate_grounding`; never the test split).

A kept sentence records the passage sentences that support it (the closest one, plus any that hold
words it needs): they become the citation's quote, word for word from the source.

What it cannot see: a sentence made only of the passage's words and numbers but saying something
else ("CT0596 targets NKG2A" from a passage naming both) can pass checks 3 to 6; the embedding
threshold narrows that, it does not close it (README "Answers from an LLM", limits).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import snowballstemmer

from bot.safety.planted import looks_planted

MIN_OVERLAP = 0.6  # share of a sentence's content words that the passages it cites must hold

_MARKER = re.compile(r"\[\s*(\d{1,2}(?:\s*[,;]\s*\d{1,2})*)\s*\]")
# A marker with no number: small models copy the prompt's "[n]" instead of writing a number.
_PLACEHOLDER = re.compile(r"\s*\[\s*[A-Za-z]{1,12}\s*\]")
ATTRIBUTE_FROM = 2  # an uncited sentence is tried against this many of its closest passages
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")
_QUOTES = {ord("\u2018"): "'", ord("\u2019"): "'", ord("\u201c"): '"', ord("\u201d"): '"'}
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]*|\d+(?:[.,]\d+)*")
_CODE = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*\b")  # kept when it holds a digit
_DRUG = re.compile(
    r"\b[a-z]{3,}(?:mab|nib|mib|zomib|mide|platin|rubicin|leucel|cel|phamide|abine|tinib|stat)\b", re.I
)
NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20",
    "hundred": "100", "thousand": "1000", "first": "1", "second": "2", "third": "3",
    "half": "50", "dozen": "12",
}  # fmt: skip
UNITS = {
    "%", "percent", "mg", "kg", "g", "ml", "l", "mm", "cm", "m", "months", "month", "years", "year",
    "weeks", "week", "days", "day", "hours", "hour", "patients", "patient", "people", "doses", "dose",
    "cells", "grade", "°c", "°f", "c", "f", "x",
}  # fmt: skip
NEGATIONS = {
    "not", "no", "never", "none", "neither", "nor", "without", "cannot", "can't", "don't", "doesn't",
    "didn't", "isn't", "aren't", "wasn't", "weren't", "won't", "hasn't", "haven't", "hadn't",
    "unable", "lack", "lacks", "lacking", "absence", "absent", "free",
}  # fmt: skip
STOPWORDS = set(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "so",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "their",
        "they",
        "them",
        "he",
        "she",
        "his",
        "her",
        "we",
        "our",
        "you",
        "your",
        "i",
        "me",
        "my",
        "which",
        "who",
        "whom",
        "whose",
        "what",
        "when",
        "where",
        "why",
        "how",
        "than",
        "also",
        "can",
        "could",
        "may",
        "might",
        "will",
        "would",
        "should",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "about",
        "into",
        "over",
        "under",
        "after",
        "before",
        "during",
        "such",
        "some",
        "any",
        "each",
        "other",
        "more",
        "most",
        "very",
        "just",
        "only",
        "both",
        "all",
        "many",
        "much",
        "same",
        "per",
        "via",
        "while",
    ]
)
# Words any sentence may start with in capitals without being a name.
_GENERIC_CAPS = {w.capitalize() for w in STOPWORDS | NEGATIONS} | {"In", "Yes", "According"}


def normalize(text: str) -> str:
    """Lower case, NFKC, plain quotes and dashes, single spaces, thousands commas dropped."""
    text = unicodedata.normalize("NFKC", text).translate(_DASHES).translate(_QUOTES)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return re.sub(r"\s+", " ", text).strip().lower()


@lru_cache(maxsize=1)
def _stemmer():
    return snowballstemmer.stemmer("english")


def content_stems(text: str) -> list[str]:
    words = [w.lower().strip("'-") for w in _WORD.findall(normalize(text))]
    words = [NUMBER_WORDS.get(w, w) for w in words if w and w not in STOPWORDS]
    return [_stemmer().stemWord(w) for w in words]


def parse_citations(sentence: str) -> tuple[str, tuple[int, ...]]:
    """The sentence without its `[n]` markers (and numberless ones such as a copied "[n]"), and
    the numbers it cites in order (no repeats)."""
    ns: list[int] = []
    for m in _MARKER.finditer(sentence):
        for n in re.split(r"\s*[,;]\s*", m.group(1)):
            if int(n) not in ns:
                ns.append(int(n))
    text = _PLACEHOLDER.sub("", _MARKER.sub("", sentence))
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^(?:[-*•]\s+|\d+[.)]\s+)", "", text)  # a list marker the model put in front
    return text, tuple(ns)


@dataclass(frozen=True)
class KeyTerm:
    kind: str  # number | unit | name | negation
    text: str  # as written
    forms: tuple[str, ...]  # any one found (normalized, whole word) in the passage supports it


def key_terms(text: str) -> list[KeyTerm]:
    """What a sentence must not invent: numbers, units, names and codes, negations."""
    out: list[KeyTerm] = []
    norm = normalize(text)
    digits_for = {v: k for k, v in NUMBER_WORDS.items() if k not in ("first", "second", "third")}
    for m in _NUMBER.finditer(norm):
        n = m.group(0)
        forms = (n,) + ((digits_for[n],) if n in digits_for else ())
        out.append(KeyTerm("number", n, forms))
        after = norm[m.end() :].lstrip()
        unit = re.match(r"(%|°[cf]|[a-z]+)", after)
        if unit and unit.group(1) in UNITS:
            u = unit.group(1)
            forms = {u, u.rstrip("s"), u + "s"} | ({"%", "percent"} if u in ("%", "percent") else set())
            out.append(KeyTerm("unit", u, tuple(sorted(forms))))
    for w in re.findall(r"[a-z]+", norm):
        if w in NUMBER_WORDS and w not in ("first", "second", "half"):
            out.append(KeyTerm("number", w, (w, NUMBER_WORDS[w])))
    names: set[str] = set()
    names |= {m.group(0) for m in _CODE.finditer(text) if any(c.isdigit() for c in m.group(0))}
    names |= {m.group(0) for m in _DRUG.finditer(text)}
    tokens = re.findall(r"[A-Za-z][A-Za-z0-9-]*", text)
    for i, tok in enumerate(tokens):
        if len(tok) >= 2 and (tok.isupper() or any(c.isupper() for c in tok[1:])):
            names.add(tok)  # BCMA, CRS, CARsgen
        elif tok[0].isupper() and i > 0 and tok not in _GENERIC_CAPS:
            names.add(tok)  # a proper name mid-sentence: Shanghai, Kleutghen
    for name in sorted(names):
        out.append(KeyTerm("name", name, (normalize(name),)))
    for w in re.findall(r"[a-z']+", norm):
        if w in NEGATIONS or w.endswith("n't"):
            out.append(KeyTerm("negation", w, tuple(sorted(NEGATIONS))))
            break
    return out


def _has(form: str, text: str) -> bool:
    left = r"(?<![\w.])" if form[:1].isalnum() else ""
    right = r"(?![\w])" if form[-1:].isalnum() else ""
    if form.isdigit() or re.fullmatch(r"\d+(?:\.\d+)?", form):
        right = r"(?![\d])(?!\.\d)"
    return re.search(left + re.escape(form) + right, text) is not None


def has_negation(text: str) -> bool:
    return any(w in NEGATIONS or w.endswith("n't") for w in re.findall(r"[a-z']+", normalize(text)))


@dataclass
class Passage:
    """One numbered passage of the prompt: its sentences (planted ones already removed)."""

    n: int
    sentences: tuple[str, ...]
    vector: np.ndarray  # the whole passage, normalized
    sentence_vectors: np.ndarray  # one row per sentence, normalized
    key: str = ""  # the chunk id it came from
    norm: str = field(init=False)

    def __post_init__(self) -> None:
        self.norm = normalize(" ".join(self.sentences))

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@dataclass(frozen=True)
class Verdict:
    draft: str  # the sentence as the model wrote it
    text: str  # without markers
    ns: tuple[int, ...]  # passage numbers it cites (the prompt's)
    reasons: tuple[str, ...]  # why it was dropped; empty when kept
    similarity: float = 0.0  # lowest cosine to a passage it cites
    support: dict[int, tuple[int, ...]] = field(default_factory=dict)  # n -> sentence indexes

    @property
    def ok(self) -> bool:
        return not self.reasons


class GroundingGuard:
    """Checks generated sentences against the numbered passages of one prompt."""

    def __init__(self, passages: Sequence[Passage], embed, min_similarity: float) -> None:
        """`embed(text) -> normalized vector` (the pipeline's `Embedder.embed`)."""
        self.passages = {p.n: p for p in passages}
        self.embed = embed
        self.min_similarity = min_similarity

    def check(self, draft: str) -> Verdict:
        text, ns = parse_citations(draft)
        reasons: list[str] = []
        if not ns:
            return self._attributed(draft, text)
        missing = [n for n in ns if n not in self.passages]
        if missing:
            return Verdict(draft, text, ns, (f"cites [{missing[0]}], which is not a passage",))
        if len(re.findall(r"[A-Za-z]{2,}", text)) < 3:
            return Verdict(draft, text, ns, ("too short to be a claim",))
        if looks_planted(text) or looks_planted(draft):
            return Verdict(draft, text, ns, ("planted instruction",))
        cited = [self.passages[n] for n in ns]
        union = " ".join(p.norm for p in cited)
        for term in key_terms(text):
            if not any(_has(f, union) for f in term.forms):
                reasons.append(f"{term.kind} {term.text!r} is not in the cited passage")
        stems = content_stems(text)
        passage_stems = set(content_stems(" ".join(p.text for p in cited)))
        if stems:
            share = sum(s in passage_stems for s in stems) / len(stems)
            if share < MIN_OVERLAP:
                reasons.append(f"only {share:.0%} of its words are in the cited passage")
        vec = self.embed(text)
        sims = {p.n: float(vec @ p.vector) for p in cited}
        low = min(sims.values())
        for n, sim in sims.items():
            if sim < self.min_similarity:
                reasons.append(
                    f"meaning too far from [{n}] (similarity {sim:.2f} < {self.min_similarity:.2f})"
                )
        support = {p.n: self._support(text, vec, stems, p) for p in cited}
        closest = [cited[i].sentences[support[p.n][0]] for i, p in enumerate(cited) if support[p.n]]
        if closest and any(has_negation(s) for s in closest[:1]) and not has_negation(text):
            reasons.append("drops the negation of the source sentence")
        return Verdict(draft, text, ns, tuple(reasons), low, support)

    def _attributed(self, draft: str, text: str) -> Verdict:
        """A sentence written without a usable `[n]` is cited to the passage closest in meaning
        (of the `ATTRIBUTE_FROM` closest) that passes every check above; it is dropped when none
        does. The citation is then the guard's, made by the same rules that judge a model's own."""
        vec = self.embed(text)
        closest = sorted(self.passages.values(), key=lambda p: -float(vec @ p.vector))
        for p in closest[:ATTRIBUTE_FROM]:
            v = self.check(f"{text} [{p.n}]")
            if v.ok:
                return replace(v, draft=draft)
        return Verdict(draft, text, (), ("cites no passage",))

    @staticmethod
    def _support(text: str, vec: np.ndarray, stems: list[str], p: Passage) -> tuple[int, ...]:
        """The passage sentences that support `text`: the closest one first, then in passage order
        every other sentence that holds a word, number or name the closest one lacks."""
        if not p.sentences:
            return ()
        best = int(np.argmax(p.sentence_vectors @ vec))
        chosen = [best]
        covered = set(content_stems(p.sentences[best]))
        need = set(stems) - covered
        for j, sentence in enumerate(p.sentences):
            if j == best or not need:
                continue
            has = set(content_stems(sentence)) & need
            if has:
                chosen.append(j)
                need -= has
        return (best, *sorted(chosen[1:]))
