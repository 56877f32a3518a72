"""BENCHMARKS.md, docs/bench-clients.png and docs/bench-growth.png from one results JSON.

    python -m bench.report bench/results/<timestamp>.json                 # into bench/results/<timestamp>/
    python -m bench.report bench/results/<timestamp>.json --write-report  # over BENCHMARKS.md and docs/

`python -m bench` writes the report next to its results (bench/results/<timestamp>/, git-ignored)
and only with `--write-report` over the committed BENCHMARKS.md and charts.

The numbers are generated; the analysis that needs a person (what was changed, what the profile
says) is kept by hand in `bench/findings.md` and included as it is.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from bot.settings import REPO_ROOT

REPORT = REPO_ROOT / "BENCHMARKS.md"
CHART = REPO_ROOT / "docs" / "bench-growth.png"
CLIENTS_CHART = REPO_ROOT / "docs" / "bench-clients.png"
FINDINGS = REPO_ROOT / "bench" / "findings.md"

TARGETS = {  # issue 14
    "warm_p50_ms": 6.0,  # a whole warm answer, p50 (about 1.5x the ONNX embedding floor)
    "http_p95_ms": 300.0,  # at 32 concurrent clients on the JSON API
    "http_rps": 100.0,  # answers per second at 32 clients on the JSON API
    "cold_s": 4.0,  # process start to first answer (CLI) and to ready (app)
    "rss_mb": 500.0,  # the app's peak RSS while answering
    "safety_layer_ms": 3.0,  # issue 9: what the learned safety layer adds to a warm answer, p50
}
LEVELS = (1, 8, 32, 64)
STAGES = ("guard", "resolve", "analyse", "retrieve", "rank", "select", "compose")  # top-level, in order
SEARCH_STAGES = ("retrieve", "rank", "select", "compose")  # everything after the models

# The last run before issue 14 (BENCHMARKS.md at commit 2442913, measured 2026-11-25 on this
# machine): sentence-transformers on torch, the page's /chat only (no JSON API), 3 s per phase
# of load. Kept here so every report shows the before/after side by side.
BEFORE = {
    "commit": "2442913",
    "date": "2026-11-25",
    "warm_p50_ms": 15.5,
    "warm_p95_ms": 19.4,
    "floor_p50_ms": 10.9,  # torch, one question
    "stages_p50_ms": {
        "triage": 0.19,
        "resolve": 0.07,
        "embed": 10.61,
        "dense": 1.26,
        "bm25": 0.20,
        "fuse": 0.04,
        "compose": 2.87,
    },
    "chat": {1: (34.22, 29, 35), 8: (36.72, 214, 256), 32: (35.03, 906, 1071)},  # answers/s, p50, p95
    "gradio_client_1": (13.28, 75, 78),
    "cli_cold_s": 7.28,
    "app_ready_s": 8.15,
    "rss_mb": 896.2,
    "growth_query_p50_ms": {1: 15.1, 10: 14.6, 100: 17.1},
    "growth_build_s": {1: 3.6, 10: 26.5, 100: 237.7, 1000: 3974.0},
}


def _f(x, nd: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return "–"
    return f"{x:,.{nd}f}"


def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**missed**")


def _ok(section) -> bool:
    return isinstance(section, dict) and "error" not in section


def _median(xs: list[float]) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def level(http: dict, client: str, clients: int) -> dict | None:
    for lv in (http or {}).get("levels") or []:
        if lv.get("client") == client and lv["clients"] == clients:
            return lv
    return None


def growth_exponent(rows: list[dict], key) -> float | None:
    """Slope of log(value) against log(chunks) from the smallest to the largest measured corpus."""
    pts = [(r["build"]["chunks"], key(r)) for r in rows if "query" in r and key(r)]
    if len(pts) < 2:
        return None
    (x0, y0), (x1, y1) = pts[0], pts[-1]
    return math.log(y1 / y0) / math.log(x1 / x0) if x1 > x0 and y0 > 0 and y1 > 0 else None


def _non_embed(r: dict) -> float:
    st = r["query"]["stages_ms"]
    return sum((st.get(n) or {}).get("p50") or 0.0 for n in SEARCH_STAGES)


def _load_line(load: dict | None) -> str:
    if not load:
        return ""
    return (
        f"other processes used {load.get('other_cores')} of the 2 cores on average "
        f"(load average {load.get('loadavg_1m')})"
    )


def _app_ready(res: dict) -> list[float]:
    cold = res.get("cold") if _ok(res.get("cold")) else {}
    starts = [a["start_to_ready_s"] for a in (cold or {}).get("app") or []]
    http = res.get("http") if _ok(res.get("http")) else {}
    if not starts and (http or {}).get("start"):
        starts = [http["start"]["start_to_ready_s"]]
    return starts


def _growth_rows(res: dict) -> list[dict]:
    grow = res.get("growth")
    return [r for r in grow if "query" in r] if isinstance(grow, list) else []


def _lat(lv: dict | None) -> str:
    if not lv:
        return "–"
    failed = lv["requests"] - lv["outcomes"]["ok"]
    return (
        f"{_f(lv['requests_per_s'], 1)}/s, p50 {_f(lv['latency_ms'].get('p50'), 0)} / "
        f"p95 {_f(lv['latency_ms'].get('p95'), 0)} ms" + (f", **{failed} failed**" if failed else "")
    )


def before_after(res: dict) -> list[str]:
    """The table the issue asks for: the last run before it next to this one."""
    b = BEFORE
    api = res.get("api") if _ok(res.get("api")) else None
    floors = res.get("floors") if _ok(res.get("floors")) else None
    http = res.get("http") if _ok(res.get("http")) else {}
    cold = res.get("cold") if _ok(res.get("cold")) else None
    rows: list[tuple[str, str, str, str]] = []
    if api:
        r = api["retrieval"]["ours_ms"]
        rows.append(
            (
                "Warm answer, p50 / p95 (questions reaching retrieval)",
                f"{_f(b['warm_p50_ms'])} / {_f(b['warm_p95_ms'])} ms",
                f"**{_f(r['p50'], 2)}** / {_f(r['p95'], 2)} ms",
                f"p50 ≤ {TARGETS['warm_p50_ms']:g} ms",
            )
        )
        st = api["stages_retrieval"]
        now = ", ".join(
            f"{n} {_f((st.get(n) or {}).get('p50'), 2)}" for n in STAGES if st.get(n, {}).get("n")
        )
        old = ", ".join(f"{k} {_f(v, 2)}" for k, v in b["stages_p50_ms"].items())
        rows.append(("Per stage, p50 ms", old, now, ""))
    if floors:
        one, b32 = floors["one"], floors["batch32"]
        rows.append(
            (
                "Embedding one question, p50",
                f"{_f(b['floor_p50_ms'])} ms (torch)",
                f"ONNX **{_f((one.get('onnx_cores') or one['onnx'])['p50'], 2)} ms** (one thread: "
                f"{_f(one['onnx']['p50'], 2)} ms); torch now {_f(one['torch']['p50'], 2)} ms",
                "",
            )
        )
        rows.append(
            (
                "Embedding 32 questions in one call, p50",
                "– (no batching)",
                f"ONNX **{_f((b32.get('onnx_cores') or b32['onnx'])['p50'], 1)} ms** (one thread: "
                f"{_f(b32['onnx']['p50'], 1)} ms); torch {_f(b32['torch']['p50'], 1)} ms",
                "",
            )
        )
    for n in LEVELS:
        lv = level(http, "api", n)
        if lv:
            target = "≥ 100/s, p95 < 300 ms, none failed" if n == 32 else ""
            rows.append(
                (
                    f"JSON API `/api/ask`, {n} client{'s' if n > 1 else ''}",
                    "– (no JSON API)",
                    _lat(lv),
                    target,
                )
            )
    for n in LEVELS:
        lv = level(http, "rest", n)
        old = b["chat"].get(n)
        before = f"{_f(old[0], 1)}/s, p50 {old[1]:,} / p95 {old[2]:,} ms" if old else "– (not measured)"
        if lv or old:
            rows.append((f"Page `/chat`, {n} client{'s' if n > 1 else ''}", before, _lat(lv), ""))
    if cold:
        rows.append(
            (
                "Cold start, `python -m bot ask` (median)",
                f"{_f(b['cli_cold_s'], 2)} s",
                f"**{_f(cold['cli_ask_median_s'], 2)} s**",
                f"< {TARGETS['cold_s']:g} s",
            )
        )
    starts = _app_ready(res)
    if starts:
        rows.append(
            (
                "Cold start, `python app.py` to ready (median)",
                f"{_f(b['app_ready_s'], 2)} s",
                f"**{_f(_median(starts), 2)} s**",
                f"< {TARGETS['cold_s']:g} s",
            )
        )
    if http.get("memory_mb"):
        rows.append(
            (
                "App RSS, peak while answering",
                f"{_f(b['rss_mb'], 0)} MB",
                f"**{_f(http['memory_mb'].get('VmHWM'), 0)} MB**",
                f"< {TARGETS['rss_mb']:g} MB",
            )
        )
    grow = {r["scale"]: r for r in _growth_rows(res)}
    for scale in sorted(grow):
        r = grow[scale]
        q = r["query"]["ours_ms"]
        old = b["growth_query_p50_ms"].get(scale)
        before = f"p50 {_f(old)} ms" if old else "not measured (opening it failed)"
        rows.append(
            (
                f"{scale}× corpus ({r['build']['chunks']:,} chunks): warm answer",
                before,
                f"p50 **{_f(q['p50'], 2)}** / p95 {_f(q['p95'], 2)} ms",
                "",
            )
        )
    if 1000 in grow:
        bld = grow[1000]["build"]
        rows.append(
            (
                "1000× corpus: index build",
                f"{_f(b['growth_build_s'][1000], 0)} s (torch)",
                f"{_f(bld['build_s'], 0)} s (ONNX{', kept from ' + bld.get('built_at', '?') if bld.get('reused') else ''})",
                "",
            )
        )
    if not rows:
        return []
    out = [
        "## Before and after",
        "",
        f"Before: `BENCHMARKS.md` at commit `{b['commit']}` ({b['date']}, this machine): the models on torch, "
        "the page's `/chat` only. After: this run.",
        "",
        "| | before | after | target |",
        "| --- | --- | --- | --- |",
    ]
    out += [f"| {a} | {c} | {d} | {e} |" for a, c, d, e in rows]
    return out + [""]


def targets(res: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    api = res.get("api") if _ok(res.get("api")) else None
    floors = res.get("floors") if _ok(res.get("floors")) else None
    if api:
        r = api["retrieval"]
        ours = r["ours_ms"]["p50"]
        onnx = (
            (floors["one"].get("onnx_cores") or floors["one"]["onnx"])["p50"]
            if floors
            else r["floor_ms"]["p50"]
        )
        rows.append(
            (
                f"Warm p50 of a whole answer ≤ {TARGETS['warm_p50_ms']:g} ms",
                f"**{_f(ours, 2)} ms** (p95 {_f(r['ours_ms']['p95'], 1)} ms; best of rounds p50 "
                f"{_f(api['retrieval_best']['ours_ms']['p50'], 2)} ms) = {ours / onnx:.2f}× the ONNX floor",
                _verdict(ours <= TARGETS["warm_p50_ms"]),
                f"questions reaching retrieval, caches emptied before each; {_load_line(api.get('machine_load'))}",
            )
        )
        layer = api.get("safety_layer_ms") or {}
        if layer.get("n"):
            u = r["unguarded_ms"]["p50"]
            rows.append(
                (
                    f"The learned safety layer adds ≤ {TARGETS['safety_layer_ms']:g} ms at p50",
                    f"**{_f(layer['p50'], 2)} ms** (paired per question; p95 {_f(layer['p95'], 2)} ms); "
                    f"answer p50 {_f(ours, 2)} ms with it, {_f(u, 2)} ms without",
                    _verdict(layer["p50"] <= TARGETS["safety_layer_ms"]),
                    f"{layer['questions']} questions reaching retrieval with the same reply kind either "
                    "way; without it the plain patterns still run and the embedding is computed alone",
                )
            )
    http = res.get("http") if _ok(res.get("http")) else {}
    top = level(http, "api", 32)
    if top:
        p95 = top["latency_ms"].get("p95")
        rps = top["requests_per_s"]
        failed = top["requests"] - top["outcomes"]["ok"]
        rows.append(
            (
                "JSON API at 32 clients: p95 < 300 ms, ≥ 100 answers/s, no failure",
                f"p95 **{_f(p95, 0)} ms**, **{rps} answers/s**, failed {failed}",
                _verdict(
                    p95 is not None
                    and p95 < TARGETS["http_p95_ms"]
                    and rps >= TARGETS["http_rps"]
                    and failed == 0
                ),
                f"Little's law: 32 / {rps} answers/s = {_f(1000 * 32 / rps if rps else None, 0)} ms mean; "
                f"clients used {top['client_cpu_cores']} cores; others {top['machine'].get('other_cores')} cores",
            )
        )
    cold = res.get("cold") if _ok(res.get("cold")) else None
    if cold:
        rows.append(
            (
                f"Cold start < {TARGETS['cold_s']:g} s (`python -m bot ask`)",
                f"{_f(cold['cli_ask_median_s'], 2)} s (median of {len(cold['cli_ask_s'])})",
                _verdict(cold["cli_ask_median_s"] < TARGETS["cold_s"]),
                f"process start to printed answer; {_load_line(cold.get('machine_load'))}",
            )
        )
    starts = _app_ready(res)
    if starts:
        s = _median(starts)
        rows.append(
            (
                f"Cold start < {TARGETS['cold_s']:g} s (`python app.py`)",
                f"{_f(s, 2)} s to ready (median of {len(starts)}: {', '.join(_f(x, 2) for x in starts)})",
                _verdict(s < TARGETS["cold_s"]),
                "process start to the page answering HTTP, existing index",
            )
        )
    if http.get("memory_mb"):
        peak = http["memory_mb"].get("VmHWM")
        rows.append(
            (
                f"App RSS < {TARGETS['rss_mb']:g} MB while answering",
                f"peak {_f(peak, 0)} MB (VmHWM over the whole HTTP run)",
                _verdict(peak is not None and peak < TARGETS["rss_mb"]),
                "",
            )
        )
    grow = _growth_rows(res)
    if len(grow) >= 2:
        total = growth_exponent(grow, lambda r: r["query"]["ours_ms"]["p50"])
        search = growth_exponent(grow, _non_embed)
        if total is not None and search is not None:
            rows.append(
                (
                    "Query latency grows sub-linearly with the corpus",
                    f"p50 ∝ chunks^{total:.2f}; retrieve + rank + select + compose ∝ chunks^{search:.2f} "
                    f"({grow[0]['build']['chunks']:,} → {grow[-1]['build']['chunks']:,} chunks)",
                    _verdict(total < 1 and search < 1),
                    "exponent 1 = linear",
                )
            )
    return rows


def where_time_goes(res: dict) -> list[str]:
    """Generated from the stage timings, the floors and the HTTP run: the measured shares."""
    api = res.get("api") if _ok(res.get("api")) else None
    floors = res.get("floors") if _ok(res.get("floors")) else None
    http = res.get("http") if _ok(res.get("http")) else {}
    out: list[str] = []
    if api:
        st = api["stages_retrieval"]
        p50 = {n: (st.get(n) or {}).get("p50") or 0.0 for n in STAGES}
        total = api["retrieval"]["ours_ms"]["p50"]
        staged = sum(p50.values())
        out += [
            f"**One warm answer** (p50 {_f(total, 2)} ms; the stages' p50s add up to {_f(staged, 2)} ms, "
            "the rest is the policy and building the reply):",
            "",
            "| stage | p50 ms | share | what it does |",
            "| --- | --- | --- | --- |",
        ]
        what = {
            "guard": "screens the message and runs the safety classifier, whose call also gives the question's "
            "embedding: the embedding graph runs beside the safety graph on the other core (after the trunk "
            "graph they share, when their adapters leave bottom layers alone)",
            "resolve": "follow-ups made explicit",
            "analyse": "topic words, spelling, answer type; embeds the question only when a word was "
            "corrected (the guard's call gave the vector of the text as typed)",
            "retrieve": "dense scan + BM25 + stored questions, fused",
            "rank": "features and the learned ranker for every sentence of the retrieved passages",
            "select": "the sentences to quote",
            "compose": "the cited answer text",
        }
        for n in STAGES:
            if (st.get(n) or {}).get("n"):
                share = p50[n] / staged * 100 if staged else 0
                out.append(f"| {n} | {_f(p50[n], 2)} | {share:.0f}% | {what[n]} |")
        out.append("")
        if floors:
            one = floors["one"]
            out.append(
                f"The model calls alone, one text each on this run: the embedding "
                f"{_f(one['onnx']['p50'], 2)} ms, the classifier's call, which gives the embedding too, "
                f"{_f(one['safety_onnx']['p50'], 2)} ms (p50). Everything after the models (retrieve to "
                f"compose) is {_f(sum(p50[n] for n in SEARCH_STAGES), 2)} ms."
            )
            out.append("")
    lv = level(http, "api", 32)
    if lv and lv.get("app_cpu_ms_per_answer"):
        b = http.get("batching") or {}
        emb, saf = b.get("embed") or {}, b.get("safety") or {}
        line = (
            f"**Under load** (32 clients on the JSON API): the app used {lv['app_cpu_cores']} cores, "
            f"**{_f(lv['app_cpu_ms_per_answer'], 1)} ms of CPU per answer**; the load generator "
            f"{lv['client_cpu_cores']} cores and other processes {lv['machine'].get('other_cores')} cores "
            "of the 2."
        )
        if emb:
            line += (
                f" Over the whole HTTP run the batcher embedded {emb.get('calls')} texts in {emb.get('batches')} "
                f"calls (mean {emb.get('mean_batch')}, largest {emb.get('largest_batch')})"
                + (
                    f" and classified {saf.get('calls')} in {saf.get('batches')} (mean {saf.get('mean_batch')})."
                    if saf
                    else "."
                )
            )
        if floors:
            b32 = floors["batch32"]
            per = (b32.get("safety_onnx") or b32["onnx"])["p50"] / 32
            line += (
                f" In batches of 32 the classifier's call, which gives the embedding too, costs {_f(per, 2)} ms "
                f"of wall time per question ({_f((b32.get('safety_onnx') or {}).get('p50'), 1)} ms per 32; "
                f"the embedding alone {_f(b32['onnx']['p50'], 1)} ms per 32, for corrected questions)."
            )
        out += [line, ""]
    return out


def chart(res: dict, path: Path = CHART) -> Path | None:
    grow = _growth_rows(res)
    if len(grow) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chunks = [r["build"]["chunks"] for r in grow]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    ax = axes[0]
    ax.plot(chunks, [r["query"]["ours_ms"]["p50"] for r in grow], "o-", label="answer p50")
    ax.plot(chunks, [r["query"]["ours_ms"]["p95"] for r in grow], "o--", label="answer p95")
    ax.plot(chunks, [r["query"]["floor_ms"]["p50"] for r in grow], "s:", label="embedding floor p50")
    ax.plot(chunks, [_non_embed(r) for r in grow], "^-", label="retrieve to compose p50")
    lin = [grow[0]["query"]["ours_ms"]["p50"] * c / chunks[0] for c in chunks]
    ax.plot(chunks, lin, color="grey", alpha=0.4, label="linear growth from 1×")
    ax.set(xscale="log", yscale="log", xlabel="chunks in the index", ylabel="ms", title="Warm answer latency")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(chunks, [r["build"]["build_s"] for r in grow], "o-")
    ax.set(
        xscale="log", yscale="log", xlabel="chunks in the index", ylabel="seconds", title="Index build time"
    )
    ax = axes[2]
    ax.plot(chunks, [r["query"]["memory_mb"].get("VmHWM") for r in grow], "o-", label="query process peak")
    ax.plot(chunks, [r["build"]["memory_mb"].get("VmHWM") for r in grow], "s--", label="build process peak")
    ax.set(xscale="log", xlabel="chunks in the index", ylabel="MB", title="Memory (RSS)")
    ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"PCL companion growth benchmark ({res['started'][:10]}, {res['machine']['cores']} cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def clients_chart(res: dict, path: Path = CLIENTS_CHART) -> Path | None:
    """p50 and p95 latency and answers/s against concurrent clients, API and /chat side by side."""
    http = res.get("http") if _ok(res.get("http")) else {}
    levels = [lv for lv in (http or {}).get("levels") or [] if lv.get("client") in ("api", "rest")]
    if not levels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for client, label, style in (("api", "JSON API /api/ask", "o"), ("rest", "page /chat", "s")):
        rows = sorted((lv for lv in levels if lv["client"] == client), key=lambda lv: lv["clients"])
        if not rows:
            continue
        n = [lv["clients"] for lv in rows]
        axes[0].plot(n, [lv["latency_ms"].get("p50") for lv in rows], style + "-", label=f"{label} p50")
        axes[0].plot(n, [lv["latency_ms"].get("p95") for lv in rows], style + "--", label=f"{label} p95")
        axes[1].plot(n, [lv["requests_per_s"] for lv in rows], style + "-", label=label)
    before = sorted(BEFORE["chat"].items())
    axes[0].plot(
        [n for n, _ in before], [v[2] for _, v in before], "x:", color="grey", label="before: /chat p95"
    )
    axes[1].plot([n for n, _ in before], [v[0] for _, v in before], "x:", color="grey", label="before: /chat")
    axes[0].axhline(TARGETS["http_p95_ms"], color="red", alpha=0.4, label="p95 target (32 clients)")
    axes[0].set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms", title="Latency")
    axes[1].axhline(TARGETS["http_rps"], color="red", alpha=0.4, label="target (32 clients)")
    axes[1].set(xscale="log", xlabel="concurrent clients", ylabel="answers/s", title="Throughput")
    for ax in axes:
        ax.set_xticks(list(LEVELS), [str(n) for n in LEVELS])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"PCL companion under concurrent clients ({res['started'][:10]}, {res['machine']['cores']} cores)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _header(res: dict, json_path: Path | None) -> list[str]:
    m = res["machine"]
    load = res.get("loadavg_at_start")
    out = [
        "# Benchmarks",
        "",
        f"Measured {res['started'][:16].replace('T', ' ')} UTC at commit `{res.get('commit', '?')}` "
        f"(`python -m bench{' --quick' if res['mode'] == 'quick' else ''}`), on "
        f"{m.get('cpu') or 'an unnamed CPU'}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['os']}, "
        f"Python {m['python']}, onnxruntime {m.get('onnxruntime')} (the app), torch {m.get('torch')} "
        f"(the torch floor only), chromadb {m.get('chromadb')}, gradio {m.get('gradio')}, "
        f"fastapi {m.get('fastapi')}, uvicorn {m.get('uvicorn')}.",
    ]
    if json_path:
        rel = json_path.resolve()
        rel = rel.relative_to(REPO_ROOT) if rel.is_relative_to(REPO_ROOT) else rel
        out.append(f"Raw numbers: `{rel}` (git-ignored; every question's timings).")
    out.append("")
    if load:
        busy = load[0] > 1.0
        out.append(
            f"Load average when the run started: {', '.join(f'{x:.2f}' for x in load)} (1, 5, 15 min)"
            + (
                ": **the machine was not quiet** (other jobs share its 2 cores), so absolute latencies "
                "are higher than on an idle machine; each phase below says how much CPU other processes "
                "used meanwhile."
                if busy
                else "."
            )
        )
        out.append("")
    out += [
        "The machine is shared: each phase says how many of the 2 cores other processes used while it "
        "ran. Ratios measured side by side in the same phase are the more reliable figures.",
        "",
    ]
    failed = [p for p in res.get("phases", []) if isinstance(res.get(p), dict) and "error" in res[p]]
    if failed:
        out += ["**Phases that failed in this run:**", ""]
        out += [f"- `{p}`: `{res[p]['error'].strip().splitlines()[0][:300]}`" for p in failed]
        out.append("")
    return out


def _how_to() -> list[str]:
    return [
        "## How to reproduce",
        "",
        "```bash",
        'pip install -e ".[dev]"',
        "python -m bench                  # every phase (~40 min on 2 cores once the 1000x index is kept)",
        "python -m bench --write-report   # the same, then rewrites this file and docs/bench-*.png",
        "python -m bench --quick          # a smoke run: fewer rounds, growth to 10x, 8 s per HTTP level",
        "python -m bench --only http api  # some phases: floors api cold http growth scaleout",
        "python -m bench.profile          # where the time goes inside one process (cProfile)",
        "```",
        "",
        "Results go to `bench/results/<timestamp>.json` and the report with its charts to "
        "`bench/results/<timestamp>/`; only `--write-report` replaces this file and `docs/bench-clients.png`, "
        "`docs/bench-growth.png`. The 1000× corpus and its index (an hour to build on 2 cores) are kept in "
        "`bench/results/growth-cache/` and reused while their fingerprint holds (`--rebuild` rebuilds them). "
        "Ctrl-C stops the run and every process it started. Offline: only 127.0.0.1 is used.",
        "",
    ]


def render(
    res: dict,
    json_path: Path | None = None,
    chart_link: str = "docs/bench-growth.png",
    clients_link: str = "docs/bench-clients.png",
) -> str:
    out = _header(res, json_path)
    out += before_after(res)
    rows = targets(res)
    if rows:
        out += ["## Targets", "", "| target | measured | verdict | note |", "| --- | --- | --- | --- |"]
        out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        out.append("")
    where = where_time_goes(res)
    findings = FINDINGS.read_text(encoding="utf-8").strip() if FINDINGS.exists() else ""
    if where or findings:
        out += ["## Where the remaining time goes", ""] + where
        if findings:
            out += [findings, ""]
    out += _how_to()

    floors = res.get("floors")
    if _ok(floors):
        one, b32 = floors["one"], floors["batch32"]
        out += [
            "## Floors: the embedding model alone",
            "",
            f"all-MiniLM-L6-v2 on {floors['questions']}, {floors['asked']} questions × {floors['rounds']} rounds, "
            "one question per call, then 32 questions in one call; each runtime in a process of its own (torch's "
            "OpenMP threads spin after each call and would slow anything beside them): sentence-transformers "
            "on torch (how the app ran before) and the ONNX export on onnxruntime (how it runs now: one "
            "thread per call, and the same graph with one thread per core, the fastest one question goes "
            "alone), with the safety classifier's call interleaved with them (the safety graph with its head "
            "and, beside it, the embedding graph: both outputs in one call). ONNX and torch vectors agree: cosine ≥ "
            f"{floors['cosine_onnx_torch']['min']:.4f} "
            f"(mean {floors['cosine_onnx_torch']['mean']:.6f}). ONNX process: "
            f"{_load_line((floors.get('machine_load') or {}).get('onnx'))}; torch process: "
            f"{_load_line((floors.get('machine_load') or {}).get('torch'))}.",
            "",
            "| ms | one question p50 | p95 | p99 | 32 questions in one call p50 | p95 | per question |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for key, label in (
            ("torch", f"embedding, torch ({floors['torch_threads']} threads)"),
            ("onnx", f"embedding, ONNX ({floors['onnx_threads']} thread per call, as the app runs it)"),
            ("onnx_cores", f"embedding, ONNX ({floors.get('cores')} threads: one per core)"),
            (
                "safety_onnx",
                f"safety classifier and embedding, one ONNX call ({floors['onnx_threads']} thread per graph)",
            ),
        ):
            a, bb = one.get(key) or {}, b32.get(key) or {}
            if not a.get("n"):
                continue
            per = bb.get("p50") / floors.get("batch_size", 32) if bb.get("p50") else None
            out.append(
                f"| {label} | {_f(a.get('p50'), 2)} | {_f(a.get('p95'), 2)} | {_f(a.get('p99'), 2)} | "
                f"{_f(bb.get('p50'), 1)} | {_f(bb.get('p95'), 1)} | {_f(per, 2)} |"
            )
        out.append("")

    api = res.get("api")
    if _ok(api):
        out += [
            "## Warm latency, Python API",
            "",
            f"`Companion.ask(question, history)` over {api['questions']}, {api['rounds']} round(s) after a "
            "warm-up round; the engine's embedding and classifier caches are emptied before every timed "
            "answer, so each pays for its model passes. Per question, in rotating order: the ONNX "
            "embedding floor (`bot.store.embed.embed_query` alone), our full answer, and the tutorial "
            "baseline (`langchain_chroma.Chroma(...).as_retriever(search_kwargs={'k': 4}).invoke(q)` over "
            f"the same Chroma store and ONNX model). Index: {api['chunks']} chunks, {api['sentences']} "
            f"sentences. {_load_line(api.get('machine_load'))}.",
            "",
            "| ms | answers | ours p50 | p95 | p99 | ONNX floor p50 | p95 | baseline p50 | p95 |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for label, key in (
            ("all eval questions", "all"),
            ("reaching retrieval", "retrieval"),
            ("reaching retrieval, best of rounds", "retrieval_best"),
        ):
            b = api[key]
            out.append(
                f"| {label} | {b['ours_ms']['n']} | {_f(b['ours_ms']['p50'], 2)} | {_f(b['ours_ms']['p95'], 2)} | "
                f"{_f(b['ours_ms']['p99'], 2)} | {_f(b['floor_ms']['p50'], 2)} | {_f(b['floor_ms']['p95'], 2)} | "
                f"{_f(b['baseline_ms']['p50'], 2)} | {_f(b['baseline_ms']['p95'], 2)} |"
            )
        r = api["retrieval"]
        out += [
            "",
            f"Questions reaching retrieval: {api['retrieval_path']} of {api['asked']}; the others are settled "
            "by the guard and never search. Ours / ONNX floor = "
            f"**{r['ours_ms']['p50'] / r['floor_ms']['p50']:.2f}×** at p50 (paired per question "
            f"{api['paired_ratio_to_floor']['p50']:.2f}×, p95 of pairs {api['paired_ratio_to_floor']['p95']:.2f}×); "
            f"ours / LangChain baseline = {r['ours_ms']['p50'] / r['baseline_ms']['p50']:.2f}× (paired "
            f"{api['paired_ratio_to_baseline']['p50']:.2f}×). The baseline embeds and returns 4 chunks; ours "
            "also classifies the message's risk (a second encoder), resolves follow-ups, runs BM25 and "
            "fusion, ranks every sentence and composes a cited answer.",
            "",
            "Per stage (`Reply.timings_ms`; `retrieve` holds `dense`, `bm25` and `fuse`):",
            "",
            "| stage | reaching retrieval p50 ms | p95 | p99 | all questions p50 | p95 |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        every = api.get("stages_all") or {}
        for name, st in api["stages_retrieval"].items():
            if st.get("n"):
                a = every.get(name) or {}
                out.append(
                    f"| {name} | {_f(st['p50'], 2)} | {_f(st['p95'], 2)} | {_f(st['p99'], 2)} | "
                    f"{_f(a.get('p50'), 2)} | {_f(a.get('p95'), 2)} |"
                )
        mem = api.get("memory_engine_mb") or {}
        out += [
            "",
            f"Process memory: {mem.get('VmRSS')} MB RSS with the engine loaded; {api['memory_mb'].get('VmHWM')} MB "
            "peak after the run (this process also holds the LangChain baseline).",
            "",
        ]

    cold = res.get("cold")
    if _ok(cold):
        out += ["## Cold start", ""]
        out.append(
            f'`python -m bot ask "What is CT0596?"` (index already built, files in the page cache), '
            f"process start to printed answer: {', '.join(f'{x:.2f}' for x in cold['cli_ask_s'])} s; "
            f"{_load_line(cold.get('machine_load'))}."
        )
        out += [
            "",
            "Where a cold start goes (one run of `bench/worker.py cold`, in the order the CLI pays):",
            "",
        ]
        out += ["| step | seconds |", "| --- | --- |"]
        out.append(f"| start the interpreter | {cold['interpreter_start_s']:.2f} |")
        for k, v in cold["stages_s"].items():
            out.append(f"| {k} | {v:.2f} |")
        out.append("")
        for a in cold.get("app") or []:
            out.append(
                f"- `python app.py` (existing index): ready in **{a['start_to_ready_s']} s**, first `/chat` "
                f"answer {a['first_answer_after_ready_s']:.2f} s later; RSS after start "
                f"{(a.get('memory_after_start_mb') or {}).get('VmRSS')} MB; {_load_line(a.get('machine_load'))}."
            )
        out.append("")

    http = res.get("http")
    if _ok(http) and http.get("levels"):
        s = http["start"]
        out += [
            "## HTTP: the JSON API and the page's /chat under concurrent clients",
            "",
            "`python app.py` on 127.0.0.1: one uvicorn server holding the FastAPI app with the Gradio page "
            "mounted; `/chat` through Gradio's queue at its defaults (`PCL_CONCURRENCY_LIMIT`, "
            "`PCL_MAX_QUEUE`); the API's per-address rate limit raised, since every simulated person comes "
            f"from 127.0.0.1. Start to ready {s['start_to_ready_s']} s. N client threads ask back to back "
            "(no think time) for a fixed time per level, cycling through the single-turn eval questions "
            "that reach retrieval; every reply is checked for the disclaimer. `api` = `POST /api/ask`; "
            "`rest` = the page's `/chat` through Gradio's REST protocol (`POST /gradio_api/call/chat`, then "
            'its event stream); `gradio` = `gradio_client.Client(url).predict(q, api_name="/chat")`, the '
            "documented client (one client: it costs ~100 ms of client CPU per call). The clients run on the "
            "same 2 cores as the app.",
            "",
            "| client | clients | seconds | answers/s | p50 ms | p95 ms | p99 ms | ok | busy | failed | "
            "app CPU (cores) | app CPU ms/answer | clients' CPU (cores) | others' cores |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for lv in http["levels"]:
            o, lat = lv["outcomes"], lv["latency_ms"]
            out.append(
                f"| {lv.get('client')} | {lv['clients']} | {lv['seconds']} | {lv['requests_per_s']} | "
                f"{_f(lat.get('p50'), 0)} | {_f(lat.get('p95'), 0)} | {_f(lat.get('p99'), 0)} | {o['ok']} | "
                f"{o['busy']} | {o['error'] + o['bad_reply']} | {lv.get('app_cpu_cores', '–')} | "
                f"{_f(lv.get('app_cpu_ms_per_answer'), 1)} | {lv['client_cpu_cores']} | "
                f"{lv['machine'].get('other_cores')} |"
            )
        mem = http.get("memory_mb") or {}
        out += [
            "",
            f"App memory: peak RSS **{mem.get('VmHWM')} MB** (VmHWM over the whole HTTP run), {mem.get('VmRSS')} MB "
            f"at the end; {(s.get('memory_after_start_mb') or {}).get('VmRSS')} MB after start.",
            "",
        ]
        b = http.get("batching") or {}
        if b.get("embed"):
            out.append(
                "Micro-batching over the whole HTTP run (`/api/health`): embedding "
                f"{b['embed']['calls']} texts in {b['embed']['batches']} calls (mean {b['embed']['mean_batch']}, "
                f"largest {b['embed']['largest_batch']})"
                + (
                    f"; safety classifier {b['safety']['calls']} texts in {b['safety']['batches']} calls "
                    f"(mean {b['safety']['mean_batch']}, largest {b['safety']['largest_batch']})."
                    if b.get("safety")
                    else "."
                )
            )
            out.append("")
        out += [f"![latency and throughput against clients]({clients_link})", ""]
        fails = [e for lv in http["levels"] for e in lv["failure_examples"]]
        if fails:
            out += ["Failures seen (first few):", ""] + [f"- `{e}`" for e in fails[:5]] + [""]

    grow = res.get("growth")
    if isinstance(grow, list) and grow:
        out += [
            "## Growth: 1× to 1000× the corpus",
            "",
            "The real corpus plus generated trial records (`bench/synth.py`: ClinicalTrials.gov-shaped "
            "JSON with random NCT ids, conditions, sponsors, products and eligibility, from templates, "
            "fixed seed), built with the real `build_index` and queried with the real `Companion` in "
            "fresh processes; the query phase asks single-turn eval questions that reach retrieval, warm, "
            "caches emptied before each answer. Up to 20,000 chunks dense search scans the chunk vectors "
            "in memory; above that (the 1000× corpus) Chroma's HNSW index answers it.",
            "",
            "| corpus | chunks | sentences | build s | texts/s | answer p50 ms | p95 ms | best-of-rounds p50 | "
            "embedding floor p50 | retrieve..compose p50 | open s | RSS query MB | RSS build MB | others' cores |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in grow:
            if "query" not in r:
                out.append(f"| {r['scale']}× | ~{r['target_chunks']:,} | | skipped: {r.get('skipped', '')} |")
                continue
            b, q = r["build"], r["query"]
            load = max(
                (b.get("machine_load") or {}).get("other_cores") or 0,
                q["machine_load"].get("other_cores") or 0,
            )
            kept = " (kept)" if b.get("reused") else ""
            out.append(
                f"| {r['scale']}× | {b['chunks']:,} | {b['sentences']:,} | {_f(b['build_s'])}{kept} | "
                f"{_f(b['texts_per_s'], 0)} | {_f(q['ours_ms']['p50'], 2)} | {_f(q['ours_ms']['p95'], 2)} | "
                f"{_f((q.get('ours_best_of_rounds_ms') or {}).get('p50'), 2)} | {_f(q['floor_ms']['p50'], 2)} | "
                f"{_f(_non_embed(r), 2)} | {_f(q['startup_ms'] / 1000, 1)} | "
                f"{_f(q['memory_mb'].get('VmHWM'), 0)} | {_f(b['memory_mb'].get('VmHWM'), 0)} | {load} |"
            )
        reused = [r for r in grow if r.get("build", {}).get("reused")]
        for r in reused:
            b = r["build"]
            out += [
                "",
                f"{r['scale']}×: the index was built {b.get('built_at', '?')} by an earlier run and kept "
                f"(`bench/results/growth-cache/`); its build row is that run's ({_load_line(b.get('machine_load'))}). "
                "This run measured its query phase.",
            ]
        out += ["", "Per-stage p50 (ms) at each size:", ""]
        names = list(dict.fromkeys(n for r in grow if "query" in r for n in r["query"]["stages_ms"]))
        out += ["| corpus | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for r in grow:
            if "query" in r:
                st = r["query"]["stages_ms"]
                out.append(
                    f"| {r['scale']}× | "
                    + " | ".join(_f((st.get(n) or {}).get("p50"), 2) for n in names)
                    + " |"
                )
        out += ["", f"![growth]({chart_link})", ""]

    so = res.get("scaleout")
    if _ok(so):
        rr = so["round_robin"]
        out += [
            "## Scale-out check",
            "",
            "`python -m bench.scaleout`: one `chroma run` server and two `python app.py` replicas "
            "(`CHROMA_HOST`/`CHROMA_PORT` set, each with its own empty `PCL_INDEX_DIR`), all on 127.0.0.1.",
            "",
            f"- Chroma server start to heartbeat: {so['chroma_start_s']} s; `python -m bot index` into it: "
            f"{so['build_into_server_s']} s.",
            f"- Replica a ready in {so['replica_a_start']['start_to_ready_s']} s, replica b in "
            f"{so['replica_b_start']['start_to_ready_s']} s; replicas rebuilt the index: "
            f"{so['replicas_rebuilt_the_index']}{' (' + so['rebuild_reason'] + ')' if so.get('rebuild_reason') else ''}; "
            f"local index files on the replicas: {so['local_index_files'] or 'none'}.",
            f"- Same answer from both replicas: {so['same_answers']} questions.",
            f"- Round robin per request over the two replicas: {rr['answered']} answered in {rr['seconds']} s.",
            f"- One request split across replicas (POST to a, event stream from b): "
            f"{'answered' if so['split_request_answered'] else 'failed'} (`{so['split_request']['outcome'][:120]}`).",
            "",
        ]
    return "\n".join(out)


def report_paths(out_dir: Path | None) -> tuple[Path, Path, Path]:
    """(BENCHMARKS.md, growth chart, clients chart): the committed ones when out_dir is None."""
    if out_dir is None:
        return REPORT, CHART, CLIENTS_CHART
    return out_dir / REPORT.name, out_dir / CHART.name, out_dir / CLIENTS_CHART.name


def write_report(res: dict, json_path: Path | None = None, out_dir: Path | None = None) -> list[Path]:
    """The report and charts: into out_dir when given, else over BENCHMARKS.md and docs/."""
    report, chart_path, clients_path = report_paths(out_dir)
    written = [p for p in (chart(res, chart_path), clients_chart(res, clients_path)) if p]
    if out_dir is None:
        link = CHART.relative_to(REPO_ROOT).as_posix()
        clink = CLIENTS_CHART.relative_to(REPO_ROOT).as_posix()
    else:
        link, clink = CHART.name, CLIENTS_CHART.name
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(res, json_path, chart_link=link, clients_link=clink), encoding="utf-8")
    written.append(report)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.report", description="Rewrite the report from a run's JSON."
    )
    p.add_argument("results", type=Path, help="bench/results/<timestamp>.json")
    p.add_argument("--write-report", action="store_true", help="over BENCHMARKS.md and docs/bench-*.png")
    args = p.parse_args(argv)
    res = json.loads(args.results.read_text(encoding="utf-8"))
    out_dir = None if args.write_report else args.results.with_suffix("")
    for path in write_report(res, args.results, out_dir=out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
