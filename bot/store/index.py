"""Build, fingerprint and open the Chroma index.

Layout of the embedded store (`PCL_INDEX_DIR`, default `index/`):

    index/CURRENT            name of the store in use, replaced atomically
    index/store-<fp>-<ts>/   a complete Chroma PersistentClient folder + manifest.json
    index/.lock              held while checking or building, so two processes never race

A build writes a new store folder and only then points CURRENT at it, so a crash or a full
disk never leaves a half-built index in use; the previous store is kept as the last good one.
With CHROMA_HOST set, the same collections live on a Chroma server instead (see `client.py`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock
from langchain_core.documents import Document
from tqdm import tqdm

from bot.errors import CorpusError, IndexError_
from bot.ingest import chunk as chunk_module
from bot.ingest import load as load_module
from bot.ingest import questions as questions_module
from bot.ingest import trials as trials_module
from bot.ingest.chunk import ENCODING, chunk_documents, embedding_text, units_of
from bot.ingest.load import corpus_files, load_corpus
from bot.ingest.questions import StoredQuestion, load_questions, sentences_by_section
from bot.settings import Settings
from bot.store.chroma import ChromaStore, open_current, open_local, open_store, point_current, previous_local
from bot.store.embed import embed_texts, model_id
from bot.store.encoders import embed_spec, settings_key

log = logging.getLogger(__name__)

INDEX_FORMAT = 4  # bump when what is stored changes shape
QUESTIONS = "__questions__"  # chunk_id of the stored-question rows in the sentences collection
_SHAPING_CODE = (load_module, trials_module, chunk_module, questions_module)  # how files become stored text
_BATCH = 256
_PAGE = 5000  # rows per get(): SQLite allows ~32k variables in one statement
_ID_BATCH = 500  # chunk ids per sentence-vector query (each chunk has a handful of sentences)


def fingerprint(settings: Settings) -> str:
    """Corpus content + model and its ONNX export + chunking settings + the code that turns files
    into chunks: any change means the index is stale."""
    h = hashlib.sha256()
    h.update(f"format={INDEX_FORMAT};model={model_id(settings)};enc={ENCODING};".encode())
    # The ONNX export that embeds the texts (bot/store/encoders.py): a new export is a new index.
    h.update(f"encoder={settings_key(settings, embed_spec(settings))};".encode())
    for module in _SHAPING_CODE:
        h.update(hashlib.sha256(Path(module.__file__).read_bytes()).digest())
    h.update(f"chunk={settings.index.chunk_tokens};overlap={settings.index.chunk_overlap_tokens};".encode())
    for path in corpus_files(settings.index.corpus_dir):
        h.update(path.relative_to(settings.index.corpus_dir).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:24]


@dataclass
class IndexHandle:
    """An opened, fresh index: the chunk and sentence collections and what was built."""

    store: ChromaStore
    manifest: dict
    notice: str = ""  # set when the last good index is served because a rebuild failed
    _sentence_cache: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def chunks(self):
        return self.store.chunks

    @property
    def sentences(self):
        return self.store.sentences

    def all_chunks(self) -> list[Document]:
        # In pages: one get() of every row fails past ~32k rows ("too many SQL variables"), which
        # would make a large index look unreadable and be rebuilt at every start.
        out: list[Document] = []
        while True:
            got = self.chunks.get(include=["documents", "metadatas"], limit=_PAGE, offset=len(out))
            out.extend(
                Document(page_content=doc, metadata=md, id=i)
                for i, doc, md in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
            )
            if len(got["ids"]) < _PAGE:
                return out

    def chunk_vectors(self) -> tuple[list[str], np.ndarray]:
        """Every chunk's id and stored embedding (rows in the same order), read in pages."""
        ids: list[str] = []
        rows: list[np.ndarray] = []
        while True:
            got = self.chunks.get(include=["embeddings"], limit=_PAGE, offset=len(ids))
            ids.extend(got["ids"])
            if len(got["ids"]):
                rows.append(np.asarray(got["embeddings"], dtype=np.float32))
            if len(got["ids"]) < _PAGE:
                break
        return ids, (np.vstack(rows) if rows else np.zeros((0, 384), np.float32))

    def sentence_vectors(self, chunk_ids: list[str]) -> dict[str, np.ndarray]:
        """Unit embeddings per chunk (rows in unit order), cached after the first fetch."""
        missing = [c for c in chunk_ids if c not in self._sentence_cache]
        rows: dict[str, list[tuple[int, np.ndarray]]] = {}
        for start in range(0, len(missing), _ID_BATCH):  # a few chunks' sentences per query
            got = self.sentences.get(
                where={"chunk_id": {"$in": missing[start : start + _ID_BATCH]}},
                include=["embeddings", "metadatas"],
            )
            for md, vec in zip(got["metadatas"], got["embeddings"], strict=True):
                rows.setdefault(md["chunk_id"], []).append((md["j"], np.asarray(vec, dtype=np.float32)))
        for cid in missing:
            ordered = [v for _, v in sorted(rows.get(cid, []), key=lambda r: r[0])]
            self._sentence_cache[cid] = np.vstack(ordered) if ordered else np.zeros((0, 384), np.float32)
        return {c: self._sentence_cache[c] for c in chunk_ids}

    def stored_questions(self) -> tuple[np.ndarray, list[str], list[list[tuple[str, int]]]]:
        """Vectors, texts and target sentences (chunk id, unit index) of the stored questions."""
        got = self.sentences.get(
            where={"chunk_id": QUESTIONS}, include=["embeddings", "metadatas", "documents"]
        )
        order = sorted(range(len(got["ids"])), key=lambda i: got["metadatas"][i]["j"])
        if not order:
            return np.zeros((0, 384), np.float32), [], []
        vecs = np.vstack([np.asarray(got["embeddings"][i], dtype=np.float32) for i in order])
        texts = [got["documents"][i] for i in order]
        targets = [
            [(t.rsplit("#", 1)[0], int(t.rsplit("#", 1)[1])) for t in got["metadatas"][i]["targets"].split()]
            for i in order
        ]
        return vecs, texts, targets

    def warm(self, limit: int = 5000) -> None:
        """Prefetch every chunk's sentence vectors when the index is small enough."""
        ids = self.chunks.get(include=[])["ids"]
        if len(ids) <= limit:
            self.sentence_vectors(ids)


