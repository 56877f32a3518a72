"""One measurement in its own process, so its memory and start-up are its own.

    python -m bench.worker floors --out R.json --runtime onnx|torch [--rounds N --every N]
    python -m bench.worker api    --out R.json [--rounds N --every N]
    python -m bench.worker build  --out R.json --corpus DIR --index DIR
    python -m bench.worker query  --out R.json --corpus DIR --index DIR [--questions N --rounds N]
    python -m bench.worker cold   --out R.json

Each writes one JSON object; `bench/run.py` starts them and collects the results.
"""

from __future__ import annotations

import time

T_PROCESS = time.time()  # as early as possible: the cold-start checkpoints count from here

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)


def _settings(args):
    from bot.settings import Settings

    s = Settings.from_env()
    if getattr(args, "corpus", None):
        s = s.with_overrides(corpus_dir=Path(args.corpus), index_dir=Path(args.index))
    return s


def floors(args) -> dict:
    """The embedding model alone, one runtime per process (`--runtime`): sentence-transformers on
    torch, as the app ran it before, or the ONNX export on onnxruntime, as it runs it now (with the
    safety classifier's ONNX pass beside it, the guard's share of an answer). One question per
    call over the eval questions, then a batch of 32 (what the batcher runs under load).

    A process per runtime: torch's OpenMP threads keep spinning after each call, which in one
    process slowed the ONNX runs beside them (and on a busy machine torch itself by 40x), and
    torch is never loaded where the app's numbers are taken. The torch process also compares the
    two runtimes' vectors, before anything is timed."""
    import numpy as np

    from bench.measure import summary
    from bench.questions import load_questions
    from bot.store.embed import embed_query, load_embeddings

    settings = _settings(args)
    questions, source = load_questions()
    texts = [q.text for q in questions[:: args.every] if q.text.strip()]
    batch = texts[:32]
    onnx = load_embeddings(settings)
    out: dict = {"questions": source, "asked": len(texts), "rounds": args.rounds, "batch_size": len(batch)}
    if args.runtime == "torch":
        import torch
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(settings.index.model_path, device="cpu", local_files_only=True)
        cosines = []
        for t in texts:  # warm-up, and the two runtimes' vectors compared
            a, b = embed_query(onnx, t), model.encode([t], normalize_embeddings=True)[0]
            cosines.append(float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))))
        out["cosine_onnx_torch"] = {"min": round(min(cosines), 6), "mean": round(float(np.mean(cosines)), 6)}
        out["threads"] = torch.get_num_threads()
        one = {"torch": lambda t: model.encode([t], normalize_embeddings=True)}
        many = {"torch": lambda b: model.encode(b, normalize_embeddings=True, batch_size=32)}
    else:
        from bot.safety.classifier import load_classifier
        from bot.store.encoders import Encoder

        classifier = load_classifier(settings)
        out["threads"] = onnx.encoder.session.get_session_options().intra_op_num_threads
        # The same graph with one thread per core: the fastest a single question goes alone.
        trunk = onnx.encoder.trunk.path if onnx.encoder.trunk is not None else None
        cores = Encoder(
            onnx.encoder.path, onnx.encoder.tokenizer_file, threads=os.cpu_count() or 1, trunk=trunk
        )
        out["cores"] = os.cpu_count()
        one = {"onnx": lambda t: embed_query(onnx, t), "onnx_cores": lambda t: cores([t])}
        many = {"onnx": onnx.encode, "onnx_cores": cores}
        if classifier is not None:
            one["safety_onnx"] = lambda t: classifier.encoder([t])
            many["safety_onnx"] = classifier.encoder
    names = list(one)
    for t in texts:  # warm-up
        for name in names:
            one[name](t)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        for i, t in enumerate(texts):
            k = (i + r) % len(names)  # rotating order when there are two
            for name in names[k:] + names[:k]:
                start = time.perf_counter()
                one[name](t)
                times[name].append(_ms(start))
    batches: dict[str, list[float]] = {name: [] for name in many}
    for _ in range(5 if args.rounds == 1 else 15):
        for name, fn in many.items():
            start = time.perf_counter()
            fn(batch)
            batches[name].append(_ms(start))
    out["one"] = {k: summary(v) for k, v in times.items()}
    out["batch32"] = {k: summary(v) for k, v in batches.items()}
    return out


