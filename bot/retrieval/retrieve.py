"""Retrieve stage: the passages most likely to hold the answer (hybrid search, see `search.py`)."""

from __future__ import annotations

from bot.query import Query
from bot.retrieval.search import HybridSearch
from bot.settings import RetrievalSettings


class Retrieve:
    def __init__(self, search: HybridSearch, settings: RetrievalSettings) -> None:
        self.search = search
        self.s = settings

    def __call__(self, q: Query) -> None:
        s = self.s
        q.hits = self.search.search(
            q.analysis.terms.expanded, q.vector, s.top_k, s.candidate_k, s.mode, timings=q.timings
        )
