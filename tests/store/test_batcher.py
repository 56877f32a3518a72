"""The micro-batcher: questions that arrive together share one model call; one alone never waits."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bot.store.batcher import MicroBatcher


def test_a_lone_caller_runs_at_once_without_waiting() -> None:
    seen = []
    batcher = MicroBatcher(lambda items: seen.append(list(items)) or [i * 2 for i in items], max_wait_ms=200)
    t = time.perf_counter()
    assert batcher(21) == 42
    assert batcher(5) == 10
    assert time.perf_counter() - t < 0.1  # far below the 200 ms bounded wait
    assert seen == [[21], [5]]


def test_callers_arriving_together_share_calls_and_each_gets_its_own_row() -> None:
    calls = []
    gate = threading.Event()

    def slow_double(items):
        calls.append(len(items))
        gate.wait(0.05) if len(calls) == 1 else None  # the first call is slow: others queue behind it
        return [i * 2 for i in items]

    batcher = MicroBatcher(slow_double, max_batch=64, max_wait_ms=2)
    results: dict[int, int] = {}

    def ask(i: int) -> None:
        results[i] = batcher(i)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(24)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert results == {i: i * 2 for i in range(24)}
    assert len(calls) < 24 and max(calls) > 1  # batched
    stats = batcher.stats()
    assert stats["calls"] == 24 and stats["batches"] == len(calls) and stats["largest_batch"] == max(calls)


def test_max_batch_bounds_each_call() -> None:
    sizes = []
    release = threading.Event()

    def fn(items):
        sizes.append(len(items))
        if len(sizes) == 1:
            release.wait(1)
        return items

    batcher = MicroBatcher(fn, max_batch=4, max_wait_ms=0)
    first = threading.Thread(target=batcher, args=(-1,))
    first.start()
    time.sleep(0.05)
    others = [threading.Thread(target=batcher, args=(i,)) for i in range(10)]
    for th in others:
        th.start()
    time.sleep(0.05)
    release.set()
    for th in [first, *others]:
        th.join(10)
    assert sizes[0] == 1 and max(sizes) <= 4 and sum(sizes) == 11


def test_an_error_reaches_every_caller_of_that_batch_and_the_batcher_recovers() -> None:
    def fn(items):
        if "bad" in items:
            raise ValueError("model failed")
        return [s.upper() for s in items]

    batcher = MicroBatcher(fn)
    with pytest.raises(ValueError, match="model failed"):
        batcher("bad")
    assert batcher("ok") == "OK"


def test_real_embeddings_batched_equal_one_by_one(companion) -> None:
    texts = [
        "What is CT0596?",
        "Can PCL patients join the CT071 trial?",
        "how long do people live with pcl",
        "hi",
    ]
    alone = np.vstack([companion.embeddings.encode([t]) for t in texts])
    together = companion.embeddings.encode(texts)
    assert np.allclose(alone, together, atol=1e-5)
    out: dict[str, np.ndarray] = {}
    threads = [
        threading.Thread(target=lambda t=t: out.__setitem__(t, companion.embedder.batcher(t)))
        for t in texts * 4
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    for i, t in enumerate(texts):
        assert np.allclose(out[t], alone[i], atol=1e-5)


def test_the_classifier_call_gives_the_question_embedding(companion) -> None:
    """Classifying a message also gives its embedding (the two models share a trunk graph): a
    question that needs no spelling fix makes no embedding call of its own, and the vector kept
    is the embedding model's."""
    question = "What does NKG2A do in CT0596?"
    assert companion.classifier.gives_vectors
    companion.forget()
    before = companion.embedder.batcher.calls
    reply = companion.ask(question)
    assert reply.kind == "answer"
    assert companion.embedder.batcher.calls == before
    kept = companion.embedder.embed(question)
    assert float(kept @ companion.embeddings.encode([question])[0]) > 0.99999


def test_a_corrected_question_is_still_embedded_once(companion) -> None:
    """The guard prefetches the text analyse embeds when it is not the text as typed: the
    question with its misspellings fixed."""
    companion.forget()
    before = companion.embedder.batcher.calls
    reply = companion.ask("wat is plasma sell leukemia")
    assert reply.kind in ("answer", "not_found")
    assert companion.embedder.batcher.calls - before == 1


def test_without_a_cache_the_prefetch_is_still_handed_over(companion) -> None:
    from bot.store.embed import Embedder

    embedder = Embedder(companion.embeddings, cache_size=0)
    embedder.prefetch("What is CT0596?")
    first = embedder.embed("What is CT0596?")
    assert (embedder.batcher.calls, embedder.prefetched) == (1, 1)
    again = embedder.embed("What is CT0596?")  # nothing remembered: computed again
    assert embedder.batcher.calls == 2 and np.allclose(first, again, atol=1e-6)


def test_without_a_cache_a_vector_handed_over_is_still_used(companion) -> None:
    """The classifier's call gives the message's embedding; with no cache (as the benchmark runs
    the app) analyse still takes it instead of embedding the question again."""
    from bot.store.embed import Embedder

    embedder = Embedder(companion.embeddings, cache_size=0)
    vec = companion.embeddings.encode(["Who sponsors CT071?"])[0]
    embedder.hand_over("Who sponsors CT071?", vec)
    assert np.array_equal(embedder.embed("Who sponsors CT071?"), vec)
    assert embedder.batcher.calls == 0
    embedder.embed("Who sponsors CT071?")  # taken once; nothing remembered: computed now
    assert embedder.batcher.calls == 1


def test_the_cache_sizes_come_from_the_settings(settings) -> None:
    from dataclasses import replace

    from bot.pipeline import Companion

    quiet = replace(settings, models=replace(settings.models, cache_texts=0))
    companion = Companion(quiet, progress=False)
    for _ in range(2):
        companion.ask("Who sponsors CT071?")
    # every ask pays for the classifier's call, which also gives the embedding: nothing is
    # remembered between questions, and the embedding model's own call is the warm-up alone
    assert companion.classifier.batcher.calls >= 3  # the warm-up, then one per ask
    assert companion.embedder.batcher.calls == 1
    assert not companion.embedder._cache and not companion.classifier._cache
    assert "Who sponsors CT071?" not in companion.embedder._pending  # each handed-over vector was taken
