"""Rank stage: score every sentence of the retrieved passages as an answer to the question.

A sentence's score mixes its meaning (cosine to the question), its passage's, and its coverage:
the share of the question's topic words and codes it holds, weighted by rarity in the corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from bot.ingest.chunk import Unit, units_of
from bot.query import Query
from bot.retrieval.lexicon import ABOUT_THE_SOURCES
from bot.retrieval.search import Hit, tokenize
from bot.safety.planted import looks_planted
from bot.store.index import IndexHandle

_FIRST_PERSON = re.compile(r"\b(I|I'm|I've|me|my|My|we|We|us|our|Our)\b")
_ID_WEIGHT = 3.0  # a typed code weighs like a rare word
_HAS_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|dozen|hundred|thousand|half|both|few)\b",
    re.IGNORECASE,
)
_CODE = re.compile(r"\b[A-Za-z]+\d+\w*\b")  # NCT06333509 is a name, not a count
# Nor are years and a reference's volume, issue, pages or DOI ("how many patients" is not 2025).
_NOT_A_COUNT = re.compile(
    r"\b(1[89]|20)\d\d\b|\b(volume|vol\.|issue|no\.|pages?|pp\.|doi)\s*[\w./()-]+", re.IGNORECASE
)
_SIGNPOST = re.compile(r"\b(mentions|you will learn|is an interesting development)\b", re.IGNORECASE)
_SIGNPOST_PENALTY = 0.08
_HAS_AGE = re.compile(
    r"\b(ages?|aged)\b[^.;]{0,20}?\d|\d+\s*(years?\s+old|years?\s+or\s+older)", re.IGNORECASE
)
_HAS_TIME = re.compile(
    r"\b(1[89]|20)\d\d\b|\b(days?|weeks?|months?|years?|soon|later|next|until|since|under)\b", re.IGNORECASE
)


def first_person(text: str) -> bool:
    return bool(_FIRST_PERSON.search(text))


@dataclass(frozen=True)
class Candidate:
    hit: Hit
    j: int  # the unit's index in its passage
    unit: Unit
    score: float
    vec: np.ndarray
    coverage: float = 0.0  # share of the question's topic words (by rarity) this sentence holds
    similarity: float = 0.0  # cosine of sentence and question


def _figures_only(text: str) -> str:
    return _CODE.sub(" ", _NOT_A_COUNT.sub(" ", text))


def _fits(wants: str):
    """A check a sentence must pass to answer this kind of question at all."""
    if wants == "number":
        return lambda text: _HAS_NUMBER.search(_figures_only(text))
    if wants == "rate":
        return lambda text: re.search(r"\d", _figures_only(text))
    if wants == "age":
        return _HAS_AGE.search
    if wants == "time":
        return _HAS_TIME.search
    return None


class Rank:
    def __init__(self, index: IndexHandle) -> None:
        self.index = index

    def __call__(self, q: Query) -> None:
        vectors = self.index.sentence_vectors([h.chunk.id for h in q.hits])
        q.candidates = score_units(q, vectors)


def score_units(q: Query, vectors: dict[str, np.ndarray]) -> list[Candidate]:
    a = q.analysis
    terms, qvec, question = a.terms, q.vector, q.resolved
    wanted = _fits(a.wants)
    signpost_penalty = 0.0 if ABOUT_THE_SOURCES.search(question) else _SIGNPOST_PENALTY
    # A question about one trial record is answered from passages about that record only.
    trials = {t for t in terms.ids if t.startswith("nct")}
    out = []
    total = sum(terms.weights)
    for hit in q.hits:
        units = units_of(hit.chunk)
        vecs = vectors.get(hit.chunk.id)
        if vecs is None or len(vecs) != len(units):
            continue
        sims = vecs @ qvec
        md = hit.chunk.metadata
        labels = " ".join(u.text for u in units if u.label)
        section_tokens = set(tokenize(f"{md.get('section', '')} {labels}"))
        context = f"{md.get('section', '')} {labels} {md.get('source_id', '')}".lower()
        passage = hit.chunk.page_content.lower()
        if trials and not any(t in passage or t in context for t in trials):
            continue
        prior = 0.05 if md.get("kind") == "article" else 0.0
        if total:
            named = sum(w for g, w in zip(terms.groups, terms.weights, strict=True) if g & section_tokens)
            prior += 0.1 * named / total
        for j, unit in enumerate(units):
            if unit.label or looks_planted(unit.text) or (wanted and not wanted(unit.text)):
                continue
            u_tokens = set(tokenize(unit.text)) | section_tokens
            if md.get("kind") == "article" and first_person(unit.text):
                u_tokens.add("author")  # the author's own words answer "what does the author think"
            text = unit.text.lower()
            held = sum(w for g, w in zip(terms.groups, terms.weights, strict=True) if g & u_tokens)
            ids_held = sum(
                1.0 if t in text or t in context else 0.5 if t in passage else 0.0 for t in terms.ids
            )
            coverage = (
                (held + ids_held * _ID_WEIGHT) / (total + len(terms.ids) * _ID_WEIGHT)
                if (total or terms.ids)
                else 0.0
            )
            defines = (
                0.1 if a.term and re.match(re.escape(a.term) + r"\b[^.]{0,40}?\b(is|are)\b", text) else 0.0
            )
            score = (
                0.45 * float(sims[j])
                + 0.1 * hit.dense
                + 0.5 * coverage
                + defines
                + prior
                - 0.005 * hit.rank
                - 0.005 * j
                - (signpost_penalty if _SIGNPOST.search(unit.text) else 0.0)
            )
            out.append(Candidate(hit, j, unit, score, vecs[j], coverage, float(sims[j])))
    return out