def api(args) -> dict:
    """Warm latency of `Companion.ask` over the eval questions, next to the ONNX embedding floor
    (the model the app runs, alone) and the tutorial LangChain retriever over the same store,
    interleaved per question. Before each timed answer the engine's caches are emptied, so every
    answer pays for its model passes. No torch in this process: its memory is the engine's."""
    import numpy as np
    from langchain_chroma import Chroma

    from bench.measure import proc_status, summary
    from bench.questions import load_questions
    from bot.pipeline import Companion
    from bot.store.embed import embed_query

    settings = _settings(args)
    t = time.perf_counter()
    companion = Companion(settings, progress=False)
    startup_ms = _ms(t)
    memory_engine = proc_status()
    # The same engine without the learned safety layer (the plain patterns still run): what the
    # layer adds to an answer is the paired difference (issue 9: at most 3 ms at p50).
    unguarded = Companion(settings.with_overrides(safety_classifier=False), progress=False)
    baseline = Chroma(
        client=companion.index.store.client,
        collection_name=settings.index.collection,
        embedding_function=companion.embeddings,
    ).as_retriever(search_kwargs={"k": 4})
    questions, source = load_questions()
    questions = questions[:: args.every]

    def floor(q):  # the ONNX embedding alone: what the app runs
        embed_query(companion.embeddings, q.text)

    def ours(q):
        return companion.ask(q.text, q.history)

    def bare(q):
        return unguarded.ask(q.text, q.history)

    def base(q):
        docs = baseline.invoke(q.text)
        assert len(docs) == 4 or not q.text.strip()

    for q in questions:  # warm-up: first calls pay one-off costs (allocators, lazy imports)
        ours(q), floor(q), base(q), bare(q)

    names = ("floor", "ours", "baseline", "unguarded")
    rows = {q.id: {n: [] for n in names} | {"reply_ms": [], "stages": []} for q in questions}
    kinds = {}
    same: dict[str, bool] = {}  # the same reply kind with and without the learned safety layer
    for r in range(args.rounds):
        for i, q in enumerate(questions):
            # Rotate the order so no variant always runs first (cache, CPU frequency, neighbours).
            order = [("floor", floor), ("ours", ours), ("baseline", base), ("unguarded", bare)]
            k = (i + r) % len(order)
            order = order[k:] + order[:k]
            for name, fn in order:
                if name == "ours":
                    companion.forget()  # time the models, not the caches
                if name == "unguarded":
                    unguarded.forget()
                t = time.perf_counter()
                out = fn(q)
                rows[q.id][name].append(_ms(t))
                if name == "ours":
                    rows[q.id]["reply_ms"].append(round(out.latency_ms, 3))
                    rows[q.id]["stages"].append({k: round(v, 3) for k, v in out.timings_ms.items()})
                    kinds[q.id] = (out.kind, "retrieve" in out.timings_ms)
                if name == "unguarded":
                    same[q.id] = kinds.get(q.id, ("", False))[0] == out.kind

    per_question = []
    for q in questions:
        row = rows[q.id]
        kind, retrieved = kinds[q.id]
        per_question.append(
            {
                "id": q.id,
                "kind": kind,
                "retrieved": retrieved,
                "followup": bool(q.history),
                "ours_ms": row["ours"],
                "floor_ms": row["floor"],
                "baseline_ms": row["baseline"],
                "unguarded_ms": row["unguarded"],
                "same_kind_unguarded": same.get(q.id, False),
                "reply_latency_ms": row["reply_ms"],
                "stages_ms": row["stages"],
            }
        )

    def collect(pick, key):
        return [v for p in per_question if pick(p) for v in p[key]]

    def best(pick, key):  # best of the rounds per question: closest to an idle machine
        return [min(p[key]) for p in per_question if pick(p)]

    def stage_stats(pick):
        seen: dict[str, None] = {}
        for p in per_question:
            if pick(p):
                for s in p["stages_ms"]:
                    seen.update(dict.fromkeys(s))
        return {
            n: summary([s[n] for p in per_question if pick(p) for s in p["stages_ms"] if n in s])
            for n in seen
        }

    def paired(key):
        ratios = [
            o / f
            for p in per_question
            if p["retrieved"]
            for o, f in zip(p["ours_ms"], p[key], strict=True)
            if f > 0
        ]
        return {"p50": round(float(np.median(ratios)), 3), "p95": round(float(np.percentile(ratios, 95)), 3)}

    def safety_layer():
        """Per question reaching retrieval with the same reply kind either way, and per round:
        the answer's time minus the same answer's without the learned safety layer."""
        diffs = [
            o - u
            for p in per_question
            if p["retrieved"] and p["same_kind_unguarded"]
            for o, u in zip(p["ours_ms"], p["unguarded_ms"], strict=True)
        ]
        return summary(diffs) | {
            "questions": sum(p["retrieved"] and p["same_kind_unguarded"] for p in per_question)
        }

    any_question = lambda p: True  # noqa: E731
    retrieval = lambda p: p["retrieved"]  # noqa: E731
    keys = ("ours_ms", "floor_ms", "baseline_ms", "unguarded_ms")
    return {
        "questions": source,
        "asked": len(questions),
        "retrieval_path": sum(p["retrieved"] for p in per_question),
        "rounds": args.rounds,
        "startup_ms": startup_ms,
        "chunks": companion.index.manifest.get("chunks"),
        "sentences": companion.index.manifest.get("sentences"),
        "all": {k: summary(collect(any_question, k)) for k in keys},
        "retrieval": {k: summary(collect(retrieval, k)) for k in keys},
        "retrieval_best": {k: summary(best(retrieval, k)) for k in keys},
        "stages_all": stage_stats(any_question),
        "stages_retrieval": stage_stats(retrieval),
        "paired_ratio_to_floor": paired("floor_ms"),
        "paired_ratio_to_baseline": paired("baseline_ms"),
        "safety_layer_ms": safety_layer(),
        "prefetched": companion.embedder.prefetched,
        "memory_engine_mb": memory_engine,
        "memory_mb": proc_status(),
        "per_question": per_question,
    }


