"""Generate stage (optional, only with an LLM configured): the answer in the model's words,
every sentence checked against the passage it cites, or the extractive answer.

It runs after the policy, on a reply the policy already made: only kind `answer` and the
general-facts part of `medical_advice` are ever generated (the care-team notice stays first and
fixed); emergencies and every other kind never reach it. The passages in the prompt are the
composer's cited passages, then the next best retrieved ones (`PCL_LLM_PASSAGES`), each without
its planted sentences (`bot/safety/planted.py`).

The model's text is split into sentences as it streams; each sentence goes through the grounding
guard (`bot/answer/grounding.py`) at once: kept as a `Generated` part with this reply's citation
numbers, or dropped. The reply falls back to the extractive one when the model fails or too little
is left: no sentence kept, fewer than `PCL_LLM_MIN_KEPT` of them kept, or none citing the passage
the ranker put first.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from langchain_core.documents import Document

from bot.answer.grounding import GroundingGuard, Passage, Verdict
from bot.ingest.chunk import units_of
from bot.llm.chain import build_chain, number_passages, stream_text
from bot.llm.events import Checked, Drafting, Event, Final, Token
from bot.query import Query
from bot.reply import Citation, Generated, Reply
from bot.safety.planted import looks_planted
from bot.settings import LLMSettings
from bot.store.embed import Embedder

log = logging.getLogger(__name__)

GENERATED_KINDS = ("answer", "medical_advice")
MAX_DRAFTS = 5  # sentences judged per answer; the stream is closed after that

# A sentence ends at . ! or ? (then any [n] markers) before white space, or at a line break.
_END = re.compile(r"[.!?](?:\s*\[\s*\d{1,2}(?:\s*[,;]\s*\d{1,2})*\s*\])*(?=\s)|\n")
_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|vs|etc|Dr|Mr|Ms|Mrs|No|approx|Fig|al)|\b[A-Z]|^\s*\d+)\.$")


class SentenceSplitter:
    """Cuts streamed text into sentences, each with the markers that follow its full stop."""

    def __init__(self) -> None:
        self.buffer = ""

    def feed(self, text: str) -> list[str]:
        self.buffer += text
        out = []
        while True:
            cut = self._cut()
            if cut is None:
                return out
            sentence, self.buffer = self.buffer[:cut], self.buffer[cut:]
            if _worth_judging(sentence):
                out.append(sentence.strip())

    def close(self) -> list[str]:
        rest, self.buffer = self.buffer.strip(), ""
        return [rest] if _worth_judging(rest) else []

    def _cut(self) -> int | None:
        for m in _END.finditer(self.buffer):
            after = self.buffer[m.end() :]
            if not after.strip():
                return None  # what follows (a marker, the next sentence) has not arrived yet
            if after.lstrip().startswith("[") and m.group(0) != "\n":
                continue  # "... BCMA. [1]": the marker belongs to this sentence
            if m.group(0) != "\n" and _ABBREV.search(self.buffer[: m.start() + 1]):
                continue
            return m.end()
        return None


def _worth_judging(sentence: str) -> bool:
    """Fragments without words ("1.", "[2]", a lone dash) are skipped, not counted as drops."""
    return len(re.findall(r"[A-Za-z]{2,}", re.sub(r"\[[^\]]*\]", "", sentence))) >= 2


@dataclass
class _Prompt:
    passages: list[Passage]
    chunks: dict[int, Document]
    lead: int  # the passage the ranker put first (the composer's [1])


def build_prompt(q: Query, reply: Reply, n_passages: int, embedder: Embedder) -> _Prompt:
    """The numbered passages: the composer's cited ones first (so [1] stays the ranker's best),
    then the best remaining retrieved ones; planted sentences are left out of every one."""
    hits = [c.hit for c in q.chosen] + list(q.hits)
    by_text = {h.chunk.page_content: h.chunk for h in hits}
    ordered: list[Document] = []
    seen: set[str] = set()
    for text in [c.passage for c in reply.citations] + [h.chunk.page_content for h in q.hits]:
        if len(ordered) >= max(n_passages, len(reply.citations)):
            break
        if text in by_text and text not in seen:
            seen.add(text)
            ordered.append(by_text[text])
    texts: list[str] = []
    spans: list[tuple[int, int, int]] = []  # per passage: row of the whole text, first and end row
    sentences_of: list[list[str]] = []
    for chunk in ordered:
        sentences = [u.text.strip() for u in units_of(chunk) if u.text.strip() and not looks_planted(u.text)]
        sentences_of.append(sentences)
        whole = len(texts)
        texts.append(" ".join(sentences))
        texts.extend(sentences)
        spans.append((whole, whole + 1, len(texts)))
    vecs = embedder.embed_many(texts)
    passages = [
        Passage(n, tuple(sentences), vecs[whole], vecs[a:b], key=chunk.metadata.get("id", ""))
        for n, (chunk, sentences, (whole, a, b)) in enumerate(
            zip(ordered, sentences_of, spans, strict=True), start=1
        )
    ]
    return _Prompt(passages, dict(enumerate(ordered, start=1)), lead=1)


class Generate:
    """The optional stage: `stream(q, reply, started)` yields tokens, checked sentences, the reply."""

    def __init__(
        self, settings: LLMSettings, embedder: Embedder, chat_model=None, max_sentences: int = 3
    ) -> None:
        """`chat_model`: any LangChain chat model; by default the configured one is loaded.
        `max_sentences` (`PCL_MAX_SENTENCES`): the stream is closed once that many are kept."""
        if chat_model is None:
            from bot.llm.models import load_chat_model

            chat_model = load_chat_model(settings)
        self.settings = settings
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.chain = build_chain(chat_model)
        # One in-process model computes one answer at a time (an endpoint handles its own queue).
        self._lock = threading.Lock() if not settings.base_url else None

    def applies(self, reply: Reply) -> bool:
        return reply.kind in GENERATED_KINDS and bool(reply.quotes) and bool(reply.citations)

    def __call__(self, q: Query, reply: Reply, started: float) -> Reply:
        final = reply
        for event in self.stream(q, reply, started):
            if isinstance(event, Final):
                final = event.reply
        return final

    def stream(self, q: Query, reply: Reply, started: float) -> Iterator[Event]:
        if not self.applies(reply):
            yield Final(reply)
            return
        t0 = time.perf_counter()
        yield Drafting(reply)
        prompt = self._prompt(q, reply)
        guard = GroundingGuard(prompt.passages, self.embedder.embed, self.settings.min_similarity)
        inputs = {
            "passages": number_passages([(p.n, list(p.sentences)) for p in prompt.passages]),
            "question": q.resolved or q.cleaned or q.raw,
        }
        numbers: dict[int, int] = {}  # prompt passage number -> this reply's citation number
        kept: list[tuple[Generated, Verdict]] = []
        verdicts: list[Verdict] = []
        first_token: float | None = None
        failed = ""
        splitter = SentenceSplitter()

        def judge(sentence: str) -> Checked:
            v = guard.check(sentence)
            if v.ok and any(v.text == g.text for g, _ in kept):
                v = replace(v, reasons=("repeats an earlier sentence",))
            verdicts.append(v)
            if not v.ok:
                return Checked(None, sentence, v.reasons)
            for n in v.ns:
                numbers.setdefault(n, len(numbers) + 1)
            part = Generated(v.text, tuple(numbers[n] for n in v.ns), block=1)
            kept.append((part, v))
            return Checked(part, sentence)

        lock = self._lock or _NoLock()
        with lock:
            pieces = 0
            stream = stream_text(self.chain, inputs)
            try:
                for piece in stream:
                    if not piece:
                        continue
                    if first_token is None:
                        first_token = time.perf_counter()
                    yield Token(piece)
                    for sentence in splitter.feed(piece):
                        yield judge(sentence)
                    pieces += 1
                    if (
                        len(verdicts) >= MAX_DRAFTS
                        or len(kept) >= self.max_sentences
                        or pieces > self.settings.max_tokens
                    ):
                        break
                else:
                    for sentence in splitter.close():
                        yield judge(sentence)
            except Exception as exc:  # an endpoint down or slow, a model error: extractive
                failed = f"{type(exc).__name__}: {exc}"
                log.warning("LLM generation failed, giving the extractive answer: %s", failed)
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        done = time.perf_counter()
        timings = dict(reply.timings_ms) | {"generate": (done - t0) * 1000.0}
        if first_token is not None:
            timings["first_token"] = (first_token - t0) * 1000.0
        dropped = sum(not v.ok for v in verdicts)
        common = {"dropped": dropped, "drafted": len(verdicts), "timings_ms": timings}
        if failed or not self._enough(kept, verdicts, prompt.lead):
            yield Final(replace(reply, mode="extractive", latency_ms=(done - started) * 1000.0, **common))
            return
        parts = (*Drafting(reply).own_parts, *(g for g, _ in kept))
        citations = self._citations(prompt, numbers, kept)
        final = replace(
            reply,
            parts=parts,
            citations=citations,
            mode="generated",
            latency_ms=(time.perf_counter() - started) * 1000.0,
            **common,
        )
        yield Final(final)

    def _enough(self, kept: list, verdicts: list[Verdict], lead: int) -> bool:
        if not kept:
            return False
        if len(kept) / len(verdicts) < self.settings.min_kept:
            return False
        return any(lead in v.ns for _, v in kept)

    def _prompt(self, q: Query, reply: Reply) -> _Prompt:
        return build_prompt(q, reply, self.settings.passages, self.embedder)

    @staticmethod
    def _citations(prompt: _Prompt, numbers: dict[int, int], kept: list[tuple[Generated, Verdict]]):
        """One citation per cited passage, numbered in first-cited order; its quote is the
        passage sentences that support the kept sentences, word for word, in passage order."""
        support: dict[int, set[int]] = {}
        for _, v in kept:
            for n, idx in v.support.items():
                support.setdefault(n, set()).update(idx)
        by_n = {p.n: p for p in prompt.passages}
        out = []
        for n, m in sorted(numbers.items(), key=lambda kv: kv[1]):
            chunk, p = prompt.chunks[n], by_n[n]
            sentences = tuple(p.sentences[j] for j in sorted(support.get(n, ())))
            md = chunk.metadata
            out.append(
                Citation(
                    n=m,
                    source_id=md["source_id"],
                    title=md.get("title", ""),
                    url=md.get("url", ""),
                    section=md.get("section", ""),
                    quote=" ".join(sentences),
                    passage=chunk.page_content,
                    kind=md.get("kind", ""),
                    sentences=sentences,
                )
            )
        return tuple(out)


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
