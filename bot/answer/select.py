"""Select stage: the few sentences that answer, or none when nothing does.

First the relevance floor: a small learned model reads question-level signals (the best
sentence's probability, how much of the question the leading sentences cover, words no source
uses, the closest stored question) and says whether the sources answer this at all; under
`PCL_MIN_EVIDENCE` nothing is quoted. Then the best sentence leads, and others join while they
score within `PCL_SENTENCE_MARGIN` of it. The same fact told by two sources is said once.
"""

from __future__ import annotations

from bot.answer.rank import Candidate, RankerModel, answerable_features
from bot.query import Query
from bot.settings import AnswerSettings

_NEAR_DUPLICATE = 0.85


class Select:
    def __init__(self, settings: AnswerSettings, model: RankerModel | None) -> None:
        self.s = settings
        self.model = model

    def __call__(self, q: Query) -> None:
        ranked = sorted(q.candidates, key=lambda c: (-c.score, c.hit.rank, c.j))
        answerable, in_scope = 0.0, 0.0
        if self.model is not None and q.hits:
            x = answerable_features(q, ranked)
            answerable = float(self.model.answerable.probability(x))
            in_scope = float(self.model.in_scope.probability(x))
        q.extra["answerable"], q.extra["in_scope"] = answerable, in_scope
        q.chosen = select(ranked, answerable, self.s)


def select(ranked: list[Candidate], answerable: float, s: AnswerSettings) -> list[Candidate]:
    """`ranked`: best first. The best sentence leads; then, among those within the margin, each
    next pick weighs its probability and the part of the question it covers that the chosen
    ones do not (a comparison gets both sides, a two-part question both parts)."""
    if not ranked or answerable < s.min_evidence:
        return []
    floor = ranked[0].score - s.sentence_margin
    pool = [c for c in ranked if c.score >= floor]
    chosen: list[Candidate] = [pool[0]]
    covered = set(pool[0].held)
    seen_text = {pool[0].unit.text.strip().lower()}
    rest = pool[1:]
    while rest and len(chosen) < s.max_sentences:
        best = max(rest, key=lambda c: c.score + s.coverage_bonus * len(c.held - covered))
        rest.remove(best)
        key = best.unit.text.strip().lower()
        # The same fact told by another source is said once.
        if key in seen_text or any(
            o.hit.chunk.id != best.hit.chunk.id and float(best.vec @ o.vec) > _NEAR_DUPLICATE for o in chosen
        ):
            continue
        chosen.append(best)
        covered |= best.held
        seen_text.add(key)
    return chosen
