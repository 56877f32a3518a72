"""The index: fingerprint, rebuild when stale, and an atomic swap that survives a failed build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.settings import REPO_ROOT
from bot.store import index as index_mod
from bot.store.index import build_index, fingerprint, open_index


@pytest.fixture()
def tmp_settings(tmp_path, settings):
    corpus = tmp_path / "corpus"
    shutil.copytree(REPO_ROOT / "corpus", corpus)
    return settings.with_overrides(corpus_dir=corpus, index_dir=tmp_path / "index")


def current_store(settings) -> Path:
    return Path(settings.index.index_dir) / (Path(settings.index.index_dir) / "CURRENT").read_text().strip()


def test_fingerprint_tracks_corpus_model_and_chunking(tmp_settings):
    fp = fingerprint(tmp_settings)
    assert fp == fingerprint(tmp_settings)
    assert fp != fingerprint(tmp_settings.with_overrides(chunk_tokens=tmp_settings.index.chunk_tokens + 1))
    article = Path(tmp_settings.index.corpus_dir) / "article.md"
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
    glossary = Path(tmp_settings.index.corpus_dir) / "glossary.md"
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
    leftovers = [p for p in Path(tmp_settings.index.index_dir).glob("store-*") if p != before]
    assert leftovers == [], "a half-built store must be removed"
    monkeypatch.undo()
    reopened = open_index(tmp_settings, companion.embeddings, progress=False)
    assert reopened.manifest["fingerprint"] == good.manifest["fingerprint"]


def test_sentence_vectors_match_units(companion):
    ids = [d.id for d in companion.search.docs[:5]]
    vectors = companion.index.sentence_vectors(ids)
    from bot.ingest.chunk import units_of

    for doc in companion.search.docs[:5]:
        assert vectors[doc.id].shape == (len(units_of(doc)), 384)


def test_a_large_index_reads_whole(tmp_path):
    """Past ~32k rows one Chroma get() fails ("too many SQL variables"): the index must still
    read every chunk, or a large corpus looks unreadable and is rebuilt at every start."""
    import chromadb
    import numpy as np

    from bot.store.chroma import ChromaStore, chroma_settings
    from bot.store.index import IndexHandle

    n, per = 33_000, 2
    client = chromadb.PersistentClient(path=str(tmp_path), settings=chroma_settings())
    chunks = client.create_collection("big-chunks", embedding_function=None)
    sentences = client.create_collection("big-sentences", embedding_function=None)
    rng = np.random.default_rng(0)
    for start in range(0, n, 5000):
        ids = [f"c{i}" for i in range(start, min(n, start + 5000))]
        chunks.add(
            ids=ids,
            embeddings=rng.standard_normal((len(ids), 4)).astype(np.float32),
            documents=[f"passage {i}" for i in ids],
            metadatas=[{"source_id": "synthetic"}] * len(ids),
        )
    wanted = [f"c{i}" for i in range(1200)]
    sentences.add(
        ids=[f"{c}-{j}" for c in wanted for j in range(per)],
        embeddings=rng.standard_normal((len(wanted) * per, 4)).astype(np.float32),
        metadatas=[{"chunk_id": c, "j": j} for c in wanted for j in range(per)],
    )
    with pytest.raises(Exception, match="too many SQL variables"):
        chunks.get(include=["documents", "metadatas"])  # why all_chunks reads in pages

    handle = IndexHandle(ChromaStore(client, chunks, sentences, str(tmp_path)), {})
    docs = handle.all_chunks()
    assert len(docs) == n and len({d.id for d in docs}) == n
    assert docs[0].page_content == f"passage {docs[0].id}"
    vectors = handle.sentence_vectors(wanted)  # more ids than one query takes
    assert len(vectors) == len(wanted) and all(v.shape == (per, 4) for v in vectors.values())
