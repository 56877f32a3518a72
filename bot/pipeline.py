"""The question-answering pipeline: named stages sharing one typed `Query`.

    guard -> resolve -> analyse -> retrieve -> rank -> select -> compose -> policy

Each stage is a small object with one job (its module says which). `Companion` loads the model,
the index and the safety classifier once and builds the pipeline; `ask` is then cheap and
thread-safe. Emergencies and unreadable input are settled before any search, so urgent guidance
never waits for retrieval; the policy stage alone decides every reply's kind.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from bot.answer.analyse import Analyse
from bot.answer.compose import Compose
from bot.answer.policy import Policy
from bot.answer.rank import Rank, load_ranker
from bot.answer.resolve import Resolve, Vocabulary
from bot.answer.select import Select
from bot.query import Query
from bot.reply import Reply
from bot.retrieval.lexicon import Lexicon, word_pieces
from bot.retrieval.questions import StoredQuestions
from bot.retrieval.retrieve import Retrieve
from bot.retrieval.search import HybridSearch
from bot.safety.assess import Guard
from bot.safety.classifier import load_classifier
from bot.safety.screen import has_control_chars
from bot.settings import Settings
from bot.store.embed import Embedder, load_embeddings
from bot.store.index import open_index

if TYPE_CHECKING:  # the optional generate stage is imported only when an LLM is configured
    from bot.answer.generate import Generate
    from bot.llm.events import Event


@dataclass
class Pipeline:
    guard: Guard
    resolve: Resolve
    analyse: Analyse
    retrieve: Retrieve
    rank: Rank
    select: Select
    compose: Compose
    policy: Policy
    # Optional, after the policy (README "Answers from an LLM"): None unless an LLM is configured.
    generate: Generate | None = None

    def run(self, q: Query, generate: bool = True) -> Reply:
        """The reply; `generate=False` skips the optional generate stage (the extractive reply)."""
        started = time.perf_counter()
        self.trace(q)
        reply = self.policy(q, started)
        if self.generate is None or not generate:
            return reply
        return self.generate(q, reply, started)

    def stream(self, q: Query) -> Iterator[Event]:
        """`run` as events: the model's tokens and checked sentences, then `Final(reply)`."""
        from bot.llm.events import Final

        started = time.perf_counter()
        self.trace(q)
        reply = self.policy(q, started)
        if self.generate is None:
            yield Final(reply)
            return
        yield from self.generate.stream(q, reply, started)

    def trace(self, q: Query) -> Query:
        """Every stage before the policy: the state a reply is made from (evals, diagnostics)."""
        for f in fields(self):
            if f.name in ("policy", "generate"):
                break
            t = time.perf_counter()
            getattr(self, f.name)(q)
            q.timings[f.name] = (time.perf_counter() - t) * 1000.0
            if f.name == "guard" and self.policy.settled(q):
                break
        return q


def clean_history(history: object) -> tuple[dict, ...]:
    """Only well-formed turns count: API callers can send anything as history."""
    if not isinstance(history, list | tuple):
        return ()
    return tuple(
        {"role": t["role"], "content": t["content"]}
        for t in history
        if isinstance(t, dict)
        and t.get("role") in ("user", "assistant")
        and isinstance(t.get("content"), str)
        and not has_control_chars(t["content"])
    )


