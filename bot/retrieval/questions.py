"""Stored questions as extra vectors for their sentences (LangChain's MultiVectorRetriever idea).

A person's question is compared with every stored question (one matrix product: the set is
small); each sentence then gets the similarity of the closest stored question that it answers,
and each passage the best of its sentences. Ranking and retrieval read these as one more signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class QuestionMatches:
    by_sentence: dict[tuple[str, int], float] = field(default_factory=dict)  # (chunk id, j) -> cosine
    by_chunk: dict[str, float] = field(default_factory=dict)  # chunk id -> best cosine
    # (cosine, stored question, its target sentences), best first
    best: list[tuple[float, str, tuple[tuple[str, int], ...]]] = field(default_factory=list)


def suggestions(
    matches: QuestionMatches | None, answered: set[tuple[str, int]], n: int = 3
) -> tuple[str, ...]:
    """Questions to offer next: stored questions close to this one whose sentences were not
    quoted, plainly worded (a capital letter and a question mark), one per set of sentences."""
    if matches is None:
        return ()
    out, seen = [], set()
    for _, text, targets in matches.best:
        if len(out) >= n:
            break
        plain = text[:1].isupper() and text.rstrip().endswith("?")
        if not plain or set(targets) <= answered or targets in seen:
            continue
        seen.add(targets)
        out.append(text)
    return tuple(out)


class StoredQuestions:
    def __init__(self, vectors: np.ndarray, texts: list[str], targets: list[list[tuple[str, int]]]) -> None:
        self.vectors = vectors
        self.texts = texts
        self.targets = targets

    def __len__(self) -> int:
        return len(self.texts)

    def match(
        self, qvec: np.ndarray, top: int = 24, exclude: frozenset[int] = frozenset()
    ) -> QuestionMatches:
        """`exclude`: stored questions to leave out (training asks them of themselves)."""
        out = QuestionMatches()
        if qvec is None or not len(self.texts):
            return out
        sims = self.vectors @ qvec
        if exclude:
            sims = sims.copy()
            sims[list(exclude)] = -1.0
        top = min(top, len(sims))
        idx = np.argpartition(-sims, top - 1)[:top]
        for i in idx[np.argsort(-sims[idx])]:
            s = float(sims[i])
            out.best.append((s, self.texts[i], tuple(self.targets[i])))
            for cid, j in self.targets[i]:
                if s > out.by_sentence.get((cid, j), -1.0):
                    out.by_sentence[(cid, j)] = s
                if s > out.by_chunk.get(cid, -1.0):
                    out.by_chunk[cid] = s
        return out
