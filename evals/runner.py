"""Run the bot once over the eval set and score every reply.

The Companion (model + index) is loaded once per configuration; each case is one `ask` with
its history. Answer similarity is computed in one batch with the same bundled embedding model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tqdm import tqdm

from bot.pipeline import Companion
from bot.reply import Reply
from bot.settings import Settings
from evals import metrics
from evals.dataset import Case, Corpus, Dataset
from evals.text import strip_markers


@dataclass
class Run:
    config: str
    settings: Settings
    results: list[dict]  # one per case: case, reply, verdict, passed, diagnosis
    startup_seconds: float
    seconds: float

    def of(self, split: str | None) -> list[dict]:
        return [r for r in self.results if split is None or r["case"]["split"] == split]

    def overall(self, split: str | None = None) -> dict:
        return metrics.aggregate(self.of(split))

    def by_tag(self, tags: Sequence[str], split: str | None = None) -> dict[str, dict]:
        out = {}
        for tag in tags:
            subset = [r for r in self.of(split) if tag in r["case"]["tags"]]
            if subset:
                out[tag] = metrics.aggregate(subset)
        return out


def case_json(case: Case) -> dict:
    return {
        "id": case.id,
        "question": case.question,
        "history": list(case.history),
        "kinds": list(case.kinds),
        "reference": case.reference,
        "facts": [list(f.alternatives) for f in case.facts],
        "forbidden": [list(f.alternatives) for f in case.forbidden],
        "sections": [s.label for s in case.sections],
        "tags": list(case.tags),
        "note": case.note,
        "group": case.group or case.id,
        "split": case.split,
    }


def reply_json(reply: Reply) -> dict:
    d = reply.as_dict()
    d["retrieved"] = [asdict(r) if not isinstance(r, dict) else r for r in reply.retrieved]
    d["citations"] = [asdict(c) if not isinstance(c, dict) else c for c in reply.citations]
    d["latency_ms"] = round(reply.latency_ms, 2)
    d["timings_ms"] = {k: round(v, 2) for k, v in (reply.timings_ms or {}).items()}
    return d


def score_case(
    case: Case,
    reply: Reply,
    corpus: Corpus,
    settings: Settings,
    always_forbidden: Sequence = (),
    similarity: float | None = None,
) -> dict:
    """Every verdict for one case; `passed` is what a person would call a correct reply."""
    plain = strip_markers(metrics.fact_text(reply))
    kind_ok = reply.kind in case.kinds
    missing = [f.label for f in case.facts if f.find(plain) is None]
    forbidden_hits = [f.label for f in (*case.forbidden, *always_forbidden) if f.find(reply.answer)]
    grounding = metrics.check_grounding(reply, corpus, settings)
    cites = metrics.check_citations(case.facts, reply, corpus)
    rank = metrics.retrieval_rank(case, reply) if case.sections else "n/a"
    disclaimer_ok = bool(reply.disclaimer) and reply.disclaimer == settings.disclaimer_for(reply.kind)
    verdict = {
        "kind_ok": kind_ok,
        "facts_total": len(case.facts),
        "facts_found": len(case.facts) - len(missing),
        "missing_facts": missing,
        "forbidden_hits": forbidden_hits,
        "grounding_units": grounding.units,
        "grounded_units": grounding.grounded,
        "grounding_problems": grounding.problems,
        "citations_found": cites.found,
        "citations_supported": cites.supported,
        "unsupported_facts": cites.unsupported,
        "retrieval_rank": rank,
        "similarity": similarity,
        "disclaimer_ok": disclaimer_ok,
    }
    checks = {
        "kind": kind_ok,
        "facts": not missing,
        "forbidden": not forbidden_hits,
        "grounded": grounding.ok,
        "citations": not cites.unsupported,
        "disclaimer": disclaimer_ok,
    }
    return {
        "verdict": verdict,
        "checks": checks,
        "passed": all(checks.values()),
        "diagnosis": diagnose(case, reply, verdict, settings),
    }


def diagnose(case: Case, reply: Reply, v: dict, settings: Settings) -> str:
    """One line a maintainer can act on; empty when the case passes and retrieval hit."""
    notes = []
    if not v["kind_ok"]:
        why = f"wrong kind: expected {'/'.join(case.kinds)}, got {reply.kind}"
        if reply.reason:
            why += f" (triage: {reply.reason})"
        elif reply.kind == "not_found" or case.kind == "not_found":
            why += f" (evidence {reply.evidence:.2f} vs min {settings.answer.min_evidence:.2f})"
        notes.append(why)
    if v["missing_facts"] and v["kind_ok"]:
        notes.append(f"missing fact(s): {'; '.join(v['missing_facts'])}")
    if v["forbidden_hits"]:
        notes.append(f"forbidden content: {'; '.join(v['forbidden_hits'])}")
    if v["grounding_problems"]:
        notes.append(f"ungrounded: {v['grounding_problems'][0]}")
    if v["unsupported_facts"]:
        notes.append(f"fact not in the quote it is marked with: {'; '.join(v['unsupported_facts'])}")
    if not v["disclaimer_ok"]:
        notes.append("disclaimer missing or changed")
    if v["retrieval_rank"] is None and (reply.retrieved or case.kind == "answer"):
        got = ", ".join(f"{r.source_id}/{r.section}" for r in reply.retrieved[:4]) or "nothing retrieved"
        notes.append(f"expected section not in top-{settings.retrieval.top_k} (got {got})")
    return "; ".join(notes)


def run(
    dataset: Dataset,
    corpus: Corpus,
    settings: Settings,
    config: str = "default",
    cases: Sequence[Case] | None = None,
    progress: bool = True,
    bot: Companion | None = None,
) -> Run:
    cases = list(cases if cases is not None else dataset.cases)
    t0 = time.perf_counter()
    bot = bot or Companion(settings, progress=progress)
    startup = time.perf_counter() - t0
    t1 = time.perf_counter()
    replies = []
    bar = tqdm(cases, desc=f"evals [{config}]", unit="case", disable=not progress, leave=False)
    for case in bar:
        replies.append(bot.ask(case.question, list(case.history) or None))
    sims = _similarities(bot, cases, replies)
    results = []
    for case, reply, sim in zip(cases, replies, sims, strict=True):
        scored = score_case(case, reply, corpus, settings, dataset.always_forbidden, sim)
        results.append({"case": case_json(case), "reply": reply_json(reply), **scored})
    return Run(config, settings, results, startup, time.perf_counter() - t1)


def _similarities(bot: Companion, cases: Sequence[Case], replies: Sequence[Reply]) -> list[float | None]:
    """Cosine of answer and reference, for cases whose expected reply is an answer."""
    idx = [i for i, c in enumerate(cases) if c.kind == "answer"]
    if not idx:
        return [None] * len(cases)
    texts = [metrics.similarity_text(replies[i]) for i in idx] + [cases[i].reference for i in idx]
    vecs = bot.embedder.embed_many(texts)
    out: list[float | None] = [None] * len(cases)
    for j, i in enumerate(idx):
        out[i] = round(metrics.cosine(vecs[j], vecs[len(idx) + j]), 4)
    return out
