"""Typed replies: the CLI, the app, the API and the evals render or score these parts.

A reply's answer is a tuple of parts, never text to re-parse:

- `Notice`: words in the bot's own voice (care team, crisis line, "the sources don't cover
  that"), fixed texts with their phone actions as data;
- `Framing`: a short line that introduces quotes ("In general, the sources say:");
- `Quote`: one sentence of a source, word for word, with the number of its citation;
- `Generated`: one sentence written by a language model (only with an LLM configured), with the
  numbers of the citations it was checked against (`bot/answer/grounding.py`).

`Reply.answer` is the Markdown the JSON contract promises, rendered from the parts here, once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property

# The reply kinds of the JSON contract (README). `support` was added for distress without risk.
KINDS = ("answer", "not_found", "out_of_scope", "medical_advice", "emergency", "invalid", "support")
# Why an `emergency` reply was given (`Reply.reason`); other kinds may carry finer reasons.
EMERGENCY_REASONS = ("self_harm", "symptoms", "poisoning", "harm_to_others")


@dataclass(frozen=True)
class Action:
    """Something a person can tap: call or text a number."""

    kind: str  # call | text
    number: str
    label: str  # what the button says: "Call 988", "Text 988"

    @property
    def href(self) -> str:
        digits = "".join(ch for ch in self.number if ch.isdigit() or ch == "+")
        return f"{'tel' if self.kind == 'call' else 'sms'}:{digits}"


@dataclass(frozen=True)
class Notice:
    """A fixed text in the bot's voice. `headline` is shown first and strong."""

    text: str
    headline: str = ""
    tone: str = "info"  # urgent | care | info
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class Framing:
    """A line of ours that introduces the quotes after it."""

    text: str


@dataclass(frozen=True)
class Quote:
    """One source sentence, word for word, and the citation it comes from."""

    text: str
    n: int
    block: int = 0  # quotes of one block are shown as one paragraph (one passage)
    list_item: bool = False
    speaker: str = ""  # "The author, Paul Kleutghen,": shown as `<speaker> writes: “…”`
    quoted: bool = False  # in quotation marks (the author's own words after the first)


@dataclass(frozen=True)
class Generated:
    """One sentence a language model wrote, kept only because it passed the grounding guard
    against every passage it cites (`ns`, this reply's citation numbers)."""

    text: str  # without citation markers
    ns: tuple[int, ...]
    block: int = 0  # sentences of one block are shown as one paragraph


Part = Notice | Framing | Quote | Generated


@dataclass(frozen=True)
class Citation:
    n: int
    source_id: str
    title: str
    url: str
    section: str
    quote: str  # the exact cited sentences, joined
    passage: str = ""  # the whole retrieved passage, for context
    kind: str = ""  # article | trial | glossary
    sentences: tuple[str, ...] = ()  # the cited sentences one by one (to highlight in `passage`)

    def to_json(self) -> dict:
        """The stable CLI/API contract (README "JSON contract")."""
        return {
            "n": self.n,
            "source_id": self.source_id,
            "title": self.title,
            "url": self.url,
            "section": self.section,
            "quote": self.quote,
        }


@dataclass(frozen=True)
class Retrieved:
    chunk_id: str
    source_id: str
    section: str
    score: float


