"""Hybrid retrieval: dense (Chroma, cosine) + lexical (BM25) fused by reciprocal rank.

BM25 catches exact identifiers (NCT06333509, CT0596, NKG2A) that a small embedding model
blurs; dense search catches paraphrases ("how long do people live" -> median OS). Chunks that
contain an identifier the question names are lifted above the rest.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from functools import lru_cache

import bm25s
import numpy as np
import snowballstemmer
from langchain_core.documents import Document

from bot.ingest.chunk import embedding_text
from bot.store.index import IndexHandle

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG

_TOKEN = re.compile(r"[a-z0-9]+")
STOPWORDS = _STOP = frozenset(
    """a an and are as at be been being but by can could did do does for from had has have how i if in
    into is it its me my of on or our so than that the their them then there these they this to was
    we were what when where which who whom why will with would you your about any some also just
    tell please much many himself herself themselves yourself myself he she his her him hers""".split()  # noqa: SIM905
)
_IDENTIFIER = re.compile(
    r"\b(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9]{3,}\b|\b[a-z]?[A-Z]{2,}[A-Za-z0-9]*\b"
)


_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Snowball stem, so treated/treating and infections/infection meet; codes stay as typed."""
    return word if any(ch.isdigit() for ch in word) else _STEMMER.stemWord(word)


def tokenize(text: str) -> list[str]:
    """Lower-case, stemmed word tokens without stop words."""
    return [
        stem(tok)
        for tok in _TOKEN.findall(text.lower())
        if tok not in _STOP and (len(tok) >= 2 or tok.isdigit())
    ]


@lru_cache(maxsize=1 << 16)
def token_set(text: str) -> frozenset[str]:
    """`tokenize` as a set, remembered per text: the ranker reads the same source sentences for
    every question that retrieves them."""
    return frozenset(tokenize(text))


_PATIENT = re.compile(r"\bpatient\s*#?\s*(\d+)\b", re.IGNORECASE)


def identifiers(text: str) -> set[str]:
    """Codes and acronyms a person typed (CT071, NCT06333509, NKG2A, sPCL, BCMA, patient 2),
    lower-cased."""
    found = {f"patient {n}" for n in _PATIENT.findall(text)}
    for m in _IDENTIFIER.finditer(text):
        tok = m.group(0).lower()
        if len(tok) >= 3 and tok not in _STOP:
            found.add(tok)
    return found


_NUMBERED = re.compile(r"([a-z]+)\s?\d+")


def code_family(code: str) -> str:
    """The letters a numbered code starts with ("ct071" and "ct0596" -> "ct", "patient 2" ->
    "patient"): codes of one family name different things of one kind. "" for other codes."""
    m = _NUMBERED.fullmatch(code)
    return m.group(1) if m else ""


@dataclass(frozen=True)
class Hit:
    chunk: Document
    score: float  # fused score (higher is better)
    dense: float  # cosine similarity of the question to the chunk; 0 when not in the dense list
    lexical: float  # BM25 score; 0 when not matched
    rank: int


# Up to this many chunks, dense search is an exact scan of the chunk vectors held in memory
# (20,000 x 384 floats = 30 MB, well under a millisecond): the same neighbours Chroma's HNSW
# graph returns on an index this small, without a round trip through Chroma per question
# (about 1 ms, most of the dense stage). Larger indexes are searched by Chroma.
EXACT_DENSE_MAX = 20_000


