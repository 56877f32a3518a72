"""The one object that loads once and answers many times: question -> cited, safe Reply.

Flow per question: triage -> follow-up resolution -> embed once -> hybrid search ->
extractive composition -> Reply with the disclaimer. Emergencies and invalid input return
before any retrieval, so urgent guidance is never delayed by search.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from bot.answer import notices as messages
from bot.answer.compose import compose
from bot.answer.resolve import resolve
from bot.reply import Reply, Retrieved
from bot.retrieval.lexicon import Lexicon
from bot.retrieval.search import HybridRetriever, HybridSearch
from bot.safety.screen import EMERGENCY, INVALID, MEDICAL_ADVICE, OUT_OF_SCOPE, in_domain, triage
from bot.settings import Settings
from bot.store.embed import embed_query, load_embeddings
from bot.store.index import open_index

log = logging.getLogger(__name__)


class Companion:
    """Loads the model and the index once; `ask` is then cheap and thread-safe."""

    def __init__(
        self, settings: Settings | None = None, progress: bool = True, rebuild: bool = False
    ) -> None:
        started = time.perf_counter()
        self.settings = settings or Settings.from_env()
        self.embeddings = load_embeddings(self.settings)
        self.index = open_index(self.settings, self.embeddings, rebuild=rebuild, progress=progress)
        self.index.warm()
        self.search = HybridSearch(self.index, rrf_k=self.settings.rrf_k)
        self.lexicon = Lexicon.from_texts(
            d.page_content + " " + d.metadata.get("section", "") for d in self.search.docs
        )
        embed_query(self.embeddings, "warm up")  # first call pays one-off allocation costs
        self.startup_seconds = time.perf_counter() - started

    def retriever(self) -> HybridRetriever:
        s = self.settings
        return HybridRetriever(
            search=self.search,
            embeddings=self.embeddings,
            k=s.top_k,
            candidates=s.candidate_k,
            mode=s.retrieval_mode,
        )

    def ask(self, question: str, history: Sequence[dict] | None = None) -> Reply:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        s = self.settings
        question = question if isinstance(question, str) else ""
        verdict = triage(question, s.max_question_chars)
        timings["triage"] = _ms(t0)

        def reply(kind: str, answer: str, **kw) -> Reply:
            return Reply(
                question=question,
                answer=answer,
                kind=kind,
                disclaimer=s.disclaimer,
                latency_ms=_ms(t0),
                reason=verdict.reason,
                timings_ms=timings,
                **({"citations": ()} | kw),
            )

        if verdict.kind == INVALID:
            return reply(INVALID, messages.invalid(verdict.reason, s, len(question)))
        if verdict.kind == EMERGENCY:
            return reply(EMERGENCY, messages.emergency(s, verdict.reason))
        if verdict.kind == OUT_OF_SCOPE:
            return reply(OUT_OF_SCOPE, messages.out_of_scope(verdict.reason))

        t = time.perf_counter()
        query = resolve(verdict.text, history) if s.resolve_followups else verdict.text
        terms = self.lexicon.analyze(query)
        timings["resolve"] = _ms(t)
        t = time.perf_counter()
        qvec = embed_query(self.embeddings, terms.corrected)
        timings["embed"] = _ms(t)
        hits = self.search.search(
            terms.expanded, qvec, s.top_k, s.candidate_k, s.retrieval_mode, timings=timings
        )
        t = time.perf_counter()
        vectors = self.index.sentence_vectors([h.chunk.id for h in hits])
        composed = compose(
            query,
            terms,
            qvec,
            hits,
            vectors,
            s.min_evidence,
            s.max_sentences,
            s.min_coverage,
            s.sure_similarity,
            s.sentence_margin,
        )
        timings["compose"] = _ms(t)
        retrieved = tuple(
            Retrieved(
                h.chunk.id,
                h.chunk.metadata["source_id"],
                h.chunk.metadata.get("section", ""),
                round(h.score, 5),
            )
            for h in hits
        )
        common = {
            "resolved_question": query,
            "evidence": round(composed.evidence, 4),
            "retrieved": retrieved,
        }

        if verdict.kind == MEDICAL_ADVICE:
            answer = messages.medical_advice(not composed.empty)
            if not composed.empty:
                answer += "\n\n" + composed.answer
            return reply(MEDICAL_ADVICE, answer, citations=composed.citations, **common)
        if composed.empty:
            if not in_domain(terms.corrected):
                return reply(OUT_OF_SCOPE, messages.out_of_scope("off_topic"), **common)
            return reply("not_found", messages.not_found(), **common)
        return reply("answer", composed.answer, citations=composed.citations, **common)


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0
