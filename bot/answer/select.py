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
        answerable = 0.0
        if ranked and self.model is not None:
            answerable = float(self.model.answerable.probability(answerable_features(q, ranked)))
        q.extra["answerable"] = answerable
        q.chosen = select(ranked, answerable, self.s)


def select(ranked: list[Candidate], answerable: float, s: AnswerSettings) -> list[Candidate]:
    """`ranked`: best first."""
    if not ranked or answerable < s.min_evidence:
        return []
    floor = ranked[0].score - s.sentence_margin
    chosen: list[Candidate] = []
    seen_text: set[str] = set()
    for c in ranked:
        if len(chosen) >= s.max_sentences or c.score < floor:
            break
        key = c.unit.text.strip().lower()
        # Sentences of one passage are never duplicates of each other.
        if key in seen_text or any(
            o.hit.chunk.id != c.hit.chunk.id and float(c.vec @ o.vec) > _NEAR_DUPLICATE for o in chosen
        ):
            continue
        chosen.append(c)
        seen_text.add(key)
    return chosen
