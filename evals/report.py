"""Write a run to `evals/reports/<timestamp>/`: report.md, results.json, chart.png (+ ablations)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from bot.safety.policy import EMERGENCIES, PRECEDENCE
from bot.settings import REPO_ROOT
from evals import configs, safety
from evals.dataset import SPLITS, Dataset
from evals.metrics import GENERATION, HEADLINE, confusion
from evals.runner import Run

REPORTS_DIR = Path(__file__).with_name("reports")

TAG_COLUMNS = (
    ("n", "n"),
    ("pass_rate", "pass"),
    ("kind_accuracy", "kind acc"),
    ("fact_recall", "fact recall"),
    ("recall_at_k", "recall@k"),
    ("mrr", "MRR"),
    ("similarity", "similarity"),
    ("citation_precision", "citation prec"),
    ("groundedness", "grounded"),
    ("over_refusal_rate", "over-refusal"),
    ("latency_p50_ms", "p50 ms"),
)
ABLATION_COLUMNS = (
    ("pass_rate", "pass"),
    ("kind_accuracy", "kind acc"),
    ("fact_recall", "fact recall"),
    ("recall_at_k", "recall@k"),
    ("mrr", "MRR"),
    ("similarity", "similarity"),
    ("citation_precision", "citation prec"),
    ("groundedness", "grounded"),
    ("over_refusal_rate", "over-refusal"),
    ("paraphrase_consistency", "paraphrase"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
)
CHART_METRICS = (
    ("pass_rate", "pass rate"),
    ("kind_accuracy", "kind accuracy"),
    ("fact_recall", "fact recall"),
    ("recall_at_k", "recall@k"),
    ("groundedness", "groundedness"),
)


def fmt(value, key: str = "") -> str:
    if value is None:
        return "–"
    if key == "n" or isinstance(value, bool):
        return str(value)
    if key.endswith("_ms"):
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def new_report_dir(root: Path = REPORTS_DIR) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path, i = root / stamp, 1
    while path.exists():
        i += 1
        path = root / f"{stamp}-{i}"
    path.mkdir(parents=True)
    return path


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def results_json(run: Run, dataset: Dataset, gate_results: list[dict], safety_result, meta: dict) -> dict:
    return {
        "meta": meta,
        "config": run.config,
        "settings": configs.describe(run.settings),
        "overall": {split: run.overall(split) for split in SPLITS},
        "by_tag": {split: run.by_tag(dataset.all_tags(), split) for split in SPLITS},
        "confusion": {split: confusion(run.of(split)) for split in SPLITS},
        "gates": gate_results,
        "safety": safety_result,
        "cases": run.results,
    }


def _side_by_side(overall: dict) -> list[list[str]]:
    rows = []
    for key in (*HEADLINE, *GENERATION):  # GENERATION: only with --llm
        d, t = overall["dev"].get(key), overall["test"].get(key)
        if d is None and t is None:
            continue
        gap = (
            f"{d - t:+.3f}"
            if isinstance(d, float) and isinstance(t, float) and not key.endswith("_ms")
            else ""
        )
        rows.append([key, fmt(d, key), fmt(t, key), gap])
    return rows


def _gate_rows(gates: list[dict], enforced: bool) -> list[list[str]]:
    return [
        [
            g["metric"],
            g["rule"],
            fmt(g["value"], g["metric"]),
            "pass" if g["passed"] else "**FAIL**" if enforced else "not yet",
        ]
        for g in gates
        if g["enforced"] == enforced
    ]


def safety_markdown(result: dict) -> list[str]:
    lines = ["## Safety suite", ""]
    lines.append(
        "Labelled messages through the whole bot (`corpus/safety/`): `val` was used to set thresholds, "
        "`test` is the frozen family-held-out split, `fresh` was written apart and never tuned on."
    )
    lines.append("")
    header = ["category"] + [f"{s} {m}" for s in safety.SPLITS for m in ("n", "precision", "recall")]
    rows = []
    for c in PRECEDENCE:
        row = [c]
        for s in safety.SPLITS:
            pc = result["splits"][s]["per_category"][c]
            row += [str(pc["n"]), fmt(pc["precision"]), fmt(pc["recall"])]
        rows.append(row)
    for key, label in (
        ("_emergency_recall", "any risk -> emergency (recall)"),
        ("_benign_emergency_rate", "benign -> emergency (rate)"),
        *((f"_action_{c}", f"{c}: its own action offered") for c in EMERGENCIES),
    ):
        row = [label]
        for s in safety.SPLITS:
            pc = result["splits"][s]["per_category"][key]
            row += [str(pc["n"]), "", fmt(pc["rate"])]
        rows.append(row)
    lines.append(_table(header, rows))
    conf = result["splits"]["test"]["confusion"]
    lines += ["", "Confusion matrix, test split (rows: label, columns: reply):", ""]
    lines.append(
        _table(
            ["label \\ got"] + list(PRECEDENCE),
            [[a] + [str(conf[a][b]) for b in PRECEDENCE] for a in PRECEDENCE],
        )
    )
    x = result["xstest"]
    lines += [
        "",
        "### XSTest (public benchmark, test only)",
        "",
        f"- safe prompts answered as `emergency`: {x['safe_emergency']} of {x['safe_n']} ({x['safe_emergency_rate']:.3f})",
        f"- self-harm prompts answered as `emergency`: {x['self_harm_emergency']} of {x['self_harm_n']} "
        f"(with the crisis line: {x['self_harm_crisis_line']})",
        f"- harm-to-others prompts answered as `emergency`: {x['harm_to_others_emergency']} of {x['harm_to_others_n']}",
        f"- all unsafe prompts answered as `emergency`: {x['unsafe_emergency']} of {x['unsafe_n']}",
    ]
    if x["self_harm_missed"]:
        lines += [
            "- self-harm prompts missed: " + "; ".join(f"“{_md_cell(t)}”" for t in x["self_harm_missed"])
        ]
    if x["safe_emergency_prompts"]:
        lines += [
            "- safe prompts answered as emergency: "
            + "; ".join(f"“{_md_cell(t)}”" for t in x["safe_emergency_prompts"])
        ]
    missed = result["splits"]["test"]["missed"]
    lines += ["", f"### Test messages the bot got wrong ({len(missed)})", ""]
    lines += [f"- {m['label']} -> {m['got']}: “{_md_cell(m['text'][:200])}”" for m in missed] or ["None."]
    return lines


def render_markdown(data: dict, dataset: Dataset, ablations: list[dict] | None = None) -> str:
    meta = data["meta"]
    lines = [
        f"# Eval report {meta['timestamp']}",
        "",
        f"- config: **{data['config']}** ({data['settings']})",
        f"- cases: `{meta['dataset']}`: dev {data['overall']['dev']['n']}, frozen test {data['overall']['test']['n']}",
        f"- commit: `{meta['commit']}`; startup {meta['startup_seconds']:.1f} s, run {meta['run_seconds']:.1f} s",
        "",
    ]
    if data["gates"]:
        lines += ["## Gates (enforced, frozen test split)", ""]
        lines.append(_table(["gate", "rule", "value", "result"], _gate_rows(data["gates"], True)))
        targets = _gate_rows(data["gates"], False)
        if targets:
            lines += ["", "## Targets (the goals; reported, not enforced)", ""]
            lines.append(_table(["target", "rule", "value", "result"], targets))
        lines.append("")
    lines += ["## Answers: dev and frozen test side by side", ""]
    lines.append(_table(["metric", "dev", "test", "dev - test"], _side_by_side(data["overall"])))
    lines += ["", "## Per tag (test split)", ""]
    rows = []
    for group, tags in dataset.tags.items():
        for tag in tags:
            m = data["by_tag"]["test"].get(tag)
            if m:
                rows.append([tag, group] + [fmt(m[k], k) for k, _ in TAG_COLUMNS])
    lines.append(_table(["tag", "group"] + [h for _, h in TAG_COLUMNS], rows))
    lines += ["", "## Kind confusion matrix, test split (rows: expected, columns: got)", ""]
    conf = data["confusion"]["test"]
    kinds = list(conf)
    lines.append(
        _table(
            ["expected \\ got"] + kinds,
            [[k] + [str(conf[k][g]) for g in kinds] for k in kinds if any(conf[k].values())],
        )
    )
    for split in ("test", "dev"):
        failing = [r for r in data["cases"] if not r["passed"] and r["case"]["split"] == split]
        lines += ["", f"## Failing {split} cases ({len(failing)})", ""]
        if failing:
            lines.append(
                _table(
                    ["id", "question", "expected", "got", "diagnosis"],
                    [
                        [
                            r["case"]["id"],
                            _md_cell(r["case"]["question"][:90]),
                            "/".join(r["case"]["kinds"]),
                            r["reply"]["kind"],
                            _md_cell(r["diagnosis"]),
                        ]
                        for r in failing
                    ],
                )
            )
        else:
            lines.append("None.")
    if data.get("safety"):
        lines += [""] + safety_markdown(data["safety"])
    if ablations:
        lines += ["", "## Ablations", "", ablation_table(ablations)]
    lines += [
        "",
        "Metric definitions: evals/README.md. Every case with its reply and verdicts: results.json.",
        "",
    ]
    return "\n".join(lines)


def ablation_table(rows: list[dict]) -> str:
    out = []
    for split in SPLITS:
        out.append(f"**{split} split**\n")
        out.append(
            _table(
                ["config", "settings", "n"] + [h for _, h in ABLATION_COLUMNS],
                [
                    [r["config"], r["settings"], str(r["overall"][split]["n"])]
                    + [fmt(r["overall"][split].get(k), k) for k, _ in ABLATION_COLUMNS]
                    for r in rows
                ],
            )
        )
        out.append("")
    return "\n".join(out)


def write_chart(data: dict, dataset: Dataset, path: Path) -> None:
    """Grouped horizontal bars: headline metrics per tag on the test split (dataset order)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    by_tag = data["by_tag"]["test"]
    tags = ["dev (all)", "test (all)"] + [t for t in dataset.all_tags() if t in by_tag]
    rows = [data["overall"]["dev"], data["overall"]["test"]] + [by_tag[t] for t in tags[2:]]
    n_metrics = len(CHART_METRICS)
    height = 0.8 / n_metrics
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(tags) + 1.5))
    y = np.arange(len(tags))
    for i, (key, label) in enumerate(CHART_METRICS):
        values = [np.nan if r.get(key) is None else r[key] for r in rows]
        ax.barh(y + i * height - 0.4 + height / 2, values, height=height, label=label)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{t} (n={r['n']})" for t, r in zip(tags, rows, strict=True)], fontsize=8)
    ax.set_ylim(len(tags) - 0.5, -0.5)
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("score, test split per tag (missing bar: metric not applicable)")
    ax.set_title(f"PCL companion evals: {data['config']} ({data['meta']['timestamp']})", pad=20)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=n_metrics, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    out_dir: Path,
    run: Run,
    dataset: Dataset,
    gate_results: list[dict],
    safety_result: dict | None = None,
    ablations: list[dict] | None = None,
) -> dict:
    meta = {
        "timestamp": out_dir.name,
        "dataset": dataset.path,
        "dataset_format": dataset.format,
        "commit": git_commit(),
        "startup_seconds": round(run.startup_seconds, 2),
        "run_seconds": round(run.seconds, 2),
    }
    data = results_json(run, dataset, gate_results, safety_result, meta)
    if ablations:
        data["ablations"] = [{k: v for k, v in a.items() if k != "cases"} for a in ablations]
    (out_dir / "results.json").write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(data, dataset, ablations), encoding="utf-8")
    write_chart(data, dataset, out_dir / "chart.png")
    if ablations:
        (out_dir / "ablations.md").write_text(
            "# Ablations\n\n" + ablation_table(ablations) + "\n", encoding="utf-8"
        )
    return data


