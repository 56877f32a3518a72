"""The index: fingerprint, rebuild when stale, and an atomic swap that survives a failed build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot import index as index_mod
from bot.index import build_index, fingerprint, open_index
from bot.settings import REPO_ROOT


@pytest.fixture()
def tmp_settings(tmp_path, settings):
    corpus = tmp_path / "corpus"
    shutil.copytree(REPO_ROOT / "corpus", corpus)
    return settings.with_overrides(corpus_dir=corpus, index_dir=tmp_path / "index")


def current_store(settings) -> Path:
    return Path(settings.index_dir) / (Path(settings.index_dir) / "CURRENT").read_text().strip()


def test_fingerprint_tracks_corpus_model_and_chunking(tmp_settings):
    fp = fingerprint(tmp_settings)
    assert fp == fingerprint(tmp_settings)
    assert fp != fingerprint(tmp_settings.with_overrides(chunk_tokens=tmp_settings.chunk_tokens + 1))
    article = Path(tmp_settings.corpus_dir) / "article.md"
    article.write_text(article.read_text() + "\nOne more line.\n")
    assert fp != fingerprint(tmp_settings)


def test_missing_index_is_built_and_then_reused(tmp_settings, companion):
    handle = open_index(tmp_settings, companion.embeddings, progress=False)
    assert handle.manifest["fingerprint"] == fingerprint(tmp_settings)
    assert handle.chunks.count() == handle.manifest["chunks"] > 0
    first = current_store(tmp_settings)
    again = open_index(tmp_settings, companion.embeddings, progress=False)
    assert current_store(tmp_settings) == first
    assert again.manifest["built_at"] == handle.manifest["built_at"]


def test_stale_index_is_rebuilt_into_a_new_store(tmp_settings, companion):
    open_index(tmp_settings, companion.embeddings, progress=False)
    first = current_store(tmp_settings)
    glossary = Path(tmp_settings.corpus_dir) / "glossary.md"
    glossary.write_text(
        glossary.read_text().replace("rare and aggressive cancer", "rare, aggressive cancer", 1)
    )
    handle = open_index(tmp_settings, companion.embeddings, progress=False)
    assert current_store(tmp_settings) != first
    assert handle.manifest["fingerprint"] == fingerprint(tmp_settings)
    assert first.exists(), "the previous store is kept as the last good index"


def test_failed_build_leaves_the_current_index_in_use(tmp_settings, companion, monkeypatch):
    good = open_index(tmp_settings, companion.embeddings, progress=False)
    before = current_store(tmp_settings)

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index_mod, "_write_collections", crash)
    with pytest.raises(OSError):
        build_index(tmp_settings, companion.embeddings, progress=False)
    assert current_store(tmp_settings) == before
    leftovers = [p for p in Path(tmp_settings.index_dir).glob("store-*") if p != before]
    assert leftovers == [], "a half-built store must be removed"
    monkeypatch.undo()
    reopened = open_index(tmp_settings, companion.embeddings, progress=False)
    assert reopened.manifest["fingerprint"] == good.manifest["fingerprint"]


def test_sentence_vectors_match_units(companion):
    ids = [d.id for d in companion.search.docs[:5]]
    vectors = companion.index.sentence_vectors(ids)
    from bot.chunk import units_of

    for doc in companion.search.docs[:5]:
        assert vectors[doc.id].shape == (len(units_of(doc)), 384)
