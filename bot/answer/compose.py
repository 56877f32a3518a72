"""Compose stage: the chosen sentences as cited quotes, in a readable order, with their sources.

Nothing here writes a claim of its own. Every quote is a sentence of a source, with the number
of the passage it came from; the only words we add are framing ("The author, Paul Kleutghen,
writes:"). A sentence that leans on the one before ("This product ...") brings it along, and a
lead-in ending in ":" brings its list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.answer.rank import Candidate, first_person
from bot.ingest.chunk import units_of
from bot.query import Query
from bot.reply import Citation, Quote
from bot.safety.planted import looks_planted

_ANAPHOR = re.compile(r"^(This|These|That|Those|It|Its|They|Their|Both|Such|Still|However)\b")


@dataclass(frozen=True)
class Composition:
    quotes: tuple[Quote, ...]
    citations: tuple[Citation, ...]
    evidence: float  # the leading sentence's score

    @property
    def empty(self) -> bool:
        return not self.citations


class Compose:
    def __call__(self, q: Query) -> None:
        q.composition = compose(q.chosen, q.candidates)


def _with_context(chosen: list[Candidate]) -> dict[str, list[int]]:
    """Unit indexes to quote per passage: the chosen ones, the sentence an anaphor leans on, and
    the list after a lead-in."""
    picked: dict[str, set[int]] = {}
    units_by_chunk = {}
    for c in chosen:
        units = units_by_chunk.setdefault(c.hit.chunk.id, units_of(c.hit.chunk))
        idx = picked.setdefault(c.hit.chunk.id, set())
        idx.add(c.j)
        j = c.j
        while j > 0 and _ANAPHOR.match(units[j].text) and not units[j - 1].label:
            j -= 1
            idx.add(j)
        k = c.j
        while k < len(units) and units[k].text.rstrip().endswith(":"):
            k += 1  # "Eligibility criteria for ...:" then "Inclusion Criteria:" then the list
            idx.add(min(k, len(units) - 1))
        if k > c.j:
            while k < len(units) and units[k].list_item:
                idx.add(k)
                k += 1
    # Context is quoted too, so it passes the same check as a chosen sentence.
    return {
        cid: sorted(j for j in js if not looks_planted(units_by_chunk[cid][j].text))
        for cid, js in picked.items()
    }


def compose(chosen: list[Candidate], candidates: list[Candidate]) -> Composition:
    if not chosen:
        return Composition((), (), max((c.score for c in candidates), default=0.0))
    by_chunk = _with_context(chosen)
    chunk_rank: dict[str, int] = {}
    for c in chosen:
        chunk_rank.setdefault(c.hit.chunk.id, len(chunk_rank))
    hit_by_id = {c.hit.chunk.id: c.hit for c in chosen}
    quotes: list[Quote] = []
    citations: list[Citation] = []
    # Readable order: the best passage first, each passage's sentences in document order.
    for n, cid in enumerate(sorted(by_chunk, key=lambda k: chunk_rank[k]), start=1):
        chunk = hit_by_id[cid].chunk
        md = chunk.metadata
        units = units_of(chunk)
        author = md.get("author", "") if md.get("kind") == "article" else ""
        framed_once = False
        for j in by_chunk[cid]:
            unit = units[j]
            framed = md.get("kind") == "article" and first_person(unit.text)
            speaker = ""
            if framed and not framed_once:
                speaker = f"The author, {author}," if author else "The author"
            quotes.append(
                Quote(
                    unit.text.strip(),
                    n,
                    block=n,
                    list_item=unit.list_item,
                    speaker=speaker,
                    quoted=framed and framed_once,
                )
            )
            framed_once = framed_once or framed
        quoted = tuple(units[j].text.strip() for j in by_chunk[cid])
        citations.append(
            Citation(
                n=n,
                source_id=md["source_id"],
                title=md.get("title", ""),
                url=md.get("url", ""),
                section=md.get("section", ""),
                quote=" ".join(quoted),
                passage=chunk.page_content,
                kind=md.get("kind", ""),
                sentences=quoted,
            )
        )
    return Composition(tuple(quotes), tuple(citations), chosen[0].score)
