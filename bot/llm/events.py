"""What `Companion.ask_stream` yields, in order: the reply being drafted, tokens, checked
sentences, then the final reply.

    for event in bot.ask_stream("What is CT0596?"):
        if isinstance(event, Drafting): ...  # the model starts: show event.own_parts (the
                                             # care-team notice of medical advice) above its text
        elif isinstance(event, Token): ...   # model text as it arrives, not yet checked
        elif isinstance(event, Checked): ... # one sentence judged: replace its tokens with
                                             # event.part (kept) or remove them (event.part is None)
        elif isinstance(event, Final): ...   # the reply to show and keep (may be the extractive one)

Only a reply the policy gave kind `answer` or `medical_advice`, with an LLM configured, streams
(`Drafting` first, then tokens); every other reply (emergencies first) is one `Final` at once. The `Final` reply is
what `Companion.ask` returns for the same question.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.reply import Generated, Part, Quote, Reply


@dataclass(frozen=True)
class Drafting:
    """The model is about to write this reply's answer (the policy's reply, kind `answer` or
    `medical_advice`). Its own parts, the ones that are not quotes, stay first whatever happens."""

    reply: Reply

    @property
    def own_parts(self) -> tuple[Part, ...]:
        return tuple(p for p in self.reply.parts if not isinstance(p, Quote))


@dataclass(frozen=True)
class Token:
    """A piece of the model's text as it arrives: provisional, shown greyed until checked."""

    text: str


@dataclass(frozen=True)
class Checked:
    """One sentence of the model judged by the grounding guard. `part` is what to show in place
    of its tokens (this reply's citation numbers), or None when it was dropped (`reasons`)."""

    part: Generated | None
    draft: str  # the sentence as the model wrote it
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Final:
    """The finished reply: generated (every sentence checked) or the extractive fallback."""

    reply: Reply


Event = Drafting | Token | Checked | Final
