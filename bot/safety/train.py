"""`python -m bot.safety.train`: build the safety classifier from the labelled message set.

Deterministic: the same data and model give the same artefact, byte for byte (fixed fold order,
deterministic solvers). Steps:

1. load `corpus/safety/messages/*.jsonl`; new families get a frozen split (train/val/test);
2. embed every message (and the sentences of long ones) with the bundled model;
3. on train + val, 5 folds grouped by family give every message an out-of-fold probability;
   each category's threshold is the highest that keeps its out-of-fold recall at its target
   (risks lean toward recall), so thresholds are never set on the data a model was fitted on;
4. fit the final models on train + val and write `corpus/safety/classifier.npz`.

The test split and the separately written `fresh` set are never read here.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time

import numpy as np

from bot.safety import classifier as clf
from bot.safety import data
from bot.safety.policy import DECISION, EMERGENCIES, PRECEDENCE, SUPPORT
from bot.settings import Settings
from bot.store.embed import Embedder, load_embeddings

# Out-of-fold recall each category's threshold must keep (set on train + val only).
RECALL_TARGETS = {c: 0.97 for c in EMERGENCIES} | {DECISION: 0.95, SUPPORT: 0.85}
EMB_C, NGRAM_C = 4.0, 16.0
FOLDS = 5


def _vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    return make_union(
        TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, dtype=np.float32
        ),
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=1, sublinear_tf=True, dtype=np.float32),
    )


def _fit(texts: list[str], vecs: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    tf = _vectorizer().fit(texts)
    emb = LogisticRegression(C=EMB_C, max_iter=5000, class_weight="balanced").fit(vecs, y)
    ngram = LogisticRegression(C=NGRAM_C, max_iter=5000, class_weight="balanced").fit(tf.transform(texts), y)
    return tf, emb, ngram


def _to_classifier(tf, emb, ngram, thresholds: dict[str, float], version: str) -> clf.Classifier:
    char_tf, word_tf = (t for _, t in tf.transformer_list)
    idf = np.concatenate([char_tf.idf_, word_tf.idf_]).astype(np.float32)
    return clf.Classifier(
        labels=PRECEDENCE,
        emb_coef=emb.coef_.astype(np.float32),
        emb_bias=emb.intercept_.astype(np.float32),
        ngram_coef=ngram.coef_.astype(np.float32),
        ngram_bias=ngram.intercept_.astype(np.float32),
        ngrams=clf.NGrams(
            {g: int(i) for g, i in char_tf.vocabulary_.items()},
            {g: int(i) for g, i in word_tf.vocabulary_.items()},
            idf,
        ),
        thresholds=thresholds,
        version=version,
    )


def _segment_index(texts: list[str]) -> tuple[list[str], list[int]]:
    parts, owner = [], []
    for i, t in enumerate(texts):
        ss = clf.segments(t)
        if len(ss) > 1:
            parts.extend(ss)
            owner.extend([i] * len(ss))
    return parts, owner


def _probabilities(model: clf.Classifier, texts, vecs, parts, part_vecs, owner) -> np.ndarray:
    probs = np.stack([model.probabilities(t, v) for t, v in zip(texts, vecs, strict=True)])
    for t, v, i in zip(parts, part_vecs, owner, strict=True):
        probs[i] = np.maximum(probs[i], model.probabilities(t, v))
    return probs


def thresholds_for(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    out = {}
    for c, label in enumerate(PRECEDENCE):
        if label == "none":
            continue
        pos = np.sort(probs[y == c, c])
        k = int(np.floor((1.0 - RECALL_TARGETS[label]) * len(pos)))
        out[label] = float(pos[min(k, len(pos) - 1)]) if len(pos) else 1.0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.safety.train", description=__doc__.split("\n\n")[0])
    p.parse_args(argv)
    from sklearn.model_selection import GroupKFold

    settings = Settings.from_env()
    root = settings.index.corpus_dir / "safety"
    started = time.perf_counter()
    messages = [m for m in data.load(root, write_missing_splits=True) if m.split in ("train", "val")]
    texts = [m.text for m in messages]
    y = np.array([PRECEDENCE.index(m.label) for m in messages])
    families = np.array([m.family for m in messages])
    embedder = Embedder(load_embeddings(settings))
    vecs = embedder.embed_many(texts)
    parts, owner = _segment_index(texts)
    part_vecs = embedder.embed_many(parts)
    owner_arr = np.array(owner)
    print(f"{len(messages)} messages, {len(parts)} sentences of long ones embedded", file=sys.stderr)

    oof = np.zeros((len(messages), len(PRECEDENCE)), dtype=np.float32)
    for fold, (tr, te) in enumerate(GroupKFold(n_splits=FOLDS).split(texts, y, families)):
        tf, emb, ngram = _fit([texts[i] for i in tr], vecs[tr], y[tr])
        model = _to_classifier(tf, emb, ngram, {}, "fold")
        in_fold = np.isin(owner_arr, te)
        pos = {i: k for k, i in enumerate(te)}
        oof[te] = _probabilities(
            model,
            [texts[i] for i in te],
            vecs[te],
            [parts[j] for j in np.where(in_fold)[0]],
            part_vecs[in_fold],
            [pos[o] for o in owner_arr[in_fold]],
        )
        print(f"fold {fold + 1}/{FOLDS}", file=sys.stderr)
    thresholds = thresholds_for(oof, y)
    predicted = [clf.decide(dict(zip(PRECEDENCE, row, strict=True)), thresholds) for row in oof]
    benign = [bool(found & set(EMERGENCIES)) for found, label in zip(predicted, y, strict=True) if label == 6]

    tf, emb, ngram = _fit(texts, vecs, y)
    digest = hashlib.sha256("\n".join(f"{m.family}\t{m.label}\t{m.text}" for m in messages).encode())
    version = f"data:{digest.hexdigest()[:12]}"
    model = _to_classifier(tf, emb, ngram, thresholds, version)
    # The inference re-implementation must match scikit-learn's features exactly.
    check = tf.transform(texts[:50]).toarray()
    for row, t in zip(check, texts[:50], strict=True):
        mine = np.zeros_like(row)
        for i, v in model.ngrams.features(t).items():
            mine[i] = v
        assert np.allclose(row, mine, atol=1e-5), f"n-gram features differ for {t!r}"
    path = clf.model_path(settings)
    clf.save(path, model)
    print(f"thresholds: { {k: round(v, 3) for k, v in thresholds.items()} }")
    print(f"out-of-fold benign -> emergency: {sum(benign) / max(1, len(benign)):.3f}")
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, version {version}) in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
