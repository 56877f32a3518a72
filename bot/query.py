"""The state one question carries through the pipeline's stages (see `bot/pipeline.py`).

Each stage reads what earlier stages wrote and adds its own fields; none rewrites another's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # types only: the stages' modules import this one
    from bot.answer.analyse import Analysis
    from bot.answer.compose import Composition
    from bot.answer.rank import Candidate
    from bot.retrieval.questions import QuestionMatches
    from bot.retrieval.search import Hit
    from bot.safety.assess import Assessment


@dataclass
class Query:
    raw: str  # what the person typed
    history: tuple[dict, ...] = ()  # earlier turns, {"role", "content"}, well-formed only
    # guard
    cleaned: str = ""  # markup, links and invisible characters removed
    problem: str = ""  # why the input cannot be answered at all (empty, too_long, ...)
    risk: Assessment | None = None  # what the safety layer found, in this turn and earlier ones
    # resolve
    resolved: str = ""  # the question with what "it" refers to made explicit
    # analyse
    analysis: Analysis | None = None  # topic words, codes, the kind of answer wanted
    vector: np.ndarray | None = None  # embedding of the resolved question
    # retrieve, rank, select, compose
    matches: QuestionMatches | None = None  # stored questions close to this one, per sentence
    hits: list[Hit] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    chosen: list[Candidate] = field(default_factory=list)
    composition: Composition | None = None
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # diagnostics for evals and benchmarks

    @property
    def user_turns(self) -> list[str]:
        return [t["content"] for t in self.history if t.get("role") == "user"]
