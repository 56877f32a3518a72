"""The learned safety layer: which risk a message carries, however it is phrased.

The bundled all-MiniLM-L6-v2 encoder, fine-tuned for this job with a small LoRA adapter
(2.7 MB, `corpus/models/safety/`), reads the whole message and a linear head gives one
probability per category. Meaning, typos, slang and a risk buried mid-message all count,
which word lists could not do. Per-category thresholds were set on the validation split to
favour recall (`train.py`); the adapter and thresholds are versioned and part of the index
fingerprint. The base weights stay the bundled ones: nothing is downloaded.
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
    return settings.index.corpus_dir / "models" / "safety"


def decide(scores: dict[str, float], thresholds: dict[str, float]) -> set[str]:
    """Emergency categories over their thresholds; else a decision or distress over theirs."""
    found = {c for c in EMERGENCIES if scores.get(c, 0.0) >= thresholds[c]}
    if found:
        return found
    for c in (DECISION, SUPPORT):
        if scores.get(c, 0.0) >= thresholds[c]:
            return {c}
    return set()


def pooled(model, tokenizer, texts: list[str]):
    """Mean-pooled, L2-normalized last hidden states (the sentence-transformers pooling)."""
    import torch

    enc = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    out = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
    vec = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(vec, dim=-1)


@dataclass
class Classifier:
    labels: tuple[str, ...]
    thresholds: dict[str, float]
    version: str
    model: object  # the encoder with the adapter merged in (torch, eval mode)
    tokenizer: object
    head: object  # torch.nn.Linear(384, len(labels))

    def __post_init__(self) -> None:
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def probabilities(self, text: str) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        import torch

        with torch.inference_mode():
            logits = self.head(pooled(self.model, self.tokenizer, [text]) * POOL_SCALE)
            probs = torch.softmax(logits, dim=-1)[0].numpy().astype(np.float64)
        with self._lock:
            self._cache[text] = probs
            if len(self._cache) > 1024:
                self._cache.popitem(last=False)
        return probs

    def classify(self, text: str) -> tuple[set[str], dict[str, float]]:
        """The categories over their thresholds, and every probability."""
        scores = {label: float(p) for label, p in zip(self.labels, self.probabilities(text), strict=True)}
        return decide(scores, self.thresholds), scores


def load(folder: Path, base_model: str) -> Classifier:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{folder}: format {meta.get('format')} is not {MODEL_FORMAT}; retrain it")
    tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=True)
    base = AutoModel.from_pretrained(base_model, local_files_only=True)
    model = PeftModel.from_pretrained(base, str(folder)).merge_and_unload().eval()
    labels = tuple(meta["labels"])
    head = torch.nn.Linear(model.config.hidden_size, len(labels))
    head.load_state_dict(load_file(str(folder / "head.safetensors")))
    head.eval()
    return Classifier(
        labels, {k: float(v) for k, v in meta["thresholds"].items()}, meta["version"], model, tokenizer, head
    )


def load_classifier(settings: Settings) -> Classifier | None:
    """The trained classifier, or None when the learned layer is switched off (ablations)."""
    if not settings.safety.classifier:
        return None
    folder = model_dir(settings)
    if not (folder / "meta.json").exists():
        raise FileNotFoundError(
            f"The safety classifier in {folder} is missing. Run `python -m bot.safety.train` to build it "
            "from corpus/safety/, or set PCL_SAFETY_CLASSIFIER=0 to answer with the plain rules only."
        )
    return load(folder, settings.index.model_path)