def build(args) -> dict:
    """Index build time for one corpus into an empty index folder."""
    from bench.measure import proc_status
    from bot.store.embed import load_embeddings
    from bot.store.index import build_index

    settings = _settings(args)
    t = time.perf_counter()
    embeddings = load_embeddings(settings)
    model_ms = _ms(t)
    t = time.perf_counter()
    manifest = build_index(settings, embeddings, progress=False)
    build_s = time.perf_counter() - t
    texts = manifest["chunks"] + manifest["sentences"]
    return {
        "model_load_ms": model_ms,
        "build_s": round(build_s, 2),
        "chunks": manifest["chunks"],
        "sentences": manifest["sentences"],
        "texts_per_s": round(texts / build_s, 1),
        "fingerprint": manifest["fingerprint"],
        "memory_mb": proc_status(),
    }


def query(args) -> dict:
    """Open an existing index (never rebuild) and time warm questions against it."""
    from bench.measure import proc_status, summary
    from bench.questions import answer_questions, load_questions
    from bot.pipeline import Companion
    from bot.store.embed import embed_query
    from bot.store.index import fingerprint

    settings = _settings(args)
    expected = fingerprint(settings)
    t = time.perf_counter()
    companion = Companion(settings, progress=False)
    startup_ms = _ms(t)
    if (
        companion.index.manifest.get("fingerprint") != expected
        or companion.index.manifest.get("built_at") != args.built_at
    ):
        raise SystemExit("the index was rebuilt while opening it; the query numbers would include a build")
    memory_open = proc_status()
    questions = answer_questions(load_questions()[0], args.questions)
    for q in questions:
        companion.ask(q.text)
    ours, floor, stages = [], [], []
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for q in questions:
            t = time.perf_counter()
            embed_query(companion.embeddings, q.text)
            floor.append(_ms(t))
            companion.forget()  # time the models, not the caches
            t = time.perf_counter()
            reply = companion.ask(q.text)
            ours.append(_ms(t))
            best[q.id] = min(best.get(q.id, ours[-1]), ours[-1])
            stages.append(reply.timings_ms)
    names = list(dict.fromkeys(k for s in stages for k in s))
    return {
        "startup_ms": startup_ms,
        "chunks": companion.index.manifest["chunks"],
        "sentences": companion.index.manifest["sentences"],
        "asked": len(questions),
        "rounds": args.rounds,
        "ours_ms": summary(ours),
        "ours_best_of_rounds_ms": summary(list(best.values())),
        "floor_ms": summary(floor),
        "stages_ms": {n: summary([s[n] for s in stages if n in s]) for n in names},
        "memory_open_mb": memory_open,
        "memory_mb": proc_status(),
    }


