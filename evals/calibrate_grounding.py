"""`python -m evals.calibrate_grounding`: the grounding guard's similarity threshold, from dev only.

The guard keeps a generated sentence only if its meaning is close to each passage it cites
(cosine of the sentence and the passage, the pipeline's all-MiniLM-L6-v2). The threshold is set
here, on the dev split (never the test split), with no LLM:

- a *supported* pair is a sentence of a dev case's reference answer and a prompt passage that
  holds it (what a correct citation looks like);
- an *unsupported* pair is the same sentence and another passage of the same prompt that holds
  neither it nor any of the case's required facts (a copied sentence with the wrong [n], the
  mistake small models make most).

It prints both distributions and the threshold with the best balance (Youden's J: supported
kept minus unsupported kept), which is `LLMSettings.min_similarity` (`PCL_LLM_MIN_SIMILARITY`).
The other checks (numbers, names, negations, words) catch most wrong citations on their own;
this threshold is the meaning check behind them.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import bot  # noqa: F401  (offline defaults first)
from bot.answer.generate import build_prompt
from bot.answer.grounding import normalize
from bot.ingest.chunk import split_paragraphs
from bot.pipeline import Companion
from bot.settings import Settings
from evals.dataset import CASES_DIR, Corpus, load_cases


def pairs(bot_: Companion, cases, n_passages: int) -> tuple[list[float], list[float]]:
    supported, unsupported = [], []
    for case in cases:
        q = bot_.trace(case.question, list(case.history) or None)
        reply = bot_.pipeline.policy(q, time.perf_counter())
        if reply.kind != "answer" or not reply.citations:
            continue
        prompt = build_prompt(q, reply, n_passages, bot_.embedder)
        sentences = [u.text for para in split_paragraphs(case.reference) for u in para]
        for sentence in sentences:
            vec = bot_.embedder.embed(sentence)
            target = normalize(sentence)
            for p in prompt.passages:
                sim = float(vec @ p.vector)
                if target in p.norm:
                    supported.append(sim)
                elif not any(f.find(p.text) for f in case.facts):
                    unsupported.append(sim)
    return supported, unsupported


def best_threshold(supported: list[float], unsupported: list[float]) -> tuple[float, float]:
    s, u = np.asarray(supported), np.asarray(unsupported)
    best, best_j = 0.0, -1.0
    for t in np.arange(0.20, 0.90, 0.01):
        j = float((s >= t).mean() - (u >= t).mean())
        if j > best_j + 1e-9:
            best, best_j = float(round(t, 2)), j
    return best, best_j


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m evals.calibrate_grounding", description=__doc__.split("\n\n")[0]
    )
    p.parse_args(argv)
    settings = Settings.from_env()
    corpus = Corpus.load(settings.index.corpus_dir)
    dataset = load_cases(CASES_DIR, corpus)
    dev = [c for c in dataset.cases if c.split == "dev" and c.kind == "answer"]
    companion = Companion(settings, progress=False)
    supported, unsupported = pairs(companion, dev, settings.llm.passages)
    if not supported or not unsupported:
        print("error: no pairs to calibrate on", file=sys.stderr)
        return 2
    t, j = best_threshold(supported, unsupported)
    s, u = np.asarray(supported), np.asarray(unsupported)
    print(f"dev split: {len(dev)} answer cases, {len(s)} supported and {len(u)} unsupported pairs")
    for name, arr in (("supported", s), ("unsupported", u)):
        q = np.percentile(arr, [5, 25, 50, 75, 95])
        print(
            f"  {name:<12} cosine p5 {q[0]:.2f}  p25 {q[1]:.2f}  p50 {q[2]:.2f}  p75 {q[3]:.2f}  p95 {q[4]:.2f}"
        )
    for thr in sorted({t, settings.llm.min_similarity}):
        print(
            f"  threshold {thr:.2f}: supported kept {(s >= thr).mean():.1%}, "
            f"unsupported kept {(u >= thr).mean():.1%}"
        )
    print(f"best balance (Youden's J {j:.2f}): PCL_LLM_MIN_SIMILARITY={t:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
