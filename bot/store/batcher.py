"""Micro-batching: texts that arrive together go through the model in one call.

A model call on a batch of 32 short texts costs a few times one call on a single text, so when
many people ask at once, embedding (and classifying) their questions together is what lets two
cores keep up. `MicroBatcher` does it without a thread of its own ("group commit"):

- the first caller finds the model idle and runs its text at once, in its own thread: one
  person alone never waits for anybody;
- callers arriving while a batch runs queue up; when it ends, one of them takes every queued
  text (up to `max_batch`) and runs them as the next batch, in one call, while the others wait
  for their rows;
- when the last batch held several texts (people are asking at the same time), the next leader
  waits up to `max_wait_ms` for the queue to fill to that size before it runs: a bounded wait
  that only happens under load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

_RECENT_S = 0.1  # a batch of several this recent means people are asking at the same time


class _Slot:
    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class MicroBatcher:
    def __init__(
        self, fn: Callable[[list[Any]], Sequence[Any]], max_batch: int = 32, max_wait_ms: float = 2.0
    ) -> None:
        """`fn` maps a list of items to one result per item, in order."""
        self.fn = fn
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self._cond = threading.Condition()
        self._queue: list[_Slot] = []
        self._running = False
        self._last_size = 0
        self._last_end = 0.0
        # statistics (benchmarks, tests, /api/health)
        self.calls = 0
        self.batches = 0
        self.largest = 0

    def __call__(self, item: Any) -> Any:
        slot = _Slot(item)
        with self._cond:
            self._queue.append(slot)
            self.calls += 1
            while self._running and not slot.done:
                self._cond.wait()
            if not slot.done:
                self._running = True  # this caller leads until its own item is done
        if not slot.done:
            self._lead(slot)
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _lead(self, mine: _Slot) -> None:
        try:
            while not mine.done:
                with self._cond:
                    wanted = min(self.max_batch, self._last_size)
                    if (
                        self.max_wait
                        and wanted > len(self._queue)
                        and time.monotonic() - self._last_end < _RECENT_S
                    ):
                        deadline = time.monotonic() + self.max_wait
                        while len(self._queue) < wanted and (left := deadline - time.monotonic()) > 0:
                            self._cond.wait(left)
                    batch = self._queue[: self.max_batch]
                    del self._queue[: self.max_batch]
                self._run(batch)
        finally:
            with self._cond:
                self._running = False
                self._cond.notify_all()  # a waiting caller whose item is still queued leads next

    def _run(self, batch: list[_Slot]) -> None:
        try:
            results = self.fn([s.item for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # noqa: BLE001 - every caller in the batch gets the error
            for s in batch:
                s.error = exc
        else:
            for s, r in zip(batch, results, strict=True):
                s.result = r
        with self._cond:
            for s in batch:
                s.done = True
            self.batches += 1
            self.largest = max(self.largest, len(batch))
            self._last_size = len(batch)
            self._last_end = time.monotonic()
            self._cond.notify_all()

    def idle(self) -> bool:
        """No batch running and nobody waiting (a hint: it may change at once)."""
        return not self._running and not self._queue

    def stats(self) -> dict[str, float]:
        with self._cond:
            return {
                "calls": self.calls,
                "batches": self.batches,
                "largest_batch": self.largest,
                "mean_batch": round(self.calls / self.batches, 2) if self.batches else 0.0,
            }