def cold(args) -> dict:
    """Where a cold start goes, step by step in the order `Companion()` pays for it."""
    from bench.measure import proc_status

    steps: dict[str, float] = {}

    def step(name: str, t: float) -> float:
        now = time.perf_counter()
        steps[name] = round(now - t, 3)
        return now

    t = time.perf_counter()
    import numpy  # noqa: F401

    t = step("import numpy", t)
    import onnxruntime  # noqa: F401
    import tokenizers  # noqa: F401

    t = step("import onnxruntime, tokenizers", t)
    import chromadb  # noqa: F401

    t = step("import chromadb", t)
    import langchain_core.documents  # noqa: F401

    t = step("import langchain_core.documents", t)
    from bot.pipeline import Companion  # noqa: F401
    from bot.retrieval.search import HybridSearch
    from bot.safety.classifier import load_classifier
    from bot.settings import Settings
    from bot.store.embed import embed_query, load_embeddings
    from bot.store.index import open_index

    t = step("import the rest of bot (bm25s, tiktoken, pysbd, ...)", t)
    settings = Settings.from_env()
    embeddings = load_embeddings(settings)
    t = step("load the ONNX embedding model (session)", t)
    classifier = load_classifier(settings)
    t = step("load the ONNX safety classifier (session)", t)
    index = open_index(settings, embeddings, progress=False)
    t = step("open the Chroma index (fingerprint, read every row once)", t)
    index.warm()
    t = step("prefetch sentence vectors (IndexHandle.warm)", t)
    HybridSearch(index, rrf_k=settings.retrieval.rrf_k)
    t = step("load chunks and build BM25 (HybridSearch)", t)
    embed_query(embeddings, "warm up")
    if classifier is not None:
        classifier.probabilities("warm up")
    t = step("first embedding and classification", t)
    import gradio  # noqa: F401

    step("import gradio (the app only)", t)
    return {
        "spawned_at": args.spawned_at,
        "main_at": T_PROCESS,
        "stages_s": steps,
        "memory_mb": proc_status(),
    }


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING)
    p = argparse.ArgumentParser(prog="python -m bench.worker")
    p.add_argument("what", choices=("floors", "api", "build", "query", "cold"))
    p.add_argument("--out", required=True)
    p.add_argument("--corpus")
    p.add_argument("--index")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--questions", type=int, default=60)
    p.add_argument("--every", type=int, default=1, help="ask every n-th eval question (quick runs)")
    p.add_argument("--built-at", default="")
    p.add_argument("--spawned-at", type=float, default=0.0)
    p.add_argument("--runtime", choices=("onnx", "torch"), default="onnx", help="floors: which runtime")
    args = p.parse_args()
    result = {"floors": floors, "api": api, "build": build, "query": query, "cold": cold}[args.what](args)
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
