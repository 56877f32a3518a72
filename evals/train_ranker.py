"""`python -m evals.train_ranker`: learn the sentence ranker and its floor from labelled questions.

Training questions, never the frozen test split:

- the reviewed questions stored per sentence (`corpus/questions/`), each asked with its own
  item's questions left out of the match, so a stored question never finds itself;
- the dev split of the eval set (`evals/cases/dev.yaml`): a sentence is a positive when it holds
  a required fact and sits in an expected section; cases that expect `not_found` or
  `out_of_scope` teach that nothing should score high.

A logistic regression over `bot.answer.rank.FEATURES` is fitted (deterministic), then the
relevance floor and the margin are picked on the dev split by simulating selection, and written
with the weights to `corpus/models/ranker.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bot.answer.rank import (
    ANSWERABLE_FEATURES,
    FEATURES,
    RANKER_FORMAT,
    Candidate,
    Linear,
    RankerModel,
    answerable_features,
)
from bot.answer.select import select
from bot.pipeline import Companion
from bot.settings import Settings
from evals.dataset import Corpus, load_cases
from evals.text import normalize

CASES = Path(__file__).parent / "cases"
ANSWERING = ("answer", "not_found", "out_of_scope")
C = 1.0
STORED_WEIGHT = 0.0  # 5-fold CV on dev: adding the stored questions (weight 0.3 or 1) did not help


def _dev_examples(bot: Companion, corpus: Corpus):
    """(features, labels, case) per dev case the ranker decides (not safety or invalid ones)."""
    out = []
    for case in load_cases(CASES, corpus).cases:
        if case.split != "dev" or case.kind not in ANSWERING:
            continue
        q = bot.trace(case.question, list(case.history) or None)
        if not q.candidates:
            continue
        sections = {(s.source_id, s.section) for s in case.sections}
        labels = []
        for c in q.candidates:
            md = c.hit.chunk.metadata
            in_section = (md["source_id"], md.get("section", "")) in sections
            text = normalize(c.unit.text)
            holds = any(any(normalize(a) in text for a in f.alternatives) for f in case.facts)
            labels.append(int(case.kind == "answer" and in_section and holds))
        out.append((np.vstack([c.features for c in q.candidates]), np.array(labels), case, q))
    return out


def _stored_examples(bot: Companion):
    vecs, texts, targets = bot.index.stored_questions()
    siblings: dict[tuple, set[int]] = {}
    for i, t in enumerate(targets):
        siblings.setdefault(tuple(t), set()).add(i)
    out = []
    for text, target in zip(texts, targets, strict=True):
        if len(target) > 3:  # templated questions point at a whole trial section: no sentence label
            continue
        q = bot.trace(text, exclude_questions=frozenset(siblings[tuple(target)]))
        if not q.candidates:
            continue
        wanted = set(target)
        y = np.array([int((c.hit.chunk.id, c.j) in wanted) for c in q.candidates])
        if y.any():
            out.append((np.vstack([c.features for c in q.candidates]), y))
    return out


def _rescored(q, model: RankerModel) -> list[Candidate]:
    probs = model.probability(np.vstack([c.features for c in q.candidates]))
    ranked = [replace(c, score=float(p)) for c, p in zip(q.candidates, probs, strict=True)]
    return sorted(ranked, key=lambda c: (-c.score, c.hit.rank, c.j))


def _prepared(dev, model: RankerModel) -> list[tuple]:
    """Per dev case: its candidates ranked by `model`, and the answerable probability."""
    out = []
    for _, _, case, q in dev:
        ranked = _rescored(q, model)
        out.append((case, ranked, float(model.answerable.probability(answerable_features(q, ranked)))))
    return out


# Quoting sources for a question they don't cover reads as an answer and misleads ("never
# invent"); saying "not covered" for a covered one only disappoints. The floor is chosen with
# a wrong quote counted this many times a missed answer.
MISLEADING_COST = 2.0


def _simulate(prepared: list[tuple], settings: Settings) -> float:
    """Share of dev cases a selection with these settings gets right (kind and facts), less
    MISLEADING_COST - 1 for each question the sources don't cover that it would quote for."""
    good = 0.0
    for case, ranked, answerable in prepared:
        chosen = select(ranked, answerable, settings.answer)
        if case.kind != "answer":
            good += 1.0 if not chosen else 1.0 - MISLEADING_COST
            continue
        said = normalize(" ".join(c.unit.text for c in chosen))
        good += bool(chosen) and all(any(normalize(a) in said for a in f.alternatives) for f in case.facts)
    return good / max(1, len(prepared))


def fit(stored, dev, c: float, stored_weight: float) -> RankerModel:
    """The three linear models: which sentence answers, whether any does, whether on the subject."""
    parts = ([e for e in stored] if stored_weight > 0 else []) + [(x, y) for x, y, _, _ in dev]
    x = np.vstack([e[0] for e in parts])
    y = np.concatenate([e[1] for e in parts])
    w = np.concatenate(
        [np.full(len(e[1]), stored_weight) for e in (stored if stored_weight > 0 else [])]
        + [np.full(len(e[1]), 1.0) for e in dev]
    )
    sentence = _weighted_fit(x, y, w, c)
    zero = Linear(np.zeros(len(ANSWERABLE_FEATURES)), 0.0)
    partial = RankerModel(sentence, zero, zero, "")
    qx = np.vstack([answerable_features(q, _rescored(q, partial)) for _, _, _, q in dev])
    qy = np.array([int(case.kind == "answer") for _, _, case, _ in dev])
    sy = np.array([int(case.kind != "out_of_scope") for _, _, case, _ in dev])
    return RankerModel(
        sentence,
        _balanced_fit(qx, qy, c),
        _balanced_fit(qx, sy, c),
        "",
    )


