"""Write a run to `evals/reports/<timestamp>/`: report.md, results.json, chart.png (+ ablations)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from bot.settings import REPO_ROOT
from evals import configs
from evals.dataset import Dataset
from evals.metrics import confusion
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
    ("followup_fact_recall", "follow-up fact recall"),
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


def results_json(run: Run, dataset: Dataset, gate_results: list[dict], meta: dict) -> dict:
    return {
        "meta": meta,
        "config": run.config,
        "settings": configs.describe(run.settings),
        "overall": run.overall(),
        "by_tag": run.by_tag(dataset.all_tags()),
        "confusion": confusion(run.results),
        "gates": gate_results,
        "cases": run.results,
    }


def render_markdown(data: dict, dataset: Dataset, ablations: list[dict] | None = None) -> str:
    meta, overall = data["meta"], data["overall"]
    lines = [
        f"# Eval report {meta['timestamp']}",
        "",
        f"- config: **{data['config']}** ({data['settings']})",
        f"- dataset: `{meta['dataset']}` ({dataset.format}, {overall['n']} cases)",
        f"- commit: `{meta['commit']}`; startup {meta['startup_seconds']:.1f} s, run {meta['run_seconds']:.1f} s",
        "",
        "## Gates",
        "",
    ]
    lines.append(
        _table(
            ["gate", "rule", "value", "result"],
            [
                [g["metric"], g["rule"], fmt(g["value"], g["metric"]), "pass" if g["passed"] else "**FAIL**"]
                for g in data["gates"]
            ],
        )
    )
    lines += ["", "## Headline (overall)", ""]
    lines.append(_table(["metric", "value"], [[k, fmt(v, k)] for k, v in overall.items()]))
    lines += ["", "## Per tag", ""]
    rows = []
    for group, tags in dataset.tags.items():
        for tag in tags:
            m = data["by_tag"].get(tag)
            if m:
                rows.append([tag, group] + [fmt(m[k], k) for k, _ in TAG_COLUMNS])
    lines.append(_table(["tag", "group"] + [h for _, h in TAG_COLUMNS], rows))
    lines += ["", "## Kind confusion matrix (rows: expected, columns: got)", ""]
    conf = data["confusion"]
    kinds = list(conf)
    lines.append(
        _table(
            ["expected \\ got"] + kinds,
            [[k] + [str(conf[k][g]) for g in kinds] for k in kinds if any(conf[k].values())],
        )
    )
    failing = [r for r in data["cases"] if not r["passed"]]
    lines += ["", f"## Failing cases ({len(failing)})", ""]
    if failing:
        lines.append(
            _table(
                ["id", "tags", "expected", "got", "diagnosis"],
                [
                    [
                        r["case"]["id"],
                        ", ".join(r["case"]["tags"]),
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
    misses = [r for r in data["cases"] if r["passed"] and r["verdict"]["retrieval_rank"] is None]
    lines += ["", f"## Passing cases whose expected section was not retrieved ({len(misses)})", ""]
    lines += [f"- `{r['case']['id']}`: {_md_cell(r['diagnosis'])}" for r in misses] or ["None."]
    if ablations:
        lines += ["", "## Ablations", "", ablation_table(ablations)]
    lines += [
        "",
        "Metric definitions: evals/README.md. Every case with its reply and verdicts: results.json.",
        "",
    ]
    return "\n".join(lines)


def ablation_table(rows: list[dict]) -> str:
    return _table(
        ["config", "settings", "n"] + [h for _, h in ABLATION_COLUMNS],
        [
            [r["config"], r["settings"], str(r["overall"]["n"])]
            + [fmt(r["overall"].get(k), k) for k, _ in ABLATION_COLUMNS]
            for r in rows
        ],
    )


def write_chart(data: dict, dataset: Dataset, path: Path) -> None:
    """Grouped horizontal bars: headline metrics per tag (tags in dataset order)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tags = ["overall"] + [t for t in dataset.all_tags() if t in data["by_tag"]]
    rows = [data["overall"]] + [data["by_tag"][t] for t in tags[1:]]
    n_metrics = len(CHART_METRICS)
    height = 0.8 / n_metrics
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(tags) + 1.5))
    y = np.arange(len(tags))
    for i, (key, label) in enumerate(CHART_METRICS):
        values = [np.nan if r.get(key) is None else r[key] for r in rows]
        ax.barh(y + i * height - 0.4 + height / 2, values, height=height, label=label)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{t} (n={r['n']})" for t, r in zip(tags, rows, strict=True)], fontsize=8)
    ax.set_ylim(len(tags) - 0.5, -0.5)  # top to bottom in dataset order, no empty margins
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("score (missing bar: metric not applicable to the tag)")
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
    data = results_json(run, dataset, gate_results, meta)
    if ablations:
        data["ablations"] = [{k: v for k, v in a.items() if k != "cases"} for a in ablations]
    (out_dir / "results.json").write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(data, dataset, ablations), encoding="utf-8")
    write_chart(data, dataset, out_dir / "chart.png")
    if ablations:
        (out_dir / "ablations.md").write_text(
            "# Ablations\n\n" + ablation_table(ablations) + "\n", encoding="utf-8"
        )
        adir = out_dir / "ablations"
        adir.mkdir(exist_ok=True)
        for a in ablations:
            (adir / f"{a['config']}.json").write_text(
                json.dumps(a, indent=1, ensure_ascii=False), encoding="utf-8"
            )
    return data
