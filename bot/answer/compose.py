"""Extractive, cited answers: pick the few source sentences that best answer the question.

Nothing here writes a claim of its own. Every sentence in an answer is a sentence of a source,
followed by the number of the passage it came from; the only words we add are framing
("The author, Paul Kleutghen, writes:") and the fixed texts in `messages.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from bot.ingest.chunk import Unit, units_of
from bot.reply import Citation
from bot.retrieval.lexicon import ABOUT_THE_SOURCES, QueryTerms
from bot.retrieval.search import Hit, tokenize
from bot.safety.screen import looks_planted

_ANAPHOR = re.compile(r"^(This|These|That|Those|It|Its|They|Their|Both|Such|To address this|Still|However)\b")
_FIRST_PERSON = re.compile(r"\b(I|I'm|I've|me|my|My|we|We|us|our|Our)\b")
_NEAR_DUPLICATE = 0.85
_ID_WEIGHT = 3.0  # a typed code weighs like a rare word
# What kind of answer a question wants: a sentence without one cannot answer it.
_WANTS_NUMBER = re.compile(r"^\s*how\s+(many|much)\b", re.IGNORECASE)
_HAS_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|dozen|hundred|thousand|half|both|few)\b",
    re.IGNORECASE,
)
_CODE = re.compile(r"\b[A-Za-z]+\d+\w*\b")  # NCT06333509 is a name, not a count
# Nor are years and a reference's volume, issue, pages or DOI ("how many patients" is not 2025).
_NOT_A_COUNT = re.compile(
    r"\b(1[89]|20)\d\d\b|\b(volume|vol\.|issue|no\.|pages?|pp\.|doi)\s*[\w./()-]+", re.IGNORECASE
)
# "What was the response rate?" is answered by a figure, not by a sentence naming the study.
_WANTS_RATE = re.compile(r"\b(rates?|percent(age)?s?|odds|chances?)\b|%", re.IGNORECASE)
# Signposts say that something is told, not what: "The press release ... mentions the outcomes".
_SIGNPOST = re.compile(r"\b(mentions|you will learn|is an interesting development)\b", re.IGNORECASE)
_SIGNPOST_PENALTY = 0.08
_WANTS_AGE = re.compile(r"\b(what|which|median|average|mean|typical)\s+age\b|\bhow\s+old\b", re.IGNORECASE)
_HAS_AGE = re.compile(
    r"\b(ages?|aged)\b[^.;]{0,20}?\d|\d+\s*(years?\s+old|years?\s+or\s+older)", re.IGNORECASE
)
_WANTS_TIME = re.compile(r"^\s*(when|how\s+long|how\s+soon|what\s+year)\b", re.IGNORECASE)
_HAS_TIME = re.compile(
    r"\b(1[89]|20)\d\d\b|\b(days?|weeks?|months?|years?|soon|later|next|until|since|under)\b", re.IGNORECASE
)
_DEFINITION = re.compile(
    r"^\s*(?:what|who)(?:'s|\s+is|\s+are|\s+was|\s+were)\s+(?:an?\s+|the\s+)?(.+?)\s*\??\s*$", re.IGNORECASE
)


@dataclass(frozen=True)
class Candidate:
    hit: Hit
    j: int
    unit: Unit
    score: float
    vec: np.ndarray
    coverage: float = 0.0  # share of the question's topic words (by rarity) this sentence holds
    similarity: float = 0.0  # cosine of sentence and question


@dataclass(frozen=True)
class Composition:
    answer: str
    citations: tuple[Citation, ...]
    evidence: float  # best sentence score

    @property
    def empty(self) -> bool:
        return not self.citations


def _figures_only(text: str) -> str:
    """The text without names and references that hold digits (NCT06333509, 2025, volume 12)."""
    return _CODE.sub(" ", _NOT_A_COUNT.sub(" ", text))


def _answer_filter(question: str):
    """A check a sentence must pass to answer this question at all (numbers for "how many")."""
    if _WANTS_NUMBER.search(question):
        return lambda text: _HAS_NUMBER.search(_figures_only(text))
    if _WANTS_RATE.search(question):
        return lambda text: re.search(r"\d", _figures_only(text))
    if _WANTS_AGE.search(question):
        return _HAS_AGE.search
    if _WANTS_TIME.search(question):
        return _HAS_TIME.search
    return None


def score_units(
    terms: QueryTerms, qvec: np.ndarray, hits: list[Hit], vectors: dict[str, np.ndarray], question: str = ""
) -> list[Candidate]:
    """Meaning (sentence and passage cosine) plus overlap of the question's words and codes."""
    wanted = _answer_filter(question)
    definition = _DEFINITION.match(question)
    term = definition.group(1).lower() if definition else ""
    if not term and len(question.split()) <= 2 and len(terms.ids) == 1:
        term = next(iter(terms.ids))  # "ct0596?" asks what CT0596 is
    signpost_penalty = 0.0 if ABOUT_THE_SOURCES.search(question) else _SIGNPOST_PENALTY
    # A question about one trial record is answered from passages about that record, never
    # from the other trial's criteria.
    trials = {t for t in terms.ids if t.startswith("nct")}
    out = []
    for hit in hits:
        units = units_of(hit.chunk)
        vecs = vectors.get(hit.chunk.id)
        if vecs is None or len(vecs) != len(units):
            continue
        sims = vecs @ qvec
        md = hit.chunk.metadata
        # What a passage is about: its section title, its labels ("Paul Kleutghen"), its source.
        labels = " ".join(u.text for u in units if u.label)
        section_tokens = set(tokenize(f"{md.get('section', '')} {labels}"))
        context = f"{md.get('section', '')} {labels} {md.get('source_id', '')}".lower()
        passage = hit.chunk.page_content.lower()
        if trials and not any(t in passage or t in context for t in trials):
            continue
        prior = 0.05 if hit.chunk.metadata.get("kind") == "article" else 0.0
        # A section named for what was asked ("About the author") vouches for all its sentences.
        total = sum(terms.weights)
        if total:
            named = sum(w for g, w in zip(terms.groups, terms.weights, strict=True) if g & section_tokens)
            prior += 0.1 * named / total
        for j, unit in enumerate(units):
            if unit.label or looks_planted(unit.text) or (wanted and not wanted(unit.text)):
                continue
            u_tokens = set(tokenize(unit.text)) | section_tokens
            if md.get("kind") == "article" and _FIRST_PERSON.search(unit.text):
                u_tokens.add("author")  # the author's own words answer "what does the author think"
            text = unit.text.lower()
            held = sum(w for g, w in zip(terms.groups, terms.weights, strict=True) if g & u_tokens)
            # A code named once in a passage is what its other sentences are about ("Patient 1
            # developed ..." follows "... first two PCL patients dosed with CT0596"): half credit.
            ids_held = sum(
                1.0 if t in text or t in context else 0.5 if t in passage else 0.0 for t in terms.ids
            )
            # Coverage counts codes too: "patient 1" or "NCT05838131" is what the question is about.
            coverage = (
                (held + ids_held * _ID_WEIGHT) / (total + len(terms.ids) * _ID_WEIGHT)
                if (total or terms.ids)
                else 0.0
            )
            defines = 0.1 if term and re.match(re.escape(term) + r"\b[^.]{0,40}?\b(is|are)\b", text) else 0.0
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


