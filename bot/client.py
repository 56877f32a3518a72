"""Where the Chroma collections live: an embedded local store (default) or a Chroma server.

Local: a `PersistentClient` folder per build under `PCL_INDEX_DIR`, made current by an atomic
rename of the CURRENT pointer. Server (`CHROMA_HOST` set): collections on `chromadb.HttpClient`;
a build writes `<name>__build` collections and renames them into place when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chromadb
from chromadb.config import Settings as ChromaSettings

from bot.errors import IndexError_
from bot.settings import Settings

SENTENCES_SUFFIX = "__sentences"
BUILD_SUFFIX = "__build"
_COSINE = {"hnsw": {"space": "cosine"}}


def chroma_settings() -> ChromaSettings:
    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


@dataclass
class ChromaStore:
    client: Any
    chunks: Any
    sentences: Any
    location: str


def _server_client(settings: Settings):
    headers = {}
    if settings.chroma_auth_token:
        headers["Authorization"] = f"Bearer {settings.chroma_auth_token}"
    try:
        return chromadb.HttpClient(
            host=settings.chroma_host,
            port=settings.chroma_port,
            ssl=settings.chroma_ssl,
            headers=headers or None,
            settings=chroma_settings(),
        )
    except Exception as exc:
        raise IndexError_(
            f"Cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} ({exc}). "
            "Start it (`chroma run`), fix CHROMA_HOST/CHROMA_PORT, or unset CHROMA_HOST to use the local store."
        ) from None


def _create(client, name: str, metadata: dict | None = None):
    return client.create_collection(name, configuration=_COSINE, metadata=metadata, embedding_function=None)


def _get(client, name: str):
    return client.get_collection(name, embedding_function=None)


# ---------------------------------------------------------------- opening the current index


def open_current(settings: Settings) -> tuple[ChromaStore, dict]:
    """The store in use and its manifest; IndexError_ when there is none or it is unreadable."""
    if settings.chroma_host:
        client = _server_client(settings)
        try:
            chunks = _get(client, settings.collection)
            sentences = _get(client, settings.collection + SENTENCES_SUFFIX)
            manifest = json.loads((chunks.metadata or {}).get("manifest", "{}"))
        except Exception as exc:
            raise IndexError_(f"No usable index on the Chroma server ({type(exc).__name__}: {exc})") from None
        return ChromaStore(
            client, chunks, sentences, f"chroma://{settings.chroma_host}:{settings.chroma_port}"
        ), manifest

    root = Path(settings.index_dir)
    pointer = root / "CURRENT"
    if not pointer.exists():
        raise IndexError_(f"No index found in {root}")
    folder = root / pointer.read_text(encoding="utf-8").strip()
    return open_local(settings, folder)


def open_local(settings: Settings, folder: Path) -> tuple[ChromaStore, dict]:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        client = chromadb.PersistentClient(path=str(folder), settings=chroma_settings())
        chunks = _get(client, settings.collection)
        sentences = _get(client, settings.collection + SENTENCES_SUFFIX)
        if chunks.count() != manifest.get("chunks") or sentences.count() != manifest.get("sentences"):
            raise ValueError("collection sizes do not match the manifest")
    except Exception as exc:
        raise IndexError_(f"The index in {folder} is unreadable ({type(exc).__name__}: {exc})") from None
    return ChromaStore(client, chunks, sentences, str(folder)), manifest


def previous_local(settings: Settings) -> Path | None:
    """The newest complete store that is not the current one: the last good index."""
    root = Path(settings.index_dir)
    current = (root / "CURRENT").read_text(encoding="utf-8").strip() if (root / "CURRENT").exists() else ""
    stores = sorted(
        (p for p in root.glob("store-*") if p.name != current and (p / "manifest.json").exists()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    return stores[0] if stores else None


# ---------------------------------------------------------------- building a new index


class _LocalBuild:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.index_dir)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        self.folder = self.root / f"store-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6}"

    def __enter__(self) -> _LocalBuild:
        self.root.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(path=str(self.folder), settings=chroma_settings())
        self.store = ChromaStore(
            client,
            _create(client, self.settings.collection),
            _create(client, self.settings.collection + SENTENCES_SUFFIX),
            str(self.folder),
        )
        return self

    def commit(self, manifest: dict) -> None:
        tmp = self.folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.replace(tmp, self.folder / "manifest.json")
        pointer_tmp = self.root / f"CURRENT.{os.getpid()}.tmp"
        with open(pointer_tmp, "w", encoding="utf-8") as f:
            f.write(self.folder.name)
            f.flush()
            os.fsync(f.fileno())
        previous = (
            (self.root / "CURRENT").read_text(encoding="utf-8").strip()
            if (self.root / "CURRENT").exists()
            else ""
        )
        os.replace(pointer_tmp, self.root / "CURRENT")  # the one atomic step that makes it live
        keep = {self.folder.name, previous}
        for old in self.root.glob("store-*"):
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


class _ServerBuild:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = (settings.collection, settings.collection + SENTENCES_SUFFIX)

    def __enter__(self) -> _ServerBuild:
        client = _server_client(self.settings)
        staged = []
        for name in self.names:
            with contextlib.suppress(Exception):
                client.delete_collection(name + BUILD_SUFFIX)
            staged.append(_create(client, name + BUILD_SUFFIX))
        self.store = ChromaStore(client, staged[0], staged[1], f"chroma://{self.settings.chroma_host}")
        return self

    def commit(self, manifest: dict) -> None:
        client = self.store.client
        self.store.chunks.modify(metadata={"manifest": json.dumps(manifest)})
        for name, staged in zip(self.names, (self.store.chunks, self.store.sentences), strict=True):
            with contextlib.suppress(Exception):
                client.delete_collection(name)
            staged.modify(name=name)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            for name in self.names:
                with contextlib.suppress(Exception):
                    self.store.client.delete_collection(name + BUILD_SUFFIX)


def open_store(settings: Settings, fresh: bool = True) -> _LocalBuild | _ServerBuild:
    """A build context: `with open_store(s) as b: ...write b.store...; b.commit(manifest)`."""
    return _ServerBuild(settings) if settings.chroma_host else _LocalBuild(settings)
