"""Index faults: missing, damaged or stale stores, a full disk, a crash mid-build, two starts at once.

In every case the bot must say what happened, keep (or restore) the last good index and answer.
All on the real components: real Chroma stores in tmp folders, the bundled model, real processes.
"""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_fixtures import (
    add_glossary_entry,
    adopt,
    assert_reply_is_safe,
    clone_index,
    companion_for,
    current_store,
    run_python,
    settings_for,
    shared_embeddings,
    small_corpus,
    store_folders,
)

from bot.errors import IndexError_
from bot.store.chroma import open_local
from bot.store.index import _open_checked, fingerprint, open_index

QUESTION = "What is plasma cell leukemia?"


@pytest.fixture(scope="module")
def template(companion, tmp_path_factory):
    """A small corpus and its built index, copied by each test (built once per module)."""
    adopt(companion)  # one model per test session
    root = tmp_path_factory.mktemp("index-template")
    corpus = small_corpus(root / "corpus")
    settings = settings_for(corpus, root / "index")
    open_index(settings, shared_embeddings(), progress=False)
    return corpus, root / "index"


@pytest.fixture
def fresh(template, tmp_path):
    """(settings, index folder) of a private copy of the template corpus and index."""
    corpus = Path(shutil.copytree(template[0], tmp_path / "corpus"))
    index = clone_index(template[1], tmp_path / "index")
    return settings_for(corpus, index), index


def answers_from_corpus(settings, expect_notice: bool = False):
    """Start the bot as the app does and check it answers the test question with a citation."""
    bot = companion_for(settings)
    assert bool(bot.index.notice) == expect_notice, bot.index.notice
    reply = bot.ask(QUESTION)
    assert_reply_is_safe(reply, settings)
    assert reply.kind == "answer", reply
    assert reply.citations and all(c.quote in c.passage for c in reply.citations)
    return bot, reply


# ---------------------------------------------------------------- missing and damaged stores


def test_missing_index_folder_is_built_on_first_start(template, tmp_path):
    corpus = Path(shutil.copytree(template[0], tmp_path / "corpus"))
    index = tmp_path / "not" / "there" / "yet"
    settings = settings_for(corpus, index)
    bot, _ = answers_from_corpus(settings)
    assert bot.index.manifest["fingerprint"] == fingerprint(settings)
    assert store_folders(index) == [current_store(index)]


def _delete_store(folder: Path) -> None:
    shutil.rmtree(folder)


def _empty_pointer(folder: Path) -> None:
    (folder.parent / "CURRENT").write_text("", encoding="utf-8")


def _pointer_to_nowhere(folder: Path) -> None:
    (folder.parent / "CURRENT").write_text("store-that-was-never-built", encoding="utf-8")


