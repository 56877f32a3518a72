"""Thumbs up/down on answers, appended to a local JSONL log.

One line per rating: when, the question, the kind of reply, the cited sources, the rating.
Nothing else about the person is kept (no IP, no session, no answer text). Several app workers
or processes may rate at once, so every append holds a file lock next to the log.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

RATINGS = ("up", "down", "withdrawn")  # withdrawn: the same thumb clicked again


class FeedbackError(OSError):
    """The log cannot be written; the message names the file and what to check."""


@dataclass(frozen=True)
class Rating:
    ts: str  # ISO 8601, UTC
    question: str
    kind: str  # Reply.kind of the rated answer
    sources: tuple[str, ...]  # cited source ids, in citation order, without repeats
    rating: str  # up | down | withdrawn


class FeedbackLog:
    """Appends ratings to `path`; the file and its folder are created on the first rating."""

    def __init__(self, path: Path, lock_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout

    def record(self, question: str, kind: str, sources: tuple[str, ...] | list[str], rating: str) -> Rating:
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        entry = Rating(
            ts=datetime.now(UTC).isoformat(timespec="milliseconds"),
            question=question,
            kind=kind,
            sources=tuple(dict.fromkeys(sources)),
            rating=rating,
        )
        line = json.dumps(asdict(entry), ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with (
                FileLock(self.lock_path, timeout=self.lock_timeout),
                self.path.open("a", encoding="utf-8") as f,
            ):
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # includes filelock.Timeout
            raise FeedbackError(
                f"Cannot append to the feedback log {self.path}: {exc}. "
                "Check that the folder is writable or set PCL_FEEDBACK_LOG to another path."
            ) from exc
        return entry

    def read(self) -> list[dict]:
        """All ratings so far (tests, maintainers); an absent log means none."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
