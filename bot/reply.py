"""Typed results: the UI, the CLI and the evals render or score these, never re-parse text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

KINDS = ("answer", "not_found", "out_of_scope", "medical_advice", "emergency", "invalid")


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
    answer: str  # Markdown; citation markers [n] refer to `citations`
    kind: str
    citations: tuple[Citation, ...]
    disclaimer: str
    latency_ms: float
    resolved_question: str = ""
    reason: str = ""  # why triage chose the kind (self_harm, symptoms, too_long, ...)
    evidence: float = 0.0  # best sentence score; compared with PCL_MIN_EVIDENCE
    retrieved: tuple[Retrieved, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self, id: str | None = None) -> dict:
        out: dict = {} if id is None else {"id": id}
        out |= {
            "question": self.question,
            "answer": self.answer,
            "kind": self.kind,
            "citations": [c.to_json() for c in self.citations],
            "disclaimer": self.disclaimer,
            "latency_ms": round(self.latency_ms, 2),
        }
        return out

    def sources_markdown(self) -> str:
        lines = []
        for c in self.citations:
            section = c.section if c.section[-1:] in ".?!" else f"{c.section}."
            lines.append(f"[{c.n}] {c.title} — {section} {c.url}\n    “{c.quote}”")
        return "\n".join(lines)

    def to_text(self) -> str:
        """The whole reply as plain text: answer, sources, disclaimer (CLI, API clients)."""
        parts = [self.answer]
        if self.citations:
            parts.append("Sources:\n" + self.sources_markdown())
        parts.append(self.disclaimer)
        return "\n\n".join(parts)

    def as_dict(self) -> dict:
        return asdict(self)
