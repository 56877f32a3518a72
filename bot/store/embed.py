"""The bundled sentence-embedding model, run with onnxruntime (see `encoders.py`).

`Embedder` is what the pipeline uses: one normalized vector per text (cosine similarity is then a
dot product). Questions that arrive together are embedded in one call (`batcher.MicroBatcher`),
and recent texts are remembered, so a conversation's earlier turns are embedded only once.
`load_embeddings` gives the same model with LangChain's `Embeddings` methods, for the index and
chains.
"""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from threading import Lock

import numpy as np

from bot.settings import Settings
from bot.store.batcher import MicroBatcher
from bot.store.encoders import Encoder, load_embed_encoder

DIM = 384


class OnnxEmbeddings:
    """all-MiniLM-L6-v2 (normalized, as sentence-transformers computes it) from its ONNX export.

    Has LangChain's `Embeddings` methods (`embed_documents`, `embed_query`), so it can be handed
    to LangChain (langchain_chroma, chains) as is; it does not import langchain_core, which
    would cost start-up time that answering does not need."""

    def __init__(self, encoder: Encoder, key: str) -> None:
        self.encoder = encoder
        self.key = key  # the export key: part of the index fingerprint

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encoder(texts)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder([text])[0].tolist()


def load_embeddings(settings: Settings, progress: bool = False) -> OnnxEmbeddings:
    """The embedding model's ONNX export (made on first use from the local weights)."""
    encoder, key = load_embed_encoder(settings, progress=progress)
    return OnnxEmbeddings(encoder, key)


def model_id(settings: Settings) -> str:
    """A stable name for the fingerprint: folder name plus weight-file size."""
    path = Path(settings.index.model_path)
    weights = [p for p in path.glob("*.safetensors")] + [p for p in path.glob("*.bin")]
    size = sum(p.stat().st_size for p in weights)
    return f"{path.parent.name}/{path.name}:{size}"


def embed_query(embeddings, text: str) -> np.ndarray:
    if isinstance(embeddings, OnnxEmbeddings):
        return embeddings.encode([text])[0]
    return np.asarray(embeddings.embed_query(text), dtype=np.float32)


def embed_texts(embeddings, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    if isinstance(embeddings, OnnxEmbeddings):
        return embeddings.encode(texts)
    return np.asarray(embeddings.embed_documents(texts), dtype=np.float32)


class Embedder:
    """One vector per text, batched with whoever asks at the same time; recent texts remembered.

    `prefetch` starts a text's embedding on a helper thread and returns at once; a later `embed`
    of the same text waits for that result instead of computing it again. The safety classifier's
    call gives the embedding of the message as typed (`hand_over`); when analyse will embed another
    text (a misspelling corrected), the guard prefetches that one while the classifier reads the
    message, on the other core; under load it does nothing (see `prefetch`).
    `cache_size` recent vectors are remembered (0: none; a prefetch is still handed over).
    """

    _PENDING_MAX = 64  # prefetches nobody collected (a question settled by the guard) are dropped

    def __init__(
        self, embeddings, cache_size: int = 1024, max_batch: int = 32, max_wait_ms: float = 2.0
    ) -> None:
        self.embeddings = embeddings
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pending: OrderedDict[str, Future] = OrderedDict()  # prefetches under way or unclaimed
        self._size = max(0, cache_size)
        self._lock = Lock()
        self.batcher = MicroBatcher(lambda texts: embed_texts(self.embeddings, texts), max_batch, max_wait_ms)
        self.prefetched = 0  # texts whose prefetch was used (diagnostics, tests)
        self._helper = ThreadPoolExecutor(max_workers=2, thread_name_prefix="embed-prefetch")

    def embed(self, text: str) -> np.ndarray:
        with self._lock:
            future = self._pending.get(text)
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
        if future is not None:
            try:
                vec = future.result()
                self.prefetched += 1
                return vec
            except Exception:  # noqa: BLE001 - the prefetch failed: compute it here, where errors surface
                pass
            finally:
                with self._lock:  # collected: later askers read the cache (or compute)
                    if self._pending.get(text) is future:
                        del self._pending[text]
        if hit is not None:
            return hit
        vec = self.batcher(text)
        self._remember(text, vec)
        return vec

    def prefetch(self, text: str) -> None:
        if not self.batcher.idle():
            # Under load both cores are busy with other people's questions already: a second
            # thread would win nothing, and batching does the saving.
            return
        with self._lock:
            if text in self._cache or text in self._pending:
                return
            future: Future = Future()
            self._pending[text] = future
            while len(self._pending) > self._PENDING_MAX:
                self._pending.popitem(last=False)

        def run() -> None:
            try:
                vec = self.batcher(text)
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for it
                future.set_exception(exc)
                return
            self._remember(text, vec)
            future.set_result(vec)

        self._helper.submit(run)

    def hand_over(self, text: str, vec: np.ndarray) -> None:
        """A text's vector computed elsewhere (the safety classifier's call gives the message's
        embedding beside its probabilities): the next `embed` of the text takes it, even with no
        cache, and the cache keeps it."""
        future: Future = Future()
        future.set_result(vec)
        with self._lock:
            self._pending[text] = future
            while len(self._pending) > self._PENDING_MAX:
                self._pending.popitem(last=False)
        self._remember(text, vec)

    def _remember(self, text: str, vec: np.ndarray) -> None:
        if not self._size:
            return
        with self._lock:
            self._cache[text] = vec
            self._cache.move_to_end(text)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)

    def forget(self) -> None:
        """Empty the cache (benchmarks time the model, not the cache)."""
        with self._lock:
            self._cache.clear()
            self._pending.clear()

    def embed_many(self, texts: list[str]) -> np.ndarray:
        return embed_texts(self.embeddings, texts)
