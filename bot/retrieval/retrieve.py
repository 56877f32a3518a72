"""Retrieve stage: the passages most likely to hold the answer (hybrid search, see `search.py`)."""

from __future__ import annotations

from bot.query import Query
from bot.retrieval.questions import StoredQuestions
from bot.retrieval.search import HybridSearch
from bot.settings import RetrievalSettings


class Retrieve:
    def __init__(self, search: HybridSearch, questions: StoredQuestions, settings: RetrievalSettings) -> None:
        self.search = search
        self.questions = questions
        self.s = settings

    def __call__(self, q: Query) -> None:
        s = self.s
        also = None
        if s.stored_questions and q.vector is not None:
            q.matches = self.questions.match(q.vector, exclude=q.extra.get("exclude_questions", frozenset()))
            also = sorted(q.matches.by_chunk.items(), key=lambda kv: -kv[1])[: s.candidate_k]
        q.hits = self.search.search(
            q.analysis.terms.expanded, q.vector, s.top_k, s.candidate_k, s.mode, timings=q.timings, also=also
        )
