"""The learned safety layer: which risk a message carries, however it is phrased.

The bundled all-MiniLM-L6-v2 encoder, fine-tuned for this job with a small LoRA adapter
(2.7 MB, `corpus/models/safety/`), reads the whole message and a linear head gives one
probability per category. Meaning, typos, slang and a risk buried mid-message all count,
which word lists could not do. Per-category thresholds were set on the validation split to
favour recall (`train.py`); the adapter and thresholds are versioned and part of the index
fingerprint. The base weights stay the bundled ones: nothing is downloaded.

At run time the encoder with the adapter merged in and the head are ONNX graphs run by
onnxruntime (`bot/store/encoders.py`, exported once beside the index); torch is used only to
train (`train.py`) and to export. The same call also gives the message's embedding (the
embedding graph runs beside the classifier's), handed to `on_vector` so the pipeline does not
embed the question again; bottom layers that neither adapter changes, if any, run once for both
as a shared trunk graph.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.safety.policy import DECISION, EMERGENCIES, SUPPORT
from bot.settings import Settings

MODEL_FORMAT = 2
MAX_TOKENS = 256  # a 1,000-character message fits
POOL_SCALE = 10.0  # the head reads the normalized mean-pooled vector times this (as trained)


def model_dir(settings: Settings) -> Path:
    return settings.index.trained("safety")


def decide(scores: dict[str, float], thresholds: dict[str, float]) -> set[str]:
    """Emergency categories over their thresholds; else a decision or distress over theirs."""
    found = {c for c in EMERGENCIES if scores.get(c, 0.0) >= thresholds[c]}
    if found:
        return found
    for c in (DECISION, SUPPORT):
        if scores.get(c, 0.0) >= thresholds[c]:
            return {c}
    return set()


def pooled(model, tokenizer, texts: list[str], max_tokens: int = MAX_TOKENS):
    """Mean-pooled, L2-normalized last hidden states (the sentence-transformers pooling); also
    what the embedding adapter is trained on (`bot/store/train_embedding.py`)."""
    import torch

    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    out = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
    vec = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(vec, dim=-1)


@dataclass
class Classifier:
    labels: tuple[str, ...]
    thresholds: dict[str, float]
    version: str
    encoder: object  # bot.store.encoders.Encoder: probabilities, then (when given) the embedding
    max_batch: int = 32
    max_wait_ms: float = 2.0
    cache_size: int = 1024  # recent messages whose probabilities are remembered (0: none)
    on_vector: object = None  # on_vector(text, vector): the message's embedding, when the encoder gives it

    def __post_init__(self) -> None:
        from bot.store.batcher import MicroBatcher

        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        # Messages that arrive together are classified in one call.
        self.batcher = MicroBatcher(self.encoder, self.max_batch, self.max_wait_ms)

    @property
    def gives_vectors(self) -> bool:
        """Whether classifying a message also gives its embedding (to `on_vector`)."""
        return int(getattr(self.encoder, "width", 0)) > len(self.labels)

    def probabilities(self, text: str) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        row = self.batcher(text)
        n = len(self.labels)
        if len(row) > n and self.on_vector is not None:
            self.on_vector(text, np.asarray(row[n:], dtype=np.float32))
        probs = np.asarray(row[:n], dtype=np.float64)
        if self.cache_size > 0:
            with self._lock:
                self._cache[text] = probs
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return probs

    def forget(self) -> None:
        """Empty the cache (benchmarks time the model, not the cache)."""
        with self._lock:
            self._cache.clear()

    def classify(self, text: str) -> tuple[set[str], dict[str, float]]:
        """The categories over their thresholds, and every probability."""
        scores = {label: float(p) for label, p in zip(self.labels, self.probabilities(text), strict=True)}
        return decide(scores, self.thresholds), scores


def read_meta(folder: Path) -> dict:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{folder}: format {meta.get('format')} is not {MODEL_FORMAT}; retrain it")
    return meta


def load(folder: Path, settings: Settings, progress: bool = False) -> Classifier:
    """The classifier from its ONNX export (made once from the adapter, head and bundled weights)."""
    from bot.store.encoders import load_safety_encoder

    meta = read_meta(folder)
    m = settings.models
    encoder = load_safety_encoder(settings, folder, progress=progress)
    return Classifier(
        tuple(meta["labels"]),
        {k: float(v) for k, v in meta["thresholds"].items()},
        meta["version"],
        encoder,
        m.max_batch,
        m.batch_wait_ms,
        m.cache_texts,
    )


def load_torch(folder: Path, base_model: str):
    """The classifier as trained, on torch: (model, tokenizer, head). For checks and training."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    meta = read_meta(folder)
    tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=True)
    base = AutoModel.from_pretrained(base_model, local_files_only=True)
    model = PeftModel.from_pretrained(base, str(folder)).merge_and_unload().eval()
    head = torch.nn.Linear(model.config.hidden_size, len(meta["labels"]))
    head.load_state_dict(load_file(str(folder / "head.safetensors")))
    return model, tokenizer, head.eval()


def load_classifier(settings: Settings, progress: bool = False) -> Classifier | None:
    """The trained classifier, or None when the learned layer is switched off (ablations)."""
    if not settings.safety.classifier:
        return None
    folder = model_dir(settings)
    if not (folder / "meta.json").exists():
        raise FileNotFoundError(
            f"The safety classifier in {folder} is missing. Run `python -m bot.safety.train` to build it "
            "from corpus/safety/, or set PCL_SAFETY_CLASSIFIER=0 to answer with the plain rules only."
        )
    return load(folder, settings, progress=progress)
