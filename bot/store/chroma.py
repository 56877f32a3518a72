"""Where the Chroma collections live: an embedded local store (default) or a Chroma server.

Local: a `PersistentClient` folder per build under `PCL_INDEX_DIR`, made current by an atomic
rename of the CURRENT pointer.

Server (`CHROMA_HOST` set): the same idea with collections on `chromadb.HttpClient`. Each build
writes its own pair `<name>__b<stamp>` and `<name>__b<stamp>__sentences`; the empty collection
`<name>__current` is the pointer. Its metadata names the newest build and, per index
fingerprint, the build made for it; it is replaced in one request when a build is complete.
Chroma cannot rename over an existing collection, so a pointer is what keeps the switch atomic:
replicas never see a missing or half-built index, and two replicas building at once never
delete each other's work. Keying builds by fingerprint lets replicas of two app versions (a
rolling deploy) each open their own build instead of rebuilding the shared index back and
forth; the builds of the last few fingerprints, and the one each replaced, are kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chromadb
from chromadb.config import Settings as ChromaSettings

from bot.errors import IndexError_
from bot.settings import Settings

SENTENCES_SUFFIX = "__sentences"
POINTER_SUFFIX = "__current"  # server mode: empty collection whose metadata names the live build
BUILD_MARK = "__b"  # server mode: <collection>__b<stamp>-<pid>-<n>[__sentences]
_FP_KEY = "fp."  # server mode: pointer metadata key prefix, fingerprint -> its build
_ABANDONED_SECONDS = 6 * 3600  # a staged server build older than this is a crashed one
_KEEP_FINGERPRINTS = 3  # server builds kept: the newest one per fingerprint, for this many
_GRACE_SECONDS = 600  # an unreferenced complete build younger than this may be a racing commit's
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
    if settings.index.chroma_auth_token:
        # Chroma's token auth reads either header; proxies in front of it usually read the first.
        headers["Authorization"] = f"Bearer {settings.index.chroma_auth_token}"
        headers["X-Chroma-Token"] = settings.index.chroma_auth_token
    try:
        return chromadb.HttpClient(
            host=settings.index.chroma_host,
            port=settings.index.chroma_port,
            ssl=settings.index.chroma_ssl,
            headers=headers or None,
            settings=chroma_settings(),
        )
    except Exception as exc:
        raise IndexError_(
            f"Cannot reach the Chroma server at {_server_url(settings)} ({type(exc).__name__}: {exc}). "
            "Start it (`chroma run --path <folder> --host <host> --port <port>`), fix CHROMA_HOST/"
            "CHROMA_PORT/CHROMA_SSL/CHROMA_AUTH_TOKEN, or unset CHROMA_HOST to use the local store."
        ) from None


def _server_url(settings: Settings) -> str:
    return f"{'https' if settings.index.chroma_ssl else 'http'}://{settings.index.chroma_host}:{settings.index.chroma_port}"


def _create(client, name: str, metadata: dict | None = None):
    return client.create_collection(name, configuration=_COSINE, metadata=metadata, embedding_function=None)


def _get(client, name: str):
    return client.get_collection(name, embedding_function=None)


# ---------------------------------------------------------------- opening the current index


def open_current(settings: Settings, fingerprint: str) -> tuple[ChromaStore, dict]:
    """The store in use and its manifest; IndexError_ when there is none or it is unreadable.

    `fingerprint` picks this corpus's build on a shared server (rolling deploys)."""
    if settings.index.chroma_host:
        return open_server(settings, fingerprint)

    root = Path(settings.index.index_dir)
    pointer = root / "CURRENT"
    if not pointer.exists():
        raise IndexError_(f"No index found in {root}")
    folder = root / pointer.read_text(encoding="utf-8").strip()
    return open_local(settings, folder)


def open_local(settings: Settings, folder: Path) -> tuple[ChromaStore, dict]:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        check_sqlite(folder / "chroma.sqlite3")
        client = chromadb.PersistentClient(path=str(folder), settings=chroma_settings())
        chunks = _get(client, settings.index.collection)
        sentences = _get(client, settings.index.collection + SENTENCES_SUFFIX)
        if chunks.count() != manifest.get("chunks") or sentences.count() != manifest.get("sentences"):
            raise ValueError("collection sizes do not match the manifest")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a damaged file makes Chroma's Rust core panic
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        raise IndexError_(f"The index in {folder} is unreadable ({type(exc).__name__}: {detail})") from None
    return ChromaStore(client, chunks, sentences, str(folder)), manifest


def open_server(settings: Settings, fingerprint: str) -> tuple[ChromaStore, dict]:
    """The build made for this corpus and code (its fingerprint) if the server has one, else the
    newest build (which the caller then finds stale); each checked against its manifest."""
    client = _server_client(settings)
    url = _server_url(settings)
    try:
        pointer = _get(client, settings.index.collection + POINTER_SUFFIX)
    except Exception:
        raise IndexError_(f"No index on the Chroma server at {url} yet") from None
    try:
        meta = pointer.metadata or {}
        entry = meta.get(_FP_KEY + fingerprint)
        build = json.loads(entry)["build"] if entry else meta["build"]
        chunks = _get(client, build)
        sentences = _get(client, build + SENTENCES_SUFFIX)
        manifest = json.loads((chunks.metadata or {})["manifest"])
        if chunks.count() != manifest.get("chunks") or sentences.count() != manifest.get("sentences"):
            raise ValueError("collection sizes do not match the manifest")
    except Exception as exc:
        raise IndexError_(
            f"The index on the Chroma server at {url} is unreadable ({type(exc).__name__}: {exc})"
        ) from None
    return ChromaStore(client, chunks, sentences, f"{url}/{build}"), manifest


