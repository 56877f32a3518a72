"""Analyse stage: the question's topic words, codes and the kind of answer it wants, and its vector."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.query import Query
from bot.retrieval.lexicon import Lexicon, QueryTerms
from bot.retrieval.search import identifiers
from bot.store.embed import Embedder

# What kind of answer a question wants: a sentence without one cannot answer it.
_WANTS_NUMBER = re.compile(r"^\s*how\s+(many|much)\b", re.IGNORECASE)
_WANTS_RATE = re.compile(r"\b(rates?|percent(age)?s?|odds|chances?)\b|%", re.IGNORECASE)
_WANTS_AGE = re.compile(r"\b(what|which|median|average|mean|typical)\s+age\b|\bhow\s+old\b", re.IGNORECASE)
_WANTS_TIME = re.compile(r"^\s*(when|how\s+long|how\s+soon|what\s+year)\b", re.IGNORECASE)
_DEFINITION = re.compile(
    r"^\s*(?:what|who)(?:'s|\s+is|\s+are|\s+was|\s+were)\s+(?:an?\s+|the\s+)?(.+?)\s*\??\s*$", re.IGNORECASE
)


@dataclass(frozen=True)
class Analysis:
    terms: QueryTerms
    wants: str  # number | rate | age | time | "" (any sentence may answer)
    term: str  # the term a definition question asks about ("what is X" -> x), or ""
    codes: frozenset[str] = frozenset()  # every code typed, common ones too (ct0596, patient 2)


def answer_type(question: str) -> str:
    if _WANTS_NUMBER.search(question):
        return "number"
    if _WANTS_RATE.search(question):
        return "rate"
    if _WANTS_AGE.search(question):
        return "age"
    if _WANTS_TIME.search(question):
        return "time"
    return ""


class Analyse:
    def __init__(self, lexicon: Lexicon, embedder: Embedder) -> None:
        self.lexicon = lexicon
        self.embedder = embedder

    def __call__(self, q: Query) -> None:
        question = q.resolved
        terms = self.lexicon.analyze(question)
        definition = _DEFINITION.match(question)
        term = definition.group(1).lower() if definition else ""
        if not term and len(question.split()) <= 2 and len(terms.ids) == 1:
            term = next(iter(terms.ids))  # "ct0596?" asks what CT0596 is
        q.analysis = Analysis(terms, answer_type(question), term, frozenset(identifiers(question)))
        q.vector = self.embedder.embed(terms.corrected)