@dataclass(frozen=True)
class Reply:
    question: str
    parts: tuple[Part, ...]
    kind: str
    citations: tuple[Citation, ...]
    disclaimer: str
    latency_ms: float
    resolved_question: str = ""
    reason: str = ""  # why the policy chose the kind (self_harm, symptoms, too_long, ...)
    evidence: float = 0.0  # the leading sentence's score
    retrieved: tuple[Retrieved, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    follow_ups: tuple[str, ...] = ()  # questions the sources answer, to offer next
    # Answers from an LLM (README "Answers from an LLM"): `generated` when the answer's sentences
    # are the model's (each passed the grounding guard), else `extractive`; `dropped` counts the
    # model's sentences the guard removed (also when the reply fell back to extractive).
    mode: str = "extractive"
    dropped: int = 0
    drafted: int = 0  # sentences the model wrote (evals: the guard's drop rate); not in the JSON

    @cached_property
    def answer(self) -> str:
        """The parts as Markdown with [n] markers (the JSON contract's `answer`)."""
        return markdown(self.parts)

    @property
    def quotes(self) -> tuple[Quote, ...]:
        return tuple(p for p in self.parts if isinstance(p, Quote))

    @property
    def generated(self) -> tuple[Generated, ...]:
        return tuple(p for p in self.parts if isinstance(p, Generated))

    @property
    def notices(self) -> tuple[Notice, ...]:
        return tuple(p for p in self.parts if isinstance(p, Notice))

    def to_json(self, id: str | None = None) -> dict:
        out: dict = {} if id is None else {"id": id}
        out |= {
            "question": self.question,
            "answer": self.answer,
            "kind": self.kind,
            "reason": self.reason,
            "citations": [c.to_json() for c in self.citations],
            "follow_ups": list(self.follow_ups),
            "disclaimer": self.disclaimer,
            "latency_ms": round(self.latency_ms, 2),
            "mode": self.mode,
            "dropped": self.dropped,
        }
        return out

    def sources_text(self) -> str:
        lines = []
        for c in self.citations:
            section = c.section if c.section[-1:] in ".?!" else f"{c.section}."
            lines.append(f"[{c.n}] {c.title} — {section} {c.url}\n    “{c.quote}”")
        return "\n".join(lines)

    def to_text(self) -> str:
        """The whole reply as plain text: answer, sources, disclaimer (CLI, API clients)."""
        parts = [plain_text(self.parts)]
        if self.citations:
            parts.append("Sources:\n" + self.sources_text())
        parts.append(self.disclaimer)
        return "\n\n".join(parts)

    def as_dict(self) -> dict:
        return asdict(self) | {"answer": self.answer}


def quote_text(q: Quote) -> str:
    """A quote as shown: framed with its speaker, or in quotation marks."""
    if q.speaker:
        return f"{q.speaker} writes: “{q.text}”"
    if q.quoted:
        return f"“{q.text}”"
    return q.text


def _blocks(parts: tuple[Part, ...], notice: callable, cite: callable) -> list[str]:
    """Paragraphs: each notice and framing alone; a block's quotes together, list items on lines."""
    out: list[str] = []
    block: list[Quote] = []
    generated_block: tuple[int, int] | None = None  # (paragraph count, block) of the last sentence

    def flush() -> None:
        if not block:
            return
        text = ""
        for q in block:
            line = f"{quote_text(q)}{cite(q.n)}"
            if q.list_item:
                text += ("\n" if text else "") + "- " + line
            else:
                sep = "\n" if text.rsplit("\n", 1)[-1].startswith("- ") else (" " if text else "")
                text += sep + line
        out.append(text)
        block.clear()

    for p in parts:
        if isinstance(p, Generated):
            flush()
            line = p.text + "".join(cite(n) for n in p.ns)
            if out and generated_block == (len(out), p.block):
                out[-1] += " " + line
            else:
                out.append(line)
            generated_block = (len(out), p.block)
            continue
        if isinstance(p, Quote):
            if block and block[-1].block != p.block:
                flush()
            block.append(p)
            continue
        flush()
        out.append(notice(p) if isinstance(p, Notice) else p.text)
    flush()
    return out


def markdown(parts: tuple[Part, ...]) -> str:
    def notice(n: Notice) -> str:
        return f"**{n.headline}** {n.text}".strip() if n.headline else n.text

    return "\n\n".join(_blocks(parts, notice, lambda n: f" [{n}]"))


def plain_text(parts: tuple[Part, ...]) -> str:
    def notice(n: Notice) -> str:
        return f"{n.headline} {n.text}".strip() if n.headline else n.text

    return "\n\n".join(_blocks(parts, notice, lambda n: f" [{n}]"))