def check_sqlite(path: Path) -> None:
    """Read every row of a store's database once with Python's sqlite3, read-only.

    Chroma's Rust core aborts the whole process (no exception to catch) on some damaged files,
    e.g. text that is not UTF-8; this check turns such damage into an error we can act on.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} is missing")
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        problems = [row[0] for row in con.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems[:3]))
        tables = [
            name
            for name, sql in con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
            if not (sql or "").upper().startswith("CREATE VIRTUAL")
        ]
        for table in tables:
            for _ in con.execute(f'SELECT * FROM "{table}"'):  # text that is not UTF-8 raises here
                pass
    finally:
        con.close()


def previous_local(settings: Settings) -> Path | None:
    """The newest complete store that is not the current one: the last good index."""
    root = Path(settings.index.index_dir)
    current = (root / "CURRENT").read_text(encoding="utf-8").strip() if (root / "CURRENT").exists() else ""
    stores = sorted(
        (p for p in root.glob("store-*") if p.name != current and (p / "manifest.json").exists()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    return stores[0] if stores else None


def point_current(settings: Settings, folder: Path) -> None:
    """Make `folder` the store in use: write CURRENT.tmp, fsync, rename over CURRENT."""
    root = Path(settings.index.index_dir)
    pointer_tmp = root / f"CURRENT.{os.getpid()}.tmp"
    try:
        with open(pointer_tmp, "w", encoding="utf-8") as f:
            f.write(folder.name)
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer_tmp, root / "CURRENT")
    except BaseException:
        with contextlib.suppress(OSError):
            pointer_tmp.unlink()
        raise


# ---------------------------------------------------------------- building a new index


class _LocalBuild:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.index.index_dir)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        self.folder = self.root / f"store-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6}"

    def __enter__(self) -> _LocalBuild:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            client = chromadb.PersistentClient(path=str(self.folder), settings=chroma_settings())
            self.store = ChromaStore(
                client,
                _create(client, self.settings.index.collection),
                _create(client, self.settings.index.collection + SENTENCES_SUFFIX),
                str(self.folder),
            )
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)  # __exit__ does not run when this fails
            raise
        return self

    def commit(self, manifest: dict) -> None:
        tmp = self.folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.replace(tmp, self.folder / "manifest.json")
        previous = (
            (self.root / "CURRENT").read_text(encoding="utf-8").strip()
            if (self.root / "CURRENT").exists()
            else ""
        )
        point_current(self.settings, self.folder)  # the one atomic step that makes it live
        keep = {self.folder.name, previous}
        for old in self.root.glob("store-*"):
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


class _ServerBuild:
    """Writes a new pair of collections, then points `<name>__current` at them (one request)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        self.build = (
            f"{settings.index.collection}{BUILD_MARK}{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        )

    def __enter__(self) -> _ServerBuild:
        client = _server_client(self.settings)
        staged = {"state": "building", "started": time.time()}
        self.store = ChromaStore(
            client,
            _create(client, self.build, staged),
            _create(client, self.build + SENTENCES_SUFFIX, staged),
            f"{_server_url(self.settings)}/{self.build}",
        )
        return self

    def commit(self, manifest: dict) -> None:
        client = self.store.client
        done = {"state": "complete", "completed": time.time(), "manifest": json.dumps(manifest)}
        self.store.chunks.modify(metadata=done)
        self.store.sentences.modify(metadata=done)
        pointer = client.get_or_create_collection(
            self.settings.index.collection + POINTER_SUFFIX, embedding_function=None
        )
        old = dict(pointer.metadata or {})
        key = _FP_KEY + manifest["fingerprint"]
        replaced = json.loads(old[key])["build"] if key in old else ""
        entries = {k: json.loads(v) for k, v in old.items() if k.startswith(_FP_KEY)}
        entries[key] = {"build": self.build, "at": time.time(), "replaced": replaced}
        newest = sorted(entries, key=lambda k: -entries[k]["at"])[:_KEEP_FINGERPRINTS]
        meta = {"build": self.build, "manifest": json.dumps(manifest)}
        meta |= {k: json.dumps(entries[k]) for k in newest}
        # The one step that makes the build live: replicas opening the index now get this one.
        pointer.modify(metadata=meta)
        keep = {entries[k][field] for k in newest for field in ("build", "replaced")}
        self._collect_garbage(client, keep)

    def _collect_garbage(self, client, keep: set[str]) -> None:
        """Drop builds no fingerprint refers to any more, and staged ones a crashed builder left."""
        prefix = self.settings.index.collection + BUILD_MARK
        now = time.time()
        for col in client.list_collections():
            if not col.name.startswith(prefix):
                continue
            build = col.name.removesuffix(SENTENCES_SUFFIX)
            meta = col.metadata or {}
            if meta.get("state") == "complete":
                # Young unreferenced builds may belong to a commit racing this one: kept a while.
                drop = float(meta.get("completed", 0)) < now - _GRACE_SECONDS
            else:
                drop = float(meta.get("started", 0)) < now - _ABANDONED_SECONDS
            if build in keep or not drop:
                continue
            with contextlib.suppress(Exception):
                client.delete_collection(col.name)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and hasattr(self, "store"):
            for name in (self.build, self.build + SENTENCES_SUFFIX):
                with contextlib.suppress(Exception):
                    self.store.client.delete_collection(name)


def open_store(settings: Settings) -> _LocalBuild | _ServerBuild:
    """A build context: `with open_store(s) as b: ...write b.store...; b.commit(manifest)`."""
    return _ServerBuild(settings) if settings.index.chroma_host else _LocalBuild(settings)
