"""Rank stage: how likely is each sentence of the retrieved passages to answer the question?

Every sentence gets a few general signals (meaning, word coverage weighted by rarity, the closest
stored question that points at it, whether it holds the kind of answer asked for, where it sits),
and a logistic model learned from labelled questions turns them into one probability
(`corpus/models/ranker.json`, trained by `python -m evals.train_ranker`). The select stage reads
that probability: it is also the relevance floor, so "Who is Tom Hanks married to?" is refused
rather than answered with a loosely related quote.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

from bot.ingest.chunk import Unit, units_of
from bot.query import Query
from bot.retrieval.search import Hit, code_family, identifiers, token_set
from bot.safety.planted import looks_planted
from bot.settings import Settings
from bot.store.index import IndexHandle

if TYPE_CHECKING:
    from langchain_core.documents import Document

RANKER_FORMAT = 4
FEATURES = (
    "sentence_cosine",
    "passage_cosine",
    "coverage",
    "question_match",
    "passage_question_match",
    "lexical",
    "fits_type",
    "defines",
    "codes_held",
    "section_named",
    "retrieval_rank",
    "position",
    "article",
    "glossary",
    "trial",
)

_FIRST_PERSON = re.compile(r"\b(I|I'm|I've|me|my|My|we|We|us|our|Our)\b")
_HAS_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|dozen|hundred|thousand|half|both|few)\b",
    re.IGNORECASE,
)
_CODE = re.compile(r"\b[A-Za-z]+\d+\w*\b")  # NCT06333509 is a name, not a count
# Nor are years and a reference's volume, issue, pages or DOI ("how many patients" is not 2025).
_NOT_A_COUNT = re.compile(
    r"\b(1[89]|20)\d\d\b|\b(volume|vol\.|issue|no\.|pages?|pp\.|doi)\s*[\w./()-]+", re.IGNORECASE
)
_HAS_AGE = re.compile(
    r"\b(ages?|aged)\b[^.;]{0,20}?\d|\d+\s*(years?\s+old|years?\s+or\s+older)", re.IGNORECASE
)
_HAS_TIME = re.compile(
    r"\b(1[89]|20)\d\d\b|\b(days?|weeks?|months?|years?|soon|later|next|until|since|under)\b", re.IGNORECASE
)


def first_person(text: str) -> bool:
    return bool(_FIRST_PERSON.search(text))


def _figures_only(text: str) -> str:
    return _CODE.sub(" ", _NOT_A_COUNT.sub(" ", text))


def fits(wants: str, text: str) -> bool:
    """Does the sentence hold the kind of answer asked for (a count, a rate, an age, a time)?"""
    if wants == "number":
        return bool(_HAS_NUMBER.search(_figures_only(text)))
    if wants == "rate":
        return bool(re.search(r"\d", _figures_only(text)))
    if wants == "age":
        return bool(_HAS_AGE.search(text))
    if wants == "time":
        return bool(_HAS_TIME.search(text))
    return True


@dataclass(frozen=True)
class Candidate:
    hit: Hit
    j: int  # the unit's index in its passage
    unit: Unit
    score: float  # probability that the sentence answers the question
    vec: np.ndarray
    features: np.ndarray
    coverage: float = 0.0
    similarity: float = 0.0
    held: frozenset[int] = frozenset()  # which of the question's topic words and codes it holds


# Question-level signals: is there an answer in the sources at all? (the relevance floor)
ANSWERABLE_FEATURES = (
    "best_probability",
    "lead_coverage",
    "uncovered",
    "best_question_match",
    "best_sentence_cosine",
    "best_passage_cosine",
    "known_share",
)


@dataclass(frozen=True)
class Linear:
    weights: np.ndarray
    bias: float

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(x @ self.weights + self.bias)))


@dataclass(frozen=True)
class RankerModel:
    sentence: Linear  # which sentence answers
    answerable: Linear  # whether any does
    in_scope: Linear  # when none does: is the question about this subject at all (not_found vs out_of_scope)
    version: str

    def probability(self, x: np.ndarray) -> np.ndarray:
        return self.sentence.probability(x)


def uncovered_share(q: Query) -> float:
    """Share of the question's topic weight in words no source uses ("cost", "Medicare")."""
    terms = q.analysis.terms
    total = sum(terms.weights)
    missing = sum(
        w for g, w in zip(terms.groups, terms.weights, strict=True) if any(t.startswith("\0") for t in g)
    )
    return missing / total if total else 0.0