def question_rows(chunks: list[Document], questions: list[StoredQuestion]) -> list[tuple[str, str]]:
    """(question, "chunk#j chunk#j ...") for every stored question whose sentences are in the
    corpus; questions about text that is no longer there are left out (and logged)."""
    by_section = sentences_by_section(chunks)
    rows, stale = [], 0
    for q in questions:
        units = by_section.get((q.source_id, q.section), [])
        wanted = {a.strip() for a in q.answers}
        targets = [f"{cid}#{j}" for cid, j, text in units if not wanted or text in wanted]
        if not targets or (wanted and len(targets) < len(wanted)):
            stale += 1
            continue
        rows.append((q.question, " ".join(targets)))
    if stale:
        log.warning("%d stored questions point at sentences not in the corpus; left out", stale)
    return rows


def _write_collections(
    store: ChromaStore, chunks: list[Document], questions: list[StoredQuestion], embeddings, progress: bool
) -> int:
    texts = [embedding_text(c) for c in chunks]
    units = [(c.id, j, u.text) for c in chunks for j, u in enumerate(units_of(c))]
    asked = question_rows(chunks, questions)
    total = len(texts) + len(units) + len(asked)
    bar = tqdm(total=total, desc="Embedding passages", unit="text", disable=not progress)
    for start in range(0, len(chunks), _BATCH):
        batch = chunks[start : start + _BATCH]
        vecs = embed_texts(embeddings, texts[start : start + _BATCH])
        store.chunks.add(
            ids=[c.id for c in batch],
            embeddings=vecs,
            documents=[c.page_content for c in batch],
            metadatas=[c.metadata for c in batch],
        )
        bar.update(len(batch))
    for start in range(0, len(units), _BATCH):
        batch = units[start : start + _BATCH]
        vecs = embed_texts(embeddings, [u[2] for u in batch])
        store.sentences.add(
            ids=[f"{cid}#{j}" for cid, j, _ in batch],
            embeddings=vecs,
            documents=[t for _, _, t in batch],
            metadatas=[{"chunk_id": cid, "j": j} for cid, j, _ in batch],
        )
        bar.update(len(batch))
    # Stored questions live beside the sentences they point at (one vector each).
    for start in range(0, len(asked), _BATCH):
        batch = asked[start : start + _BATCH]
        vecs = embed_texts(embeddings, [q for q, _ in batch])
        store.sentences.add(
            ids=[f"{QUESTIONS}#{start + k}" for k in range(len(batch))],
            embeddings=vecs,
            documents=[q for q, _ in batch],
            metadatas=[
                {"chunk_id": QUESTIONS, "j": start + k, "targets": t} for k, (_, t) in enumerate(batch)
            ],
        )
        bar.update(len(batch))
    bar.close()
    return len(units) + len(asked)


