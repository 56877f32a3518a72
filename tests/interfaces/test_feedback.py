"""The feedback log: created on demand, only the five agreed fields, nothing lost under concurrency."""

from __future__ import annotations

import json
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from filelock import FileLock

from bot.interfaces.feedback import FeedbackError, FeedbackLog

FIELDS = {"ts", "question", "kind", "sources", "rating"}


def test_log_and_its_folder_are_created_on_the_first_rating(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there.jsonl"
    log = FeedbackLog(path)
    assert not path.parent.exists()
    log.record("What is CT0596?", "answer", ["healthtree-allo-car-t-pcl", "glossary", "glossary"], "up")
    [entry] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert set(entry) == FIELDS  # nothing else about the person
    assert entry["question"] == "What is CT0596?"
    assert entry["kind"] == "answer"
    assert entry["sources"] == ["healthtree-allo-car-t-pcl", "glossary"]  # in order, no repeats
    assert entry["rating"] == "up"
    assert entry["ts"].endswith("+00:00")


def test_unknown_rating_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rating must be one of"):
        FeedbackLog(tmp_path / "f.jsonl").record("q", "answer", [], "meh")


def test_unwritable_log_says_which_file_and_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(FeedbackError, match="a-file.*PCL_FEEDBACK_LOG"):
        FeedbackLog(blocker / "ratings.jsonl").record("q", "answer", [], "down")


def test_a_rating_waits_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path / "f.jsonl")
    lock = FileLock(log.lock_path)
    lock.acquire()
    writer = threading.Thread(target=log.record, args=("q", "answer", [], "up"))
    try:
        writer.start()
        writer.join(timeout=1.0)
        assert writer.is_alive(), "record() wrote without taking the lock"
        assert log.read() == []
    finally:
        lock.release()
    writer.join(timeout=30)
    assert [e["rating"] for e in log.read()] == ["up"]


def _write_many(path: str, writer: int, count: int) -> None:
    log = FeedbackLog(Path(path))
    # Long questions make each line larger than one buffer, so unlocked writers would interleave.
    filler = "x" * 20_000
    for i in range(count):
        log.record(f"{writer}:{i}:{filler}", "answer", ["glossary"], "up" if i % 2 else "down")


def test_many_concurrent_ratings_from_processes_and_threads_lose_none(tmp_path: Path) -> None:
    path = tmp_path / "ratings.jsonl"
    procs, per_proc, threads, per_thread = 4, 40, 8, 25
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_many, args=(str(path), p, per_proc)) for p in range(procs)]
    for w in workers:
        w.start()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda t: _write_many(str(path), 100 + t, per_thread), range(threads)))
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0

    entries = FeedbackLog(path).read()  # every line must parse: no torn or interleaved lines
    seen = {tuple(e["question"].split(":")[:2]) for e in entries}
    expected = {(str(p), str(i)) for p in range(procs) for i in range(per_proc)} | {
        (str(100 + t), str(i)) for t in range(threads) for i in range(per_thread)
    }
    assert len(entries) == procs * per_proc + threads * per_thread
    assert seen == expected
