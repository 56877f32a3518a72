"""`--compare OLD NEW`: metric deltas and the cases that flipped between two runs.

OLD and NEW are report folders (their results.json is read) or results.json files, including
the per-configuration files an ablation run writes under `ablations/`.
"""

from __future__ import annotations

import json
from pathlib import Path

from evals.metrics import HEADLINE
from evals.report import fmt

HIGHER_IS_WORSE = {"forbidden_hit_rate", "over_refusal_rate", "latency_p50_ms", "latency_p95_ms"}


def load_results(path: Path | str) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no results.json there; pass a report folder or a results.json file")
    return json.loads(path.read_text(encoding="utf-8"))


def _split(data: dict, key: str, split: str) -> dict:
    """The test split's numbers (reports before the dev/test split held one set)."""
    value = data.get(key, {})
    return value.get(split, {}) if split in value else value


def compare(old: dict, new: dict, split: str = "test") -> dict:
    deltas = []
    old_overall, new_overall = _split(old, "overall", split), _split(new, "overall", split)
    for key in HEADLINE:
        a, b = old_overall.get(key), new_overall.get(key)
        delta = None if a is None or b is None else b - a
        deltas.append({"metric": key, "old": a, "new": b, "delta": delta})
    tags = {}
    old_tags, new_tags = _split(old, "by_tag", split), _split(new, "by_tag", split)
    for tag in sorted(set(old_tags) | set(new_tags)):
        a = old_tags.get(tag, {}).get("pass_rate")
        b = new_tags.get(tag, {}).get("pass_rate")
        if a != b:
            tags[tag] = (a, b)
    old_cases = {r["case"]["id"]: r for r in old["cases"]}
    new_cases = {r["case"]["id"]: r for r in new["cases"]}
    fixed, broken, kind_changed = [], [], []
    for cid in old_cases.keys() & new_cases.keys():
        o, n = old_cases[cid], new_cases[cid]
        if o["passed"] and not n["passed"]:
            broken.append((cid, n["diagnosis"]))
        elif n["passed"] and not o["passed"]:
            fixed.append((cid, o["diagnosis"]))
        if o["reply"]["kind"] != n["reply"]["kind"]:
            kind_changed.append((cid, o["reply"]["kind"], n["reply"]["kind"]))
    return {
        "deltas": deltas,
        "tag_pass_rate": tags,
        "fixed": sorted(fixed),
        "broken": sorted(broken),
        "kind_changed": sorted(kind_changed),
        "only_old": sorted(old_cases.keys() - new_cases.keys()),
        "only_new": sorted(new_cases.keys() - old_cases.keys()),
    }


def render(diff: dict, old_name: str, new_name: str) -> str:
    lines = [f"Comparing OLD {old_name}  ->  NEW {new_name} (test split)", ""]
    lines.append(f"{'metric':<24}{'old':>10}{'new':>10}{'delta':>10}")
    for d in diff["deltas"]:
        delta = d["delta"]
        mark = ""
        if delta and d["metric"] != "n":
            worse = delta > 0 if d["metric"] in HIGHER_IS_WORSE else delta < 0
            mark = "  worse" if worse else "  better"
        dtxt = "–" if delta is None else (f"{delta:+.1f}" if d["metric"].endswith("_ms") else f"{delta:+.3f}")
        if d["metric"] == "n" and delta is not None:
            dtxt = f"{int(delta):+d}"
        lines.append(
            f"{d['metric']:<24}{fmt(d['old'], d['metric']):>10}{fmt(d['new'], d['metric']):>10}{dtxt:>10}{mark}"
        )
    if diff["tag_pass_rate"]:
        lines += ["", "Pass rate by tag (changed only):"]
        for tag, (a, b) in diff["tag_pass_rate"].items():
            lines.append(f"  {tag:<22}{fmt(a):>8} -> {fmt(b)}")
    lines += ["", f"Broken (passed before, fail now): {len(diff['broken'])}"]
    lines += [f"  - {cid}: {why}" for cid, why in diff["broken"]]
    lines += [f"Fixed (failed before, pass now): {len(diff['fixed'])}"]
    lines += [f"  + {cid} (was: {why})" for cid, why in diff["fixed"]]
    if diff["kind_changed"]:
        lines += [f"Reply kind changed: {len(diff['kind_changed'])}"]
        lines += [f"  ~ {cid}: {a} -> {b}" for cid, a, b in diff["kind_changed"]]
    if diff["only_old"] or diff["only_new"]:
        lines += [f"Cases only in OLD: {', '.join(diff['only_old']) or '-'}"]
        lines += [f"Cases only in NEW: {', '.join(diff['only_new']) or '-'}"]
    return "\n".join(lines)
