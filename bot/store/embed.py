"""The bundled sentence-embedding model, loaded once from local disk.

`Embedder` is what the pipeline uses: one normalized vector per text (cosine similarity is then a
dot product), with a small cache so earlier turns of a conversation are embedded only once.
`load_embeddings` gives the same model as a LangChain `Embeddings` for the index and chains.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from threading import Lock

import numpy as np
from langchain_huggingface import HuggingFaceEmbeddings

from bot.settings import ConfigError, Settings

DIM = 384


def load_embeddings(settings: Settings) -> HuggingFaceEmbeddings:
    """Normalized all-MiniLM-L6-v2 on the CPU."""
    path = settings.index.model_path
    if not Path(path, "modules.json").exists() and not Path(path, "config.json").exists():
        raise ConfigError(
            f"No sentence-transformers model at {path}. Unset PCL_EMBED_MODEL to use the bundled "
            "model, or point it at a local model folder."
        )
    return HuggingFaceEmbeddings(
        model_name=path,
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"normalize_embeddings": True, "batch_size": 32},
        query_encode_kwargs={"normalize_embeddings": True},
    )


def model_id(settings: Settings) -> str:
    """A stable name for the fingerprint: folder name plus weight-file size."""
    path = Path(settings.index.model_path)
    weights = [p for p in path.glob("*.safetensors")] + [p for p in path.glob("*.bin")]
    size = sum(p.stat().st_size for p in weights)
    return f"{path.parent.name}/{path.name}:{size}"


def embed_query(embeddings: HuggingFaceEmbeddings, text: str) -> np.ndarray:
    return np.asarray(embeddings.embed_query(text), dtype=np.float32)


def embed_texts(embeddings: HuggingFaceEmbeddings, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.asarray(embeddings.embed_documents(texts), dtype=np.float32)


class Embedder:
    """One vector per text; recent texts are remembered (a conversation's earlier turns)."""

    def __init__(self, embeddings: HuggingFaceEmbeddings, cache_size: int = 512) -> None:
        self.embeddings = embeddings
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = cache_size
        self._lock = Lock()

    def embed(self, text: str) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vec = embed_query(self.embeddings, text)
        with self._lock:
            self._cache[text] = vec
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return vec

    def embed_many(self, texts: list[str]) -> np.ndarray:
        return embed_texts(self.embeddings, texts)
