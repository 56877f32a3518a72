"""Guard stage: screen the message, then judge its risk and the risk said in earlier turns.

The learned classifier gives recall in any wording; the plain patterns are a backstop that can
only add a risk. A risk said earlier in the conversation (an emergency category) carries into
the follow-ups, so "what's the survival for sPCL?" after "I want to end it" is not answered with
a statistic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.query import Query
from bot.safety import rules
from bot.safety.policy import CARRIED, NONE, SYMPTOMS, first
from bot.safety.screen import screen
from bot.settings import SafetySettings


@dataclass(frozen=True)
class Assessment:
    category: str  # the category that decides the reply (policy precedence), or "none"
    found: frozenset[str] = frozenset()  # categories found in this message
    carried: str = ""  # an emergency category said in an earlier turn, if any
    injection: bool = False  # an attempt to change the bot's rules
    scores: dict[str, float] = field(default_factory=dict)  # the classifier's, for diagnostics


class Guard:
    def __init__(self, settings: SafetySettings, classifier=None, prefetch=None) -> None:
        """`prefetch(text)`: start embedding the message on the side while it is classified (a
        single-turn question is usually embedded as typed, so its vector is ready for analyse)."""
        self.settings = settings
        self.classifier = classifier if settings.classifier else None
        self.prefetch = prefetch

    def __call__(self, q: Query) -> None:
        screened = screen(q.raw, self.settings.max_question_chars)
        q.cleaned, q.problem = screened.text, screened.problem
        if q.problem:
            return
        if self.prefetch is not None and not q.history:
            self.prefetch(screened.text)
        found, scores = self.categories(screened.text, screened.probe)
        carried = ""
        for turn in q.user_turns[-self.settings.history_turns :] if self.settings.history_turns else []:
            earlier = screen(turn, self.settings.max_question_chars)
            if earlier.problem:
                continue
            cats, _ = self.categories(earlier.text, earlier.probe)
            said = first((cats & set(CARRIED)) | ({carried} if carried else set()))
            carried = "" if said == NONE else said
        q.risk = Assessment(
            category=first(found | ({carried} if carried else set())),
            found=frozenset(found),
            carried=carried,
            injection=rules.is_injection(screened.probe),
            scores=scores,
        )

    def categories(self, text: str, probe: str) -> tuple[set[str], dict[str, float]]:
        found = rules.backstop(probe)
        scores: dict[str, float] = {}
        if self.classifier is not None:
            cats, scores = self.classifier.classify(text)
            # Symptom words also appear in past events and idioms ("a seizure two years ago,
            # fine since"): they add a risk unless the model is sure the message is ordinary.
            veto = self.settings.symptom_words_veto
            if veto < 1.0 and scores.get(NONE, 0.0) >= veto:
                found.discard(SYMPTOMS)
            found |= cats
        return found, scores
