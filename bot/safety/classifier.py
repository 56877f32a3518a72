"""The learned safety layer: which risk a message carries, however it is phrased.

Two linear models read each message and their probabilities are averaged:

- one over the question's sentence embedding (the vector the pipeline computes anyway, so it
  costs a dot product), which carries meaning across wordings;
- one over character and word n-grams (TF-IDF), which carries typos, slang and rare words the
  small embedding model blurs.

A long message is also read sentence by sentence, and each risk takes its highest probability
over the whole and the parts, so one risky sentence buried in an ordinary question still counts.
Per-category thresholds were set on held-out folds of the training data to favour recall
(`train.py`); the artefact is small, versioned and part of the index fingerprint.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pysbd

from bot.safety.policy import DECISION, EMERGENCIES, SUPPORT
from bot.settings import Settings

MODEL_FORMAT = 1
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def model_path(settings: Settings) -> Path:
    return settings.index.corpus_dir / "models" / "safety_classifier.npz"


def model_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "none"


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def segments(text: str) -> list[str]:
    """The sentences of a message (only worth reading apart when there are several)."""
    return [s.strip() for s in _segmenter().segment(text) if len(s.strip()) > 2]


class NGrams:
    """sklearn's TF-IDF (char_wb 2-5 + word 1-2, sublinear tf, l2) re-implemented for inference,
    so answering needs no scikit-learn: the vocabularies and idf weights come from the artefact."""

    def __init__(self, char_vocab: dict[str, int], word_vocab: dict[str, int], idf: np.ndarray) -> None:
        self.char_vocab = char_vocab
        self.word_vocab = word_vocab
        self.n_char = len(char_vocab)
        self.idf = idf

    @staticmethod
    def _char_wb(text: str) -> list[str]:
        out = []
        for word in text.lower().split():
            w = f" {word} "
            for n in range(2, 6):
                out.extend(w[i : i + n] for i in range(max(1, len(w) - n + 1)))
                if len(w) <= n:  # as scikit-learn: a word shorter than n counts once, whole
                    break
        return out

    @staticmethod
    def _words(text: str) -> list[str]:
        toks = _TOKEN.findall(text.lower())
        return toks + [f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)]

    def _block(self, grams: list[str], vocab: dict[str, int], offset: int) -> dict[int, float]:
        counts: dict[int, float] = {}
        for g in grams:
            i = vocab.get(g)
            if i is not None:
                counts[offset + i] = counts.get(offset + i, 0.0) + 1.0
        weighted = {i: (1.0 + np.log(c)) * self.idf[i] for i, c in counts.items()}
        norm = np.sqrt(sum(v * v for v in weighted.values())) or 1.0
        return {i: v / norm for i, v in weighted.items()}

    def features(self, text: str) -> dict[int, float]:
        return self._block(self._char_wb(text), self.char_vocab, 0) | self._block(
            self._words(text), self.word_vocab, self.n_char
        )


@dataclass(frozen=True)
class Classifier:
    labels: tuple[str, ...]
    emb_coef: np.ndarray  # (labels, 384)
    emb_bias: np.ndarray
    ngram_coef: np.ndarray  # (labels, features)
    ngram_bias: np.ndarray
    ngrams: NGrams
    thresholds: dict[str, float]
    version: str

    def probabilities(self, text: str, vector: np.ndarray) -> np.ndarray:
        emb = _softmax(self.emb_coef @ vector + self.emb_bias)
        feats = self.ngrams.features(text)
        if feats:
            idx = np.fromiter(feats.keys(), dtype=np.int64)
            val = np.fromiter(feats.values(), dtype=np.float32)
            logits = self.ngram_coef[:, idx] @ val + self.ngram_bias
        else:
            logits = self.ngram_bias.copy()
        return (emb + _softmax(logits)) / 2.0

    def classify(self, text: str, vector: np.ndarray, embedder) -> tuple[set[str], dict[str, float]]:
        """The categories whose probability passes its threshold, and every probability."""
        probs = self.probabilities(text, vector)
        parts = segments(text)
        if len(parts) > 1:
            vecs = embedder.embed_many(parts)
            for part, vec in zip(parts, vecs, strict=True):
                p = self.probabilities(part, vec)
                probs = np.maximum(probs, p)  # a risk said in one sentence is a risk of the message
        scores = {label: float(p) for label, p in zip(self.labels, probs, strict=True)}
        return decide(scores, self.thresholds), scores


def decide(scores: dict[str, float], thresholds: dict[str, float]) -> set[str]:
    """Emergency categories over their thresholds; else a decision or distress over theirs."""
    found = {c for c in EMERGENCIES if scores.get(c, 0.0) >= thresholds[c]}
    if found:
        return found
    for c in (DECISION, SUPPORT):
        if scores.get(c, 0.0) >= thresholds[c]:
            return {c}
    return set()


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def save(path: Path, model: Classifier) -> None:
    order = sorted(model.ngrams.char_vocab, key=model.ngrams.char_vocab.get)
    worder = sorted(model.ngrams.word_vocab, key=model.ngrams.word_vocab.get)
    meta = {
        "format": MODEL_FORMAT,
        "labels": list(model.labels),
        "thresholds": model.thresholds,
        "version": model.version,
    }
    arrays = dict(
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        char_vocab=np.frombuffer("\n".join(order).encode(), dtype=np.uint8),
        word_vocab=np.frombuffer("\n".join(worder).encode(), dtype=np.uint8),
        idf=model.ngrams.idf.astype(np.float32),
        emb_coef=model.emb_coef.astype(np.float32),
        emb_bias=model.emb_bias.astype(np.float32),
        ngram_coef=model.ngram_coef.astype(np.float16),
        ngram_bias=model.ngram_bias.astype(np.float32),
    )
    # A zip with fixed dates: the same model gives the same bytes (np.savez stamps the time).
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def load(path: Path) -> Classifier:
    with np.load(path) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        if meta.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path}: format {meta.get('format')} is not {MODEL_FORMAT}")
        char_vocab = {g: i for i, g in enumerate(bytes(z["char_vocab"]).decode().split("\n"))}
        word_vocab = {g: i for i, g in enumerate(bytes(z["word_vocab"]).decode().split("\n"))}
        return Classifier(
            labels=tuple(meta["labels"]),
            emb_coef=z["emb_coef"],
            emb_bias=z["emb_bias"],
            ngram_coef=z["ngram_coef"].astype(np.float32),
            ngram_bias=z["ngram_bias"],
            ngrams=NGrams(char_vocab, word_vocab, z["idf"]),
            thresholds={k: float(v) for k, v in meta["thresholds"].items()},
            version=meta["version"],
        )


def load_classifier(settings: Settings) -> Classifier | None:
    """The trained classifier, or None when the learned layer is switched off (ablations)."""
    if not settings.safety.classifier:
        return None
    path = model_path(settings)
    if not path.exists():
        raise FileNotFoundError(
            f"The safety classifier {path} is missing. Run `python -m bot.safety.train` to build it "
            "from corpus/safety/, or set PCL_SAFETY_CLASSIFIER=0 to answer with the plain rules only."
        )
    return load(path)