class Companion:
    """Loads the model, the index and the classifier once; `ask` is then cheap and thread-safe."""

    def __init__(
        self,
        settings: Settings | None = None,
        progress: bool = True,
        rebuild: bool = False,
        trained: bool = True,
    ) -> None:
        """`trained=False` starts without the learned ranker (its own training run only)."""
        started = time.perf_counter()
        self.settings = s = settings or Settings.from_env()
        self.embeddings = load_embeddings(s)  # ONNX, exported on first use
        self.index = open_index(s, self.embeddings, rebuild=rebuild, progress=progress)
        self.index.warm()
        self.search = HybridSearch(self.index, rrf_k=s.retrieval.rrf_k)
        self.embedder = Embedder(
            self.embeddings,
            cache_size=s.models.cache_texts,
            max_batch=s.models.max_batch,
            max_wait_ms=s.models.batch_wait_ms,
        )
        self.classifier = load_classifier(s, progress=progress)
        if self.classifier is not None:  # its call also gives the message's embedding: kept
            self.classifier.on_vector = self.embedder.hand_over
        self.lexicon = Lexicon.from_texts(
            (d.page_content + " " + d.metadata.get("section", "") for d in self.search.docs),
            dictionary=word_pieces(s.index.model_path),
        )
        ranker = load_ranker(s) if trained else None
        self.pipeline = Pipeline(
            # The guard prefetches the question's embedding while the classifier reads it.
            guard=Guard(s.safety, self.classifier, prefetch=self._prefetch),
            resolve=Resolve(
                s.answer.resolve_followups,
                Vocabulary.from_corpus(self.search.docs, self.lexicon.rare_words()),
            ),
            analyse=Analyse(self.lexicon, self.embedder),
            retrieve=Retrieve(self.search, StoredQuestions(*self.index.stored_questions()), s.retrieval),
            rank=Rank(self.index, ranker, s.answer.same_kind_codes),
            select=Select(s.answer, ranker),
            compose=Compose(),
            policy=Policy(s),
            generate=self._generate_stage(s),
        )
        self.embedder.embed("warm up")  # the first call pays one-off allocation costs
        if self.classifier is not None:
            self.classifier.probabilities("warm up")
        self.startup_seconds = time.perf_counter() - started

    def _prefetch(self, text: str) -> None:
        """Start embedding what the analyse stage will embed for a question asked without
        history: the screened text with misspellings corrected (`Lexicon.analyze`), which the
        resolve stage leaves as it is when there is no earlier turn. Prefetching the text as
        typed would miss whenever a word is corrected, and that vector would be computed twice.
        Nothing to start when the text needs no correction: the classifier's own call gives its
        embedding."""
        corrected = self.lexicon.analyze(text).corrected
        if corrected == text and self.classifier is not None and self.classifier.gives_vectors:
            return
        self.embedder.prefetch(corrected)

    def _generate_stage(self, s: Settings) -> Generate | None:
        """The LLM stage, loaded (and its libraries imported) only when an LLM is configured."""
        if not s.llm.enabled:
            return None
        from bot.answer.generate import Generate

        return Generate(s.llm, self.embedder, max_sentences=s.answer.max_sentences)

    def retriever(self):
        """The hybrid search as a LangChain retriever (`bot.retrieval.langchain_retriever`)."""
        from bot.retrieval.langchain_retriever import HybridRetriever

        r = self.settings.retrieval
        return HybridRetriever(
            search=self.search, embeddings=self.embeddings, k=r.top_k, candidates=r.candidate_k, mode=r.mode
        )

    def ask(self, question: str, history: Sequence[dict] | None = None, generate: bool = True) -> Reply:
        """The reply to a question. With an LLM configured, `generate=False` gives the extractive
        reply without calling the model (the page checks the parts of a multi-question message)."""
        return self.pipeline.run(Query(raw=question, history=clean_history(history)), generate=generate)

    def ask_stream(self, question: str, history: Sequence[dict] | None = None) -> Iterator[Event]:
        """`ask` for a chat page that streams: `Drafting` (the model starts), `Token`s of the
        model's text as they arrive, a `Checked` per sentence (its kept part, or None: remove its
        tokens), then `Final(reply)`, the same reply `ask` gives. Without an LLM, and for every reply that is not generated
        (emergencies first), the only event is `Final`. See `bot/llm/events.py`."""
        return self.pipeline.stream(Query(raw=question, history=clean_history(history)))

    def forget(self) -> None:
        """Empty the embedding and classifier caches (benchmarks time models, not caches)."""
        self.embedder.forget()
        if self.classifier is not None:
            self.classifier.forget()

    def trace(self, question: str, history: Sequence[dict] | None = None, **extra) -> Query:
        """The state after every stage but the policy (evals, training, diagnostics)."""
        return self.pipeline.trace(Query(raw=question, history=clean_history(history), extra=extra))