def _truncate_manifest(folder: Path) -> None:
    data = (folder / "manifest.json").read_bytes()
    (folder / "manifest.json").write_bytes(data[: len(data) // 2])


def _manifest_counts_wrong(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["sentences"] += 7  # e.g. a build that stopped before writing every sentence
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def _truncate_database(folder: Path) -> None:
    db = folder / "chroma.sqlite3"
    os.truncate(db, db.stat().st_size // 2)


def _empty_database(folder: Path) -> None:
    os.truncate(folder / "chroma.sqlite3", 0)


def _overwrite_database_header(folder: Path) -> None:
    with open(folder / "chroma.sqlite3", "r+b") as f:
        f.write(b"\xde\xad\xbe\xef" * 25)


def _schema_not_utf8(folder: Path) -> None:
    """A damaged table name: without a check first, Chroma's Rust core aborts the interpreter."""
    con = sqlite3.connect(folder / "chroma.sqlite3")
    con.execute("PRAGMA writable_schema=ON")
    con.execute(
        "UPDATE sqlite_master SET name = CAST(x'74656e96' AS TEXT), sql = 'CREATE TABLE (' "
        "WHERE name = 'tenants'"
    )
    con.commit()
    con.close()


def _text_not_utf8(folder: Path) -> None:
    """Bit rot inside one stored text field (Chroma would read it back garbled, silently)."""
    con = sqlite3.connect(folder / "chroma.sqlite3")
    con.execute(
        "UPDATE embedding_metadata SET string_value = CAST(x'6162ff' AS TEXT) "
        "WHERE rowid = (SELECT min(rowid) FROM embedding_metadata WHERE string_value IS NOT NULL)"
    )
    con.commit()
    con.close()


def _random_bytes(seed: int):
    def damage(folder: Path) -> None:
        db = folder / "chroma.sqlite3"
        data = bytearray(db.read_bytes())
        rnd = random.Random(seed)
        for _ in range(200):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        db.write_bytes(bytes(data))

    damage.__name__ = f"random_bytes_seed{seed}"
    return damage


def _garbage_vector_segments(folder: Path) -> None:
    for f in folder.glob("*/*.bin"):
        f.write_bytes(os.urandom(max(f.stat().st_size, 64)))


DAMAGE = [
    _delete_store,
    _empty_pointer,
    _pointer_to_nowhere,
    _truncate_manifest,
    _manifest_counts_wrong,
    _truncate_database,
    _empty_database,
    _overwrite_database_header,
    _schema_not_utf8,
    _text_not_utf8,
    _random_bytes(1),
    _random_bytes(2),
    _random_bytes(3),
]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_damaged_index_is_rebuilt_and_the_bot_answers(fresh, damage):
    settings, index = fresh
    damaged = current_store(index)
    damage(index / damaged)
    bot, _ = answers_from_corpus(settings)
    assert current_store(index) != damaged, "a damaged store must not stay current"
    assert bot.index.manifest["fingerprint"] == fingerprint(settings)


def test_damaged_vector_segment_files_do_not_stop_answers(fresh):
    """Chroma keeps this small collection's vectors in its database; garbage .bin files must not
    break opening or searching (whether it is rebuilt or not)."""
    settings, index = fresh
    _garbage_vector_segments(index / current_store(index))
    answers_from_corpus(settings)


def test_damaged_schema_is_an_error_not_a_process_abort(template, tmp_path):
    """The damage that aborts the interpreter inside Chroma is caught by reading the file first.

    Run in a fresh interpreter so that, were the check missing, only that process dies (rc -6).
    """
    index = clone_index(template[1], tmp_path / "index")
    folder = index / current_store(index)
    _schema_not_utf8(folder)
    result = run_python(
        f"""
        import bot
        from bot.store.chroma import open_local
        from bot.errors import IndexError_
        from bot.settings import Settings
        from pathlib import Path
        try:
            open_local(Settings.from_env(), Path({str(folder)!r}))
        except IndexError_ as exc:
            print("IndexError_:", exc)
        """,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "IndexError_:" in result.stdout and "unreadable" in result.stdout


def test_stale_fingerprint_rebuilds_with_the_new_content(fresh):
    settings, index = fresh
    old = current_store(index)
    add_glossary_entry(
        settings.index.corpus_dir,
        "Zorblatt marker",
        "The zorblatt marker is a made-up term that only this test adds to the glossary.",
        "https://example.org/zorblatt",
    )
    bot = companion_for(settings)
    assert not bot.index.notice
    assert current_store(index) != old
    reply = bot.ask("What is the zorblatt marker?")
    assert reply.kind == "answer" and "zorblatt" in reply.answer.lower()
    # The previous store is kept as the last good one, nothing older.
    assert set(store_folders(index)) == {old, current_store(index)}


# ---------------------------------------------------------------- a failed write during a rebuild


def _make_stale(settings) -> None:
    add_glossary_entry(
        settings.index.corpus_dir,
        "Quillon term",
        "A quillon term is a made-up entry that makes the index stale.",
        "https://example.org/quillon",
    )


def test_disk_full_during_rebuild_keeps_the_last_good_index(fresh, monkeypatch):
    """A write that fails with ENOSPC while the new store is being committed."""
    settings, index = fresh
    good = current_store(index)
    _make_stale(settings)

    from bot.store import chroma as client

    def no_space(self, manifest):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(client._LocalBuild, "commit", no_space)
    bot, _ = answers_from_corpus(settings, expect_notice=True)
    assert "disk is full" in bot.index.notice and "last good index" in bot.index.notice
    assert current_store(index) == good
    assert store_folders(index) == [good], "the half-built store must be removed"


def test_file_size_limit_during_rebuild_keeps_the_last_good_index(fresh):
    """Real failed writes from the kernel (RLIMIT_FSIZE: EFBIG) inside Chroma's own code."""
    settings, index = fresh
    good = current_store(index)
    _make_stale(settings)
    shared_embeddings()  # load the model before the limit is set
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, limit[1]))
    try:
        bot = companion_for(settings)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert "Could not rebuild the search index" in bot.index.notice
    assert current_store(index) == good and store_folders(index) == [good]
    reply = bot.ask(QUESTION)
    assert reply.kind == "answer" and reply.citations


@pytest.fixture
def small_disk(template, tmp_path):
    """A real tmpfs 1.3 times the size of the small corpus's index: room for one store, not two."""
    used = sum(p.stat().st_size for p in Path(template[1]).rglob("*") if p.is_file())
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={int(used * 1.3 / 1024) + 64}k", "tmpfs", str(mount)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the ENOSPC and EFBIG tests still run")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_real_full_disk_during_rebuild_keeps_the_last_good_index(template, tmp_path, small_disk):
    corpus = Path(shutil.copytree(template[0], tmp_path / "corpus"))
    index = clone_index(template[1], small_disk / "index")
    good = current_store(index)
    settings = settings_for(corpus, index)
    _make_stale(settings)
    bot, _ = answers_from_corpus(settings, expect_notice=True)
    assert "disk is full" in bot.index.notice
    assert current_store(index) == good and store_folders(index) == [good]


def test_failed_rebuild_over_a_damaged_store_restores_the_previous_one(fresh, monkeypatch):
    settings, index = fresh
    previous = current_store(index)
    _make_stale(settings)
    open_index(settings, shared_embeddings(), progress=False)  # a good rebuild: previous is kept
    damaged = current_store(index)
    assert damaged != previous
    _truncate_database(index / damaged)

    from bot.store import chroma as client

    def no_space(self, manifest):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(client._LocalBuild, "commit", no_space)
    bot, _ = answers_from_corpus(settings, expect_notice=True)
    assert current_store(index) == previous, "the last good store must become current again"
    assert bot.index.store.location.endswith(previous)


def test_no_good_index_and_a_failed_build_is_one_clear_error(template, tmp_path, monkeypatch):
    corpus = Path(shutil.copytree(template[0], tmp_path / "corpus"))
    settings = settings_for(corpus, tmp_path / "index")
    from bot.store import chroma as client

    def no_space(self, manifest):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(client._LocalBuild, "commit", no_space)
    with pytest.raises(IndexError_) as caught:
        open_index(settings, shared_embeddings(), progress=False)
    message = str(caught.value)
    assert "disk is full" in message and "Free some disk space" in message
    assert "\n" not in message and "Traceback" not in message
    assert store_folders(tmp_path / "index") == []


# ---------------------------------------------------------------- crashes and concurrent starts

_CHILD = """
import json, logging, os, signal, sys, time
from pathlib import Path
import bot
from bot.settings import Settings
import bot.store.index as index

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
settings = Settings.from_env()
vectors = json.loads(Path(os.environ["VECTORS_FILE"]).read_text())

class ModelVectors:  # the bundled model's vectors for this corpus, computed by the parent
    def embed_documents(self, texts):
        return [vectors[t] for t in texts]

crash = os.environ.get("CRASH_AFTER_FIRST_WRITE") == "1"
if crash:
    def write_then_die(store, chunks, *rest):
        store.chunks.add(ids=["half"], embeddings=[vectors[next(iter(vectors))]], documents=["half"])
        os.kill(os.getpid(), signal.SIGKILL)  # the power goes out mid-build
    index._write_collections = write_then_die
go = Path(os.environ["GO_FILE"])
Path(os.environ["READY_FILE"]).touch()
while not go.exists():
    time.sleep(0.01)
handle = index.open_index(settings, ModelVectors(), progress=False)
print(json.dumps({"store": handle.store.location, "pid": os.getpid()}))
"""


def _model_vectors(settings, path: Path) -> Path:
    """Every text a build of this corpus embeds, with the bundled model's vector for it.

    The child processes below test locking and crashes, not the model: handing them the
    model's vectors saves loading it twice more on a 2-core machine.
    """
    from bot.ingest.chunk import chunk_documents, embedding_text, units_of
    from bot.ingest.load import load_corpus
    from bot.ingest.questions import load_questions
    from bot.store.index import question_rows

    chunks = chunk_documents(
        load_corpus(settings.index.corpus_dir),
        settings.index.chunk_tokens,
        settings.index.chunk_overlap_tokens,
    )
    texts = [embedding_text(c) for c in chunks] + [u.text for c in chunks for u in units_of(c)]
    texts += [q for q, _ in question_rows(chunks, load_questions(settings.index.corpus_dir))]
    texts = list(dict.fromkeys(texts))
    vectors = shared_embeddings().embed_documents(texts)
    path.write_text(json.dumps(dict(zip(texts, [list(map(float, v)) for v in vectors], strict=True))))
    return path


def _start_child(settings, tmp_path: Path, name: str, crash: bool = False) -> subprocess.Popen:
    env = os.environ.copy() | {
        "PCL_CORPUS_DIR": str(settings.index.corpus_dir),
        "PCL_INDEX_DIR": str(settings.index.index_dir),
        "GO_FILE": str(tmp_path / "go"),
        "READY_FILE": str(tmp_path / f"ready-{name}"),
        "VECTORS_FILE": str(tmp_path / "vectors.json"),
        "CRASH_AFTER_FIRST_WRITE": "1" if crash else "0",
    }
    if not (tmp_path / "vectors.json").exists():
        _model_vectors(settings, tmp_path / "vectors.json")
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _release(tmp_path: Path, names: list[str], procs: list[subprocess.Popen]) -> None:
    deadline = time.time() + 240
    while not all((tmp_path / f"ready-{n}").exists() for n in names):
        assert time.time() < deadline, "children did not get ready"
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(p.stderr.read()[-3000:])
        time.sleep(0.05)
    (tmp_path / "go").touch()


def test_two_processes_starting_on_an_empty_index_build_it_once(template, tmp_path):
    corpus = Path(shutil.copytree(template[0], tmp_path / "corpus"))
    settings = settings_for(corpus, tmp_path / "index")
    procs = [_start_child(settings, tmp_path, n) for n in ("a", "b")]
    _release(tmp_path, ["a", "b"], procs)
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    stores = {json.loads(out.strip().splitlines()[-1])["store"] for out, _ in outs}
    builds = sum(err.count("index built:") for _, err in outs)
    assert builds == 1, "the second process must wait for the first build, then reuse it"
    assert len(stores) == 1 and store_folders(tmp_path / "index") == [current_store(tmp_path / "index")]
    answers_from_corpus(settings)


def test_crash_mid_rebuild_leaves_the_last_good_index_in_use(fresh, tmp_path):
    settings, index = fresh
    good = current_store(index)
    _make_stale(settings)
    child = _start_child(settings, tmp_path, "crash", crash=True)
    _release(tmp_path, ["crash"], [child])
    child.communicate(timeout=240)
    assert child.returncode == -signal.SIGKILL
    assert current_store(index) == good, "a crash mid-build must not change the current index"
    half = [f for f in store_folders(index) if f != good]
    assert len(half) == 1 and not (index / half[0] / "manifest.json").exists()
    # The lock died with the process: the next start does not wait, rebuilds and cleans up.
    started = time.time()
    bot, _ = answers_from_corpus(settings)
    assert time.time() - started < 120
    assert half[0] not in store_folders(index)
    assert set(store_folders(index)) == {good, current_store(index)}


def test_damaged_store_is_reported_in_one_line(template, tmp_path):
    index = clone_index(template[1], tmp_path / "index")
    folder = index / current_store(index)
    _truncate_database(folder)
    with pytest.raises(IndexError_) as caught:
        _open_checked(settings_for(template[0], index), lambda s: open_local(s, folder))
    assert "unreadable" in str(caught.value) and "\n" not in str(caught.value)
