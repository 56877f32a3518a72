"""Select stage: the few sentences that answer, or none when nothing does.

The leading sentence must be strong enough and about what was asked (coverage or very close
meaning): "What is the two-year survival of the CT0596 patients?" resembles "the first two PCL
patients dosed with CT0596", but that sentence says nothing about survival.
"""

from __future__ import annotations

from bot.answer.rank import Candidate
from bot.query import Query
from bot.settings import AnswerSettings

_NEAR_DUPLICATE = 0.85


class Select:
    def __init__(self, settings: AnswerSettings) -> None:
        self.s = settings

    def __call__(self, q: Query) -> None:
        q.chosen = select(q.candidates, self.s)


def answers(c: Candidate, s: AnswerSettings) -> bool:
    """Can this sentence lead an answer: strong enough, and about what was asked?"""
    return c.score >= s.min_evidence and (c.coverage >= s.min_coverage or c.similarity >= s.sure_similarity)


def select(candidates: list[Candidate], s: AnswerSettings) -> list[Candidate]:
    ranked = sorted(candidates, key=lambda c: -c.score)
    lead = next((c for c in ranked if answers(c, s)), None)
    if lead is None or lead.score < ranked[0].score - s.sentence_margin:
        return []
    ranked = [lead] + [c for c in ranked if c is not lead]
    floor = max(s.min_evidence, ranked[0].score - s.sentence_margin)
    chosen: list[Candidate] = []
    seen_text: set[str] = set()
    for c in ranked:
        if len(chosen) >= s.max_sentences or c.score < floor:
            break
        key = c.unit.text.strip().lower()
        # The same fact told by another source is said once; sentences of one passage are never
        # duplicates of each other.
        if key in seen_text or any(
            o.hit.chunk.id != c.hit.chunk.id and float(c.vec @ o.vec) > _NEAR_DUPLICATE for o in chosen
        ):
            continue
        chosen.append(c)
        seen_text.add(key)
    return chosen