def known_share(q: Query) -> float:
    """Share of the question's topic words and codes that the sources use, each counted once
    whatever its rarity: "Is PCL hereditary?" is about this subject even though no source says
    "hereditary"; "How do I bake bread?" shares no word with them."""
    terms = q.analysis.terms
    n = len(terms.groups) + len(terms.ids)
    known = sum(1 for g in terms.groups if not any(t.startswith("\0") for t in g)) + len(terms.ids)
    return known / n if n else 0.0


def answerable_features(q: Query, ranked: list[Candidate]) -> np.ndarray:
    """Question-level signals over the ranked candidates (best first). With none (every
    retrieved sentence was about another trial or product), the question's own signals remain:
    whether it is about this subject at all does not depend on what was quotable."""
    if not ranked:
        x = dict.fromkeys(ANSWERABLE_FEATURES, 0.0)
        x["uncovered"], x["known_share"] = uncovered_share(q), known_share(q)
        x["best_passage_cosine"] = max((h.dense for h in q.hits), default=0.0)
        return np.array([x[k] for k in ANSWERABLE_FEATURES])
    top = ranked[:3]
    f = np.vstack([c.features for c in ranked])
    return np.array(
        [
            ranked[0].score,
            max(c.coverage for c in top),
            uncovered_share(q),
            f[:, FEATURES.index("question_match")].max(),
            f[:, FEATURES.index("sentence_cosine")].max(),
            f[:, FEATURES.index("passage_cosine")].max(),
            known_share(q),
        ]
    )


def ranker_path(settings: Settings) -> Path:
    return settings.index.trained("ranker.json")


def load_ranker(settings: Settings) -> RankerModel:
    path = ranker_path(settings)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"The sentence ranker {path} is missing. Run `python -m evals.train_ranker` to train it."
        ) from None
    if (
        raw.get("format") != RANKER_FORMAT
        or tuple(raw["sentence"]["features"]) != FEATURES
        or tuple(raw["answerable"]["features"]) != ANSWERABLE_FEATURES
        or tuple(raw["in_scope"]["features"]) != ANSWERABLE_FEATURES
    ):
        raise ValueError(f"{path} was trained for other features; run `python -m evals.train_ranker`")

    def linear(part: dict) -> Linear:
        return Linear(np.asarray(part["weights"], dtype=np.float64), float(part["bias"]))

    return RankerModel(
        linear(raw["sentence"]), linear(raw["answerable"]), linear(raw["in_scope"]), raw.get("version", "")
    )


class Rank:
    def __init__(self, index: IndexHandle, model: RankerModel | None, same_kind_codes: bool = True) -> None:
        self.index = index
        self.model = model
        self.same_kind_codes = same_kind_codes

    def __call__(self, q: Query) -> None:
        vectors = self.index.sentence_vectors([h.chunk.id for h in q.hits])
        cands = candidates(q, vectors, self.same_kind_codes)
        if cands and self.model is not None:
            probs = self.model.probability(np.vstack([c.features for c in cands]))
            # The constructor, not dataclasses.replace: a few dozen candidates per question.
            cands = [
                Candidate(c.hit, c.j, c.unit, float(p), c.vec, c.features, c.coverage, c.similarity, c.held)
                for c, p in zip(cands, probs, strict=True)
            ]
        q.candidates = cands


@dataclass(frozen=True)
class _Sentence:
    j: int
    unit: Unit
    text: str  # lower-cased
    tokens: frozenset[str]  # its words, the passage's section and labels, "author" for the author's own
    # The numbered codes it names (with its passage's section and source) by family, and those
    # its whole passage names: read once per passage, not per question.
    kinds: dict[str, frozenset[str]]
    passage_kinds: dict[str, frozenset[str]]


@dataclass(frozen=True)
class _Passage:
    """What ranking reads of a passage that does not depend on the question."""

    units: list[Unit]
    section_tokens: frozenset[str]
    context: str  # section, labels and source id, lower-cased
    passage: str  # the passage, lower-cased
    sentences: tuple[_Sentence, ...]  # the quotable ones: no labels, nothing planted


@lru_cache(maxsize=1 << 14)
def _passage(units_json: str, section: str, source_id: str, kind: str, content: str) -> _Passage:
    units = units_of(SimpleNamespace(metadata={"units": units_json}))
    labels = " ".join(u.text for u in units if u.label)
    section_tokens = token_set(f"{section} {labels}")
    context_codes = identifiers(f"{section} {labels} {source_id}")
    passage_kinds = _by_family(context_codes.union(*(identifiers(u.text) for u in units)))
    sentences = []
    for j, unit in enumerate(units):
        if unit.label or looks_planted(unit.text):
            continue
        tokens = set(token_set(unit.text)) | section_tokens
        if kind == "article" and first_person(unit.text):
            tokens.add("author")  # the author's own words answer "what does the author think"
        kinds = _by_family(identifiers(unit.text) | context_codes)
        sentences.append(_Sentence(j, unit, unit.text.lower(), frozenset(tokens), kinds, passage_kinds))
    return _Passage(
        units,
        section_tokens,
        f"{section} {labels} {source_id}".lower(),
        content.lower(),
        tuple(sentences),
    )