def answers(c: Candidate, min_evidence: float, min_coverage: float, sure_similarity: float) -> bool:
    """Can this sentence lead an answer: strong enough, and about what was asked?

    Coverage is the guard against the plausible non-answer: "What is the two-year survival of
    the CT0596 patients?" resembles "the first two PCL patients dosed with CT0596" but the
    sentence says nothing about survival.
    """
    return c.score >= min_evidence and (c.coverage >= min_coverage or c.similarity >= sure_similarity)


def select(
    candidates: list[Candidate],
    min_evidence: float,
    max_sentences: int,
    margin: float = 0.15,
    min_coverage: float = 0.0,
    sure_similarity: float = 1.0,
) -> list[Candidate]:
    ranked = sorted(candidates, key=lambda c: -c.score)
    lead = next((c for c in ranked if answers(c, min_evidence, min_coverage, sure_similarity)), None)
    if lead is None or lead.score < ranked[0].score - margin:
        return []
    ranked = [lead] + [c for c in ranked if c is not lead]
    floor = max(min_evidence, ranked[0].score - margin)
    chosen: list[Candidate] = []
    seen_text: set[str] = set()
    for c in ranked:
        if len(chosen) >= max_sentences or c.score < floor:
            break
        key = c.unit.text.strip().lower()
        # The same fact told by another source (CT071's description is in three places) is
        # said once; sentences of one passage are never duplicates of each other.
        if key in seen_text or any(
            o.hit.chunk.id != c.hit.chunk.id and float(c.vec @ o.vec) > _NEAR_DUPLICATE for o in chosen
        ):
            continue
        chosen.append(c)
        seen_text.add(key)
    return chosen


