"""Read the corpus folder into LangChain Documents, one per section.

Three kinds of source: the article (Markdown with front matter), the glossary (Markdown, one
`##` section per term) and trial records (ClinicalTrials.gov API v2 JSON, see `trials.py`).
Every Document carries the metadata a citation needs: source_id, kind, title, url, section.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from langchain_core.documents import Document

from bot.errors import CorpusError
from bot.ingest.trials import load_trial_documents

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$", re.MULTILINE)
_MD_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_REFERENCE = re.compile(r"^Reference:\s*(https?://\S+)\s*$", re.MULTILINE)

REQUIRED_FRONT_MATTER = ("source_id", "kind", "title", "url")


def read_utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CorpusError(path, "(encoding)", "is not UTF-8 text", "save the file as UTF-8") from None


def split_front_matter(path: Path, text: str) -> tuple[dict, str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        raise CorpusError(path, "front matter", "is missing", "start the file with a --- block")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())  # PyYAML spreads its message over several lines
        raise CorpusError(path, "front matter", f"is not valid YAML: {detail}") from None
    if not isinstance(meta, dict):
        raise CorpusError(path, "front matter", "is not a mapping of field: value")
    for key in REQUIRED_FRONT_MATTER:
        if not str(meta.get(key) or "").strip():
            raise CorpusError(path, key, "is missing or empty", "add it to the front matter")
    return meta, text[match.end() :]


def markdown_sections(body: str) -> list[tuple[str, str]]:
    """(heading, text) for each `##`-or-deeper section; the `#` title line is dropped."""
    sections: list[tuple[str, str]] = []
    matches = list(_HEADING.finditer(body))
    for i, m in enumerate(matches):
        if len(m.group(1)) == 1:
            continue
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        text = body[m.end() : end].strip()
        if text:
            sections.append((m.group(2), text))
    return sections


def _base_metadata(meta: dict) -> dict:
    keep = ("source_id", "kind", "title", "url", "author", "publisher")
    return {k: str(meta[k]) for k in keep if meta.get(k)}


def load_article(path: Path) -> list[Document]:
    meta, body = split_front_matter(path, read_utf8(path))
    sections = markdown_sections(body)
    if not sections:
        raise CorpusError(path, "body", "has no '## ' sections with text", "is the article empty?")
    docs = []
    for order, (heading, text) in enumerate(sections):
        # Links become their text: the quote stays word for word, the target stays in metadata.
        links = _MD_LINK.findall(text)
        text = _MD_LINK.sub(r"\1", text)
        md = _base_metadata(meta) | {"section": heading, "section_order": order}
        if links:
            md["links"] = " ".join(url for _, url in links)
        docs.append(Document(page_content=text, metadata=md))
    return docs


def load_glossary(path: Path) -> list[Document]:
    meta, body = split_front_matter(path, read_utf8(path))
    docs = []
    for order, (term, text) in enumerate(markdown_sections(body)):
        ref = _REFERENCE.search(text)
        if not ref:
            raise CorpusError(
                path, f"{term} / Reference", "is missing", "end the entry with 'Reference: <url>'"
            )
        definition = _REFERENCE.sub("", text).strip()
        if not definition:
            raise CorpusError(path, f"{term} / definition", "is empty")
        md = _base_metadata(meta) | {"section": term, "section_order": order, "url": ref.group(1)}
        docs.append(Document(page_content=definition, metadata=md))
    if not docs:
        raise CorpusError(path, "entries", "has no '## Term' sections")
    return docs


def load_corpus(corpus_dir: Path) -> list[Document]:
    """Every section of every source, in a stable order (article, trials, glossary)."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusError(corpus_dir, "corpus folder", "does not exist", "set PCL_CORPUS_DIR")
    docs: list[Document] = []
    articles = sorted(p for p in corpus_dir.glob("*.md") if p.name != "glossary.md")
    if not articles:
        raise CorpusError(corpus_dir, "article", "is missing", "put the article as <name>.md there")
    for path in articles:
        docs += load_article(path)
    for path in sorted((corpus_dir / "trials").glob("*.json")):
        docs += load_trial_documents(path)
    glossary = corpus_dir / "glossary.md"
    if glossary.exists():
        docs += load_glossary(glossary)
    return docs


def corpus_files(corpus_dir: Path) -> list[Path]:
    """The files whose content defines the index (for the fingerprint)."""
    corpus_dir = Path(corpus_dir)
    files = sorted(corpus_dir.glob("*.md")) + sorted((corpus_dir / "trials").glob("*.json"))
    # Trained artefacts (the safety classifier, the sentence ranker) change what the deployed pipeline does: a new one
    # is a new index fingerprint, so replicas never mix versions.
    files += sorted(p for p in (corpus_dir / "models").rglob("*") if p.is_file())
    files += sorted((corpus_dir / "questions").glob("*.yaml"))
    return files