def _weighted_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float) -> Linear:
    from sklearn.linear_model import LogisticRegression

    mean, std = _scale(x)
    lr = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / std, y, sample_weight=w)
    return _folded(lr, mean, std)


def _balanced_fit(x: np.ndarray, y: np.ndarray, c: float) -> Linear:
    from sklearn.linear_model import LogisticRegression

    mean, std = _scale(x)
    lr = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit((x - mean) / std, y)
    return _folded(lr, mean, std)


def _scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit on standardised features: the penalty treats every weight alike, so a feature with a
    narrow range (a question match that matters between 0.7 and 1.0) would otherwise be held
    back by its scale rather than by what it tells. The weights are folded back afterwards, so
    the saved model reads raw features as before."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std < 1e-9] = 1.0
    return mean, std


def _folded(lr, mean: np.ndarray, std: np.ndarray) -> Linear:
    w = lr.coef_[0] / std
    return Linear(w.astype(np.float64), float(lr.intercept_[0] - (mean * w).sum()))


def cross_validated(stored, dev, settings: Settings, c: float, stored_weight: float, folds: int = 5):
    """Floor and margin chosen on held-out dev folds (grouped by paraphrase group), so the
    settings are never picked on questions the models were fitted on."""
    groups = sorted({case.group or case.id for _, _, case, _ in dev})
    fold_of = {
        g: i % folds
        for i, g in enumerate(sorted(groups, key=lambda g: hashlib.sha256(g.encode()).hexdigest()))
    }
    held: list[tuple] = []
    for k in range(folds):
        train = [e for e in dev if fold_of[e[2].group or e[2].id] != k]
        test = [e for e in dev if fold_of[e[2].group or e[2].id] == k]
        held += _prepared(test, fit(stored, train, c, stored_weight))
    best = (-1.0, 0.0, 0.0)
    for floor in np.arange(0.05, 0.81, 0.05):
        for margin in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
            trial = settings.with_overrides(
                answer_min_evidence=round(float(floor), 2), answer_sentence_margin=margin
            )
            score = _simulate(held, trial)
            if score > best[0] + 1e-9:
                best = (score, round(float(floor), 2), margin)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.train_ranker", description=__doc__.split("\n\n")[0])
    p.add_argument("--c", type=float, default=C, help=f"inverse regularisation strength (default {C})")
    p.add_argument(
        "--stored-weight",
        type=float,
        default=STORED_WEIGHT,
        help=f"weight of stored questions (default {STORED_WEIGHT})",
    )
    args = p.parse_args(argv)

    started = time.perf_counter()
    settings = Settings.from_env()
    bot = Companion(settings, progress=False, trained=False)
    corpus = Corpus.load(settings.index.corpus_dir)
    stored = _stored_examples(bot) if args.stored_weight > 0 else []
    dev = _dev_examples(bot, corpus)
    n = sum(len(e[1]) for e in stored) + sum(len(e[1]) for e in dev)
    print(f"{len(stored)} stored and {len(dev)} dev questions, {n} sentences", file=sys.stderr)
    best = cross_validated(stored, dev, settings, args.c, args.stored_weight)
    model = fit(stored, dev, args.c, args.stored_weight)
    x = np.vstack([e[0] for e in stored] + [e[0] for e in dev])
    y = np.concatenate([e[1] for e in stored] + [e[1] for e in dev])
    digest = hashlib.sha256(np.ascontiguousarray(np.round(x, 6)).tobytes() + y.tobytes()).hexdigest()[:12]
    out = {
        "format": RANKER_FORMAT,
        "version": f"data:{digest}",
        "sentence": {
            "features": list(FEATURES),
            "weights": [round(float(v), 6) for v in model.sentence.weights],
            "bias": round(model.sentence.bias, 6),
        },
        "answerable": {
            "features": list(ANSWERABLE_FEATURES),
            "weights": [round(float(v), 6) for v in model.answerable.weights],
            "bias": round(model.answerable.bias, 6),
        },
        "in_scope": {
            "features": list(ANSWERABLE_FEATURES),
            "weights": [round(float(v), 6) for v in model.in_scope.weights],
            "bias": round(model.in_scope.bias, 6),
        },
        "dev_cross_validated": round(best[0], 4),
        "suggested": {"PCL_MIN_EVIDENCE": best[1], "PCL_SENTENCE_MARGIN": best[2]},
    }
    path = settings.index.corpus_dir / "models" / "ranker.json"  # the corpus folder's own
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    for name, v in [
        *zip(FEATURES, model.sentence.weights, strict=True),
        *zip(ANSWERABLE_FEATURES, model.answerable.weights, strict=True),
    ]:
        print(f"  {name:<24}{v:+.3f}")
    print(f"dev, 5-fold cross-validated: {best[0]:.3f} at min_evidence={best[1]}, sentence_margin={best[2]}")
    print(f"wrote {path} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