def _with_context(chosen: list[Candidate]) -> dict[str, list[int]]:
    """Unit indexes to quote per chunk: a sentence that leans on the one before ("This product
    ...") brings that one along; a sentence ending in ':' brings the list that follows."""
    picked: dict[str, set[int]] = {}
    units_by_chunk = {}
    for c in chosen:
        units = units_by_chunk.setdefault(c.hit.chunk.id, units_of(c.hit.chunk))
        idx = picked.setdefault(c.hit.chunk.id, set())
        idx.add(c.j)
        j = c.j
        while j > 0 and _ANAPHOR.match(units[j].text) and not units[j - 1].label:
            j -= 1
            idx.add(j)
        k = c.j
        while k < len(units) and units[k].text.rstrip().endswith(":"):
            k += 1  # "Eligibility criteria for ...:" then "Inclusion Criteria:" then the list
            idx.add(min(k, len(units) - 1))
        if k > c.j:
            while k < len(units) and units[k].list_item:
                idx.add(k)
                k += 1
    # Context is quoted too, so it passes the same check as a chosen sentence.
    return {
        cid: sorted(j for j in js if not looks_planted(units_by_chunk[cid][j].text))
        for cid, js in picked.items()
    }


def _render_sentence(unit: Unit, framed: bool, author: str) -> str:
    text = unit.text.strip()
    if framed:
        who = f"The author, {author}," if author else "The author"
        return f"{who} writes: “{text}”"
    return text


def compose(
    question: str,
    terms: QueryTerms,
    qvec: np.ndarray,
    hits: list[Hit],
    vectors: dict[str, np.ndarray],
    min_evidence: float,
    max_sentences: int,
    min_coverage: float = 0.0,
    sure_similarity: float = 1.0,
    margin: float = 0.15,
) -> Composition:
    candidates = score_units(terms, qvec, hits, vectors, question)
    chosen = select(
        candidates,
        min_evidence,
        max_sentences,
        margin=margin,
        min_coverage=min_coverage,
        sure_similarity=sure_similarity,
    )
    if not chosen:
        best = max((c.score for c in candidates), default=0.0)
        return Composition("", (), best)
    best = chosen[0].score
    # Readable order: the best passage first, each passage's sentences in document order.
    by_chunk = _with_context(chosen)
    chunk_rank = {}
    for c in chosen:
        chunk_rank.setdefault(c.hit.chunk.id, len(chunk_rank))
    hit_by_id = {c.hit.chunk.id: c.hit for c in chosen}
    paragraphs, citations = [], []
    for n, cid in enumerate(sorted(by_chunk, key=lambda k: chunk_rank[k]), start=1):
        chunk = hit_by_id[cid].chunk
        md = chunk.metadata
        units = units_of(chunk)
        author = md.get("author", "") if md.get("kind") == "article" else ""
        lines, framed_once = [], False
        for j in by_chunk[cid]:
            unit = units[j]
            framed = md.get("kind") == "article" and bool(_FIRST_PERSON.search(unit.text))
            sentence = _render_sentence(unit, framed and not framed_once, author)
            if framed and framed_once:
                sentence = f"“{unit.text.strip()}”"
            framed_once = framed_once or framed
            lines.append(("- " if unit.list_item else "") + f"{sentence} [{n}]")
        paragraph = ""
        for line in lines:
            if line.startswith("- "):
                paragraph += ("\n" if paragraph else "") + line
            else:
                paragraph += (
                    "\n" if paragraph.rsplit("\n", 1)[-1].startswith("- ") else (" " if paragraph else "")
                ) + line
        paragraphs.append(paragraph)
        quoted = tuple(units[j].text.strip() for j in by_chunk[cid])
        citations.append(
            Citation(
                n=n,
                source_id=md["source_id"],
                title=md.get("title", ""),
                url=md.get("url", ""),
                section=md.get("section", ""),
                quote=" ".join(quoted),
                passage=chunk.page_content,
                kind=md.get("kind", ""),
                sentences=quoted,
            )
        )
    return Composition("\n\n".join(paragraphs), tuple(citations), best)