def _unit_rows(m: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, as Chroma's cosine space compares them."""
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return (m / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class HybridSearch:
    """Loads chunk texts once from the index and answers searches with a precomputed vector."""

    def __init__(self, index: IndexHandle, rrf_k: int = 60, exact_max: int = EXACT_DENSE_MAX) -> None:
        self.index = index
        self.rrf_k = rrf_k
        self.docs = index.all_chunks()
        self.by_id = {d.id: d for d in self.docs}
        self._matrix: np.ndarray | None = None  # unit chunk vectors, for the exact scan
        self._ids: list[str] = []
        if 0 < len(self.docs) <= exact_max:
            ids, vectors = index.chunk_vectors()
            if len(ids) == len(self.docs) and vectors.shape[0] == len(ids):
                self._ids, self._matrix = ids, _unit_rows(vectors)
        tokens = [tokenize(embedding_text(d)) for d in self.docs]
        # Which chunks hold each word: exact-code lookups cost O(hits), not O(corpus).
        self._postings: dict[str, set[str]] = {}
        for doc, toks in zip(self.docs, tokens, strict=True):
            for tok in set(toks):
                self._postings.setdefault(tok, set()).add(doc.id)
        # A trial record asked about by its number (NCT05838131) is searched whole: it is a few
        # passages, and its criteria list may share no other word with the question.
        self._by_source: dict[str, list[str]] = {}
        for doc in self.docs:
            self._by_source.setdefault(str(doc.metadata.get("source_id", "")).lower(), []).append(doc.id)
        self.bm25 = bm25s.BM25()
        self.bm25.index([toks or ["_"] for toks in tokens], show_progress=False)
        self._vocab = set(self.bm25.vocab_dict)

    def dense(self, qvec: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k chunks closest to the question's vector: (chunk id, cosine), best first."""
        k = min(k, len(self.docs))
        if k <= 0:
            return []
        if self._matrix is not None:
            q = np.asarray(qvec, dtype=np.float32)
            norm = float(np.linalg.norm(q))
            sims = self._matrix @ (q / norm if norm > 0 else q)
            top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
            top = top[np.argsort(-sims[top], kind="stable")]
            return [(self._ids[i], float(sims[i])) for i in top]
        got = self.index.chunks.query(query_embeddings=[qvec], n_results=k, include=["distances"])
        return [(i, 1.0 - d) for i, d in zip(got["ids"][0], got["distances"][0], strict=True)]

    def lexical(self, query: str, k: int) -> list[tuple[str, float]]:
        tokens = [t for t in tokenize(query) if t in self._vocab]
        if not tokens:
            return []
        scores = self.bm25.get_scores(tokens)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.docs[i].id, float(scores[i])) for i in top if scores[i] > 0]

    def search(
        self,
        query: str,
        qvec: np.ndarray | None,
        k: int,
        candidates: int,
        mode: str = "hybrid",
        timings: dict[str, float] | None = None,
        also: list[tuple[str, float]] | None = None,
    ) -> list[Hit]:
        """Dense and BM25 rankings (and `also`, any other ranking of chunk ids, best first) fused
        by reciprocal rank; rare codes the person typed lift the passages that hold them."""
        t = time.perf_counter()
        dense = self.dense(qvec, candidates) if mode in ("hybrid", "dense") and qvec is not None else []
        t2 = time.perf_counter()
        lexical = self.lexical(query, candidates) if mode in ("hybrid", "bm25") else []
        t3 = time.perf_counter()
        fused: dict[str, float] = {}
        for ranking in (dense, lexical, also or []):
            for rank, (cid, _) in enumerate(ranking):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (self.rrf_k + rank + 1)
        # A rare exact code the person typed (in a handful of passages) lifts those passages;
        # codes found in many passages (PCL, CT0596) are left to BM25, which weighs them by rarity.
        common = 3
        for code in identifiers(query):
            holders = self._postings.get(code, ())
            if len(holders) <= common:
                for cid in holders:
                    fused[cid] = fused.get(cid, 0.0) + 1.0 / (self.rrf_k + 1)
            elif code.startswith("nct"):
                for cid in self._by_source.get(code, ()):
                    fused[cid] = fused.get(cid, 0.0) + 1.0 / (self.rrf_k + 1)
        dense_sim = dict(dense)
        lex_score = dict(lexical)
        ranked = sorted(fused.items(), key=lambda kv: -kv[1])[:k]
        if timings is not None:
            timings["dense"] = (t2 - t) * 1000
            timings["bm25"] = (t3 - t2) * 1000
            timings["fuse"] = (time.perf_counter() - t3) * 1000
        return [
            Hit(self.by_id[cid], score, dense_sim.get(cid, 0.0), lex_score.get(cid, 0.0), r)
            for r, (cid, score) in enumerate(ranked)
        ]


def __getattr__(name: str):
    # The LangChain retriever lives in its own module: importing langchain_core.retrievers costs
    # about a second of start-up (langsmith), which answering never needs.
    if name == "HybridRetriever":
        from bot.retrieval.langchain_retriever import HybridRetriever

        return HybridRetriever
    raise AttributeError(name)