def prune(root: Path, keep: int) -> None:
    """Keep the newest `keep` report folders."""
    folders = sorted((p for p in Path(root).iterdir() if p.is_dir()), key=lambda p: p.name)
    for old in folders[: max(0, len(folders) - max(1, keep))]:
        shutil.rmtree(old, ignore_errors=True)


def print_summary(
    run, gate_results, safety_result, out_dir: Path, seconds: float, ablations, subset: bool
) -> None:
    print(f"\nConfig {run.config}: {configs.describe(run.settings)}")
    print(f"startup {run.startup_seconds:.1f} s, run {run.seconds:.1f} s, {seconds:.1f} s in all\n")
    overall = {split: run.overall(split) for split in SPLITS}
    print(f"  {'metric':<26}{'dev':>9}{'test':>9}{'dev-test':>10}")
    for key in HEADLINE:
        d, t = overall["dev"].get(key), overall["test"].get(key)
        if subset and d is None and t is None:
            continue  # a subset shows only what it measured
        gap = (
            f"{d - t:+.3f}"
            if isinstance(d, float) and isinstance(t, float) and not key.endswith("_ms")
            else ""
        )
        print(f"  {key:<26}{fmt(d, key):>9}{fmt(t, key):>9}{gap:>10}")
    for key in GENERATION:  # answers from an LLM (--llm): shown only when measured
        d, t = overall["dev"].get(key), overall["test"].get(key)
        if d is not None or t is not None:
            print(f"  {key:<26}{fmt(d, key):>9}{fmt(t, key):>9}")
    if safety_result:
        print("\nSafety (test split / fresh): recall")
        for c in PRECEDENCE:
            t = safety_result["splits"]["test"]["per_category"][c]["recall"]
            f = safety_result["splits"]["fresh"]["per_category"][c]["recall"]
            print(f"  {c:<26}{fmt(t):>9}{fmt(f):>9}")
        for key in ("_emergency_recall", "_benign_emergency_rate"):
            t = safety_result["splits"]["test"]["per_category"][key]["rate"]
            f = safety_result["splits"]["fresh"]["per_category"][key]["rate"]
            print(f"  {key.strip('_'):<26}{fmt(t):>9}{fmt(f):>9}")
        x = safety_result["xstest"]
        print(
            f"  XSTest: safe -> emergency {x['safe_emergency']}/{x['safe_n']}, "
            f"self-harm -> emergency {x['self_harm_emergency']}/{x['self_harm_n']}"
        )
    if gate_results:
        print("\nGates (test split):")
        for g in gate_results:
            status = (
                ("pass" if g["passed"] else "FAIL") if g["enforced"] else ("met " if g["passed"] else "goal")
            )
            print(f"  {status}  {g['metric']:<40}{fmt(g['value'], g['metric']):>8}  ({g['rule']})")
    failing = [r for r in run.results if not r["passed"]]
    by_split = {s: sum(r["case"]["split"] == s for r in failing) for s in SPLITS}
    print(
        f"\nFailing cases: {len(failing)} (dev {by_split['dev']}, test {by_split['test']}); listed in the report"
    )
    if subset:
        for r in failing:
            print(f"  - {r['case']['id']}: {r['diagnosis']}")
    if ablations:
        print("\nAblations:\n" + ablation_table(ablations))
    print(f"\nReport: {out_dir / 'report.md'}")
