"""Shared helpers for the reliability tests (issue 6): test corpora, tmp indexes, one model.

Every helper works on the real components: the bundled embedding model, real Chroma stores in
temporary folders, real subprocesses. Nothing here touches the repository's `index/` or
`corpus/`; tests copy what they need into `tmp_path`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import bot  # noqa: F401  (offline defaults before any other library import)
from bot.settings import REPO_ROOT, Settings

CORPUS = REPO_ROOT / "corpus"
VALID_KINDS = {"answer", "not_found", "out_of_scope", "medical_advice", "emergency", "invalid"}


# ---------------------------------------------------------------- corpora


def copy_corpus(dst: Path) -> Path:
    """A full copy of the real corpus, to break or extend without touching the repository."""
    shutil.copytree(CORPUS, dst)
    return dst


def small_corpus(dst: Path) -> Path:
    """A real but small corpus (first sections of the article, one trial, three glossary terms).

    It goes through the same loaders, chunker, model and Chroma as the real one, but builds in
    a second or two, so fault tests can rebuild an index many times within the time budget.
    """
    dst.mkdir(parents=True)
    (dst / "trials").mkdir()
    article = (CORPUS / "article.md").read_text(encoding="utf-8")
    parts = re.split(r"(?m)^(?=## )", article)
    (dst / "article.md").write_text("".join(parts[:3]), encoding="utf-8")  # front matter + 2 sections
    glossary = (CORPUS / "glossary.md").read_text(encoding="utf-8")
    parts = re.split(r"(?m)^(?=## )", glossary)
    (dst / "glossary.md").write_text("".join(parts[:4]), encoding="utf-8")
    shutil.copy(CORPUS / "trials" / "NCT06333509.json", dst / "trials")
    return dst


def add_glossary_entry(corpus_dir: Path, term: str, text: str, url: str) -> None:
    with open(corpus_dir / "glossary.md", "a", encoding="utf-8") as f:
        f.write(f"\n## {term}\n\n{text}\n\nReference: {url}\n")


def settings_for(corpus_dir: Path, index_dir: Path, **overrides) -> Settings:
    """Settings as the app reads them, pointed at a test corpus and a test index folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PCL_", "CHROMA_"))}
    env |= {"PCL_CORPUS_DIR": str(corpus_dir), "PCL_INDEX_DIR": str(index_dir)}
    return Settings.from_env(env).with_overrides(**overrides)


# ---------------------------------------------------------------- model and companions


class RememberingEmbeddings:
    """The real bundled model, remembering the vectors it already computed for a text.

    Fault tests rebuild the same small corpus many times; the vectors are the model's own, the
    model just does not recompute them. Everything else (Chroma, files, locks) runs for real.
    """

    def __init__(self, model) -> None:
        self.model = model
        self._docs: dict[str, list[float]] = {}
        self._queries: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._docs]
        if missing:
            self._docs.update(zip(missing, self.model.embed_documents(missing), strict=True))
        return [self._docs[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        if text not in self._queries:
            self._queries[text] = self.model.embed_query(text)
        return self._queries[text]


@functools.lru_cache(maxsize=1)
def shared_embeddings() -> RememberingEmbeddings:
    """The bundled model, loaded once per test process (pytest imports this module once)."""
    from bot.embed import load_embeddings

    return RememberingEmbeddings(load_embeddings(Settings.from_env()))


@contextlib.contextmanager
def reusing_model() -> Iterator[None]:
    """Let `Companion(...)` reuse the already loaded model instead of loading it again."""
    import bot.engine

    original = bot.engine.load_embeddings
    bot.engine.load_embeddings = lambda settings: shared_embeddings()
    try:
        yield
    finally:
        bot.engine.load_embeddings = original


def companion_for(settings: Settings):
    from bot.engine import Companion

    with reusing_model():
        return Companion(settings, progress=False)


# ---------------------------------------------------------------- index folders


def current_store(index_dir: Path) -> str:
    return (Path(index_dir) / "CURRENT").read_text(encoding="utf-8").strip()


def store_folders(index_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(index_dir).glob("store-*"))


def clone_index(src: Path, dst: Path) -> Path:
    """Copy a built index folder (Chroma caches clients by path, so each test needs its own)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


# ---------------------------------------------------------------- subprocesses


def run_python(code: str, env: dict | None = None, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    """Run a Python snippet in a fresh interpreter from the repository root."""
    full_env = os.environ.copy() | (env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def last_json_line(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON line in output:\n{stdout}")


def assert_reply_is_safe(reply, settings: Settings) -> None:
    """What every reply must hold, whatever the input: a known kind and the disclaimer."""
    assert reply.kind in VALID_KINDS, reply.kind
    assert reply.disclaimer == settings.disclaimer
    assert reply.answer.strip()
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", reply.answer)}
    assert markers <= {c.n for c in reply.citations}, (markers, reply.citations)