def build_index(settings: Settings, embeddings, progress: bool = True) -> dict:
    """Build a complete new store and make it current; returns its manifest."""
    started = time.perf_counter()
    fp = fingerprint(settings)
    docs = load_corpus(settings.index.corpus_dir)
    chunks = chunk_documents(docs, settings.index.chunk_tokens, settings.index.chunk_overlap_tokens)
    manifest = {
        "fingerprint": fp,
        "format": INDEX_FORMAT,
        "model": model_id(settings),
        "encoder": settings_key(settings, embed_spec(settings)),
        "chunk_tokens": settings.index.chunk_tokens,
        "chunk_overlap_tokens": settings.index.chunk_overlap_tokens,
        "sources": sorted({d.metadata["source_id"] for d in docs}),
        "chunks": len(chunks),
    }
    with open_store(settings) as builder:
        questions = load_questions(settings.index.corpus_dir)
        manifest["sentences"] = _write_collections(builder.store, chunks, questions, embeddings, progress)
        manifest["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        manifest["build_seconds"] = round(time.perf_counter() - started, 3)
        builder.commit(manifest)
    log.info(
        "index built: %s chunks, %s sentences in %.1fs",
        manifest["chunks"],
        manifest["sentences"],
        manifest["build_seconds"],
    )
    return manifest


def open_index(
    settings: Settings,
    embeddings,
    rebuild: bool = False,
    progress: bool = True,
    fallback: bool = True,
) -> IndexHandle:
    """Open the current index, (re)building it first when missing, stale or unreadable.

    When a rebuild fails (full disk, broken corpus file, crash inside Chroma) and `fallback` is
    on, the last good index is used instead: the current store if it is still readable, else
    the newest complete earlier store, which becomes current again. `handle.notice` then says
    what happened; with no good index left, IndexError_ (or the CorpusError) says what to fix.
    """
    root = Path(settings.index.index_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexError_(
            f"Cannot create the index folder {root} ({exc.strerror or exc}). "
            "Set PCL_INDEX_DIR to a writable folder."
        ) from None
    with FileLock(str(root / ".lock"), timeout=600):
        fp = fingerprint(settings)
        current: IndexHandle | None = None
        why = "a rebuild was requested"
        if not rebuild or fallback:
            try:
                current = _open_checked(settings, lambda s: open_current(s, fp))
                if not rebuild and current.manifest.get("fingerprint") == fp:
                    return current
                if not rebuild:
                    why = "the index is stale (corpus, model or chunking changed)"
            except IndexError_ as exc:
                why = str(exc)
        if current is None and not Path(root / "CURRENT").exists() and not settings.index.chroma_host:
            log.info("building the search index for the first time")
        else:
            log.warning("%s: rebuilding the index", why)
        try:
            build_index(settings, embeddings, progress=progress)
            return _open_checked(settings, lambda s: open_current(s, fp))
        except _NEVER_CAUGHT:
            raise
        except BaseException as exc:  # noqa: BLE001 - Chroma's Rust core panics with a BaseException
            failure, fix = _describe_failure(exc), _fix_for(exc)
            good = _last_good(settings, current) if fallback else None
            if good is None:
                if isinstance(exc, CorpusError | IndexError_):
                    raise
                raise IndexError_(f"Could not build the search index in {root}: {failure}. {fix}") from None
        good.notice = (
            f"Could not rebuild the search index ({failure}). Answering from the last good index, "
            f"built {good.manifest.get('built_at', 'earlier')}; changes to the sources since then "
            f"are not included. {fix}"
        )
        log.warning(good.notice)
        return good


# Failures that must stop the process rather than be answered by the last good index.
_NEVER_CAUGHT = (KeyboardInterrupt, SystemExit, GeneratorExit)


def _open_checked(settings: Settings, opener) -> IndexHandle:
    """Open a store and read every row once, so a damaged file fails here, not mid-answer."""
    store, manifest = opener(settings)
    handle = IndexHandle(store, manifest)
    try:
        handle.all_chunks()
        handle.warm()
        probe = next(iter(handle._sentence_cache.values()), None)
        if probe is not None and len(probe):
            store.chunks.query(query_embeddings=[probe[0]], n_results=1, include=["distances"])
    except _NEVER_CAUGHT:
        raise
    except BaseException as exc:  # noqa: BLE001 - see open_index
        raise IndexError_(
            f"The index in {store.location} is unreadable ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    return handle


def _last_good(settings: Settings, current: IndexHandle | None) -> IndexHandle | None:
    """The current store if it still reads, else the newest complete earlier one (made current)."""
    if current is not None:
        return current
    if settings.index.chroma_host:
        return None
    folder = previous_local(settings)
    if folder is None:
        return None
    try:
        handle = _open_checked(settings, lambda s: open_local(s, folder))
    except IndexError_ as exc:
        log.warning("the previous index is not usable either: %s", exc)
        return None
    try:
        point_current(settings, folder)
    except OSError as exc:  # a full disk may refuse even the pointer; serve it from memory anyway
        log.warning("could not make %s current again (%s)", folder.name, exc.strerror or exc)
    return handle


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "the disk is full"
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to write ({exc.strerror})"
    if isinstance(exc, CorpusError):
        return f"a source file is invalid: {exc}"
    text = _first_line(exc)
    if any(m in text for m in ("disk is full", "No space left", "database or disk is full")):
        return "the disk is full"
    return f"{type(exc).__name__}: {text}"


def _fix_for(exc: BaseException) -> str:
    failure = _describe_failure(exc)
    if failure == "the disk is full":
        return "Free some disk space, then run `python -m bot index`."
    if isinstance(exc, CorpusError):
        return "Fix that file, then run `python -m bot index`."
    return "Run `python -m bot index --rebuild` to try again."


def describe(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True)