def passage_of(chunk: Document) -> _Passage:
    """Remembered per passage text: every question that retrieves it reads the same."""
    md = chunk.metadata
    return _passage(
        md["units"], md.get("section", ""), md.get("source_id", ""), md.get("kind", ""), chunk.page_content
    )


@lru_cache(maxsize=1 << 16)
def _fits(wants: str, text: str) -> bool:
    return fits(wants, text)


def _by_family(codes: set[str] | frozenset[str]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for c in codes:
        if fam := code_family(c):
            out.setdefault(fam, set()).add(c)
    return {f: frozenset(c) for f, c in out.items()}


def _about_another(s: _Sentence, asked: dict[str, frozenset[str]]) -> bool:
    """The sentence is about another thing of the kind asked about, and not the one asked: asked
    about CT071, a sentence about CT0596 does not answer, it would read as the answer. What the
    sentence names decides; a sentence that names nothing of that kind goes by its passage."""
    for fam, codes in asked.items():
        named = s.kinds.get(fam) or s.passage_kinds.get(fam)
        if named and not (named & codes):
            return True
    return False


def candidates(q: Query, vectors: dict[str, np.ndarray], same_kind_codes: bool = True) -> list[Candidate]:
    """Every quotable sentence of the retrieved passages, with its features (score 0 until ranked)."""
    a = q.analysis
    terms, qvec = a.terms, q.vector
    # A question about one trial record is answered from passages about that record only.
    trials = {t for t in terms.ids if t.startswith("nct")}
    total = sum(terms.weights)
    matches = q.matches
    top_lexical = max((h.lexical for h in q.hits), default=0.0) or 1.0
    id_list = sorted(terms.ids)
    n_groups = len(terms.groups)
    defines_rx = re.compile(re.escape(a.term) + r"\b[^.]{0,40}?\b(is|are)\b") if a.term else None
    asked = _by_family(a.codes) if same_kind_codes else {}
    out = []
    for hit in q.hits:
        p = passage_of(hit.chunk)
        units = p.units
        vecs = vectors.get(hit.chunk.id)
        if vecs is None or len(vecs) != len(units):
            continue
        sims = vecs @ qvec
        kind = hit.chunk.metadata.get("kind", "")
        context, passage = p.context, p.passage
        if trials and not any(t in passage or t in context for t in trials):
            continue
        named = (
            sum(w for g, w in zip(terms.groups, terms.weights, strict=True) if g & p.section_tokens) / total
            if total
            else 0.0
        )
        chunk_match = matches.by_chunk.get(hit.chunk.id, 0.0) if matches else 0.0
        for s in p.sentences:
            if asked and _about_another(s, asked):
                continue
            j, unit, text = s.j, s.unit, s.text
            held_idx = frozenset(i for i, g in enumerate(terms.groups) if g & s.tokens)
            held = sum(terms.weights[i] for i in held_idx)
            ids_held = sum(
                1.0 if t in text or t in context else 0.5 if t in passage else 0.0 for t in id_list
            )
            held_idx |= {n_groups + k for k, t in enumerate(id_list) if t in text or t in context}
            coverage = (
                (held + ids_held * 3.0) / (total + len(terms.ids) * 3.0) if (total or terms.ids) else 0.0
            )
            defines = bool(defines_rx and defines_rx.match(text))
            x = np.array(
                [
                    float(sims[j]),
                    hit.dense,
                    coverage,
                    matches.by_sentence.get((hit.chunk.id, j), 0.0) if matches else 0.0,
                    chunk_match,
                    hit.lexical / top_lexical,
                    float(_fits(a.wants, unit.text)),
                    float(defines),
                    ids_held / len(terms.ids) if terms.ids else 0.0,
                    named,
                    hit.rank / max(1, len(q.hits)),
                    j / max(1, len(units)),
                    float(kind == "article"),
                    float(kind == "glossary"),
                    float(kind == "trial"),
                ],
                dtype=np.float64,
            )
            out.append(Candidate(hit, j, unit, 0.0, vecs[j], x, coverage, float(sims[j]), held_idx))
    return out
