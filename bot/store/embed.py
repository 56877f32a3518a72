"""The bundled sentence-embedding model, loaded once from local disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from langchain_huggingface import HuggingFaceEmbeddings

from bot.settings import ConfigError, Settings


def load_embeddings(settings: Settings) -> HuggingFaceEmbeddings:
    """Normalized all-MiniLM-L6-v2 on the CPU; cosine similarity is then a dot product."""
    path = settings.model_path
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
    path = Path(settings.model_path)
    weights = [p for p in path.glob("*.safetensors")] + [p for p in path.glob("*.bin")]
    size = sum(p.stat().st_size for p in weights)
    return f"{path.parent.name}/{path.name}:{size}"


def embed_query(embeddings: HuggingFaceEmbeddings, text: str) -> np.ndarray:
    return np.asarray(embeddings.embed_query(text), dtype=np.float32)


def embed_texts(embeddings: HuggingFaceEmbeddings, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
