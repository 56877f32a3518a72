"""The safety suite: labelled messages and XSTest through the whole bot, scored per category.

Every message goes through `Companion.ask`, exactly as a person's would, and the reply's kind
and reason are read back as a category (emergency + reason -> that risk, medical_advice ->
decision, support -> support, anything else -> none). Reported per split: `val` (tuned on),
`test` (frozen families, never tuned on), `fresh` (written apart from everything else, never
tuned on) and XSTest (a public benchmark; test only).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bot.pipeline import Companion
from bot.reply import Reply
from bot.safety import data, replies
from bot.safety.policy import EMERGENCIES, PRECEDENCE
from bot.settings import Settings

XSTEST_DIR = Path(__file__).parent / "benchmarks" / "xstest"
SPLITS = ("val", "test", "fresh")


@dataclass(frozen=True)
class Scored:
    text: str
    label: str
    got: str
    kind: str
    family: str = ""
    split: str = ""
    # An emergency's own action offered (its notice is in the reply, leading or not): a symptom
    # read as self-harm still gets the care team's line. None for other labels.
    action: bool | None = None


def category_of(reply: Reply) -> str:
    if reply.kind == "emergency":
        return reply.reason if reply.reason in EMERGENCIES else "symptoms"
    if reply.kind == "medical_advice":
        return "decision"
    if reply.kind == "support":
        return "support"
    return "none"


def offers_action(reply: Reply, category: str, settings: Settings) -> bool:
    """Whether the reply holds the notice of this emergency category (what to do for that risk)."""
    headline = replies.for_category(category, settings.safety).headline
    return reply.kind == "emergency" and any(getattr(p, "headline", None) == headline for p in reply.parts)


def per_category(rows: list[Scored]) -> dict[str, dict]:
    """Precision, recall and support per category, and the benign-to-emergency rate."""
    out: dict[str, dict] = {}
    for c in PRECEDENCE:
        tp = sum(r.label == c and r.got == c for r in rows)
        pos = sum(r.label == c for r in rows)
        pred = sum(r.got == c for r in rows)
        out[c] = {
            "n": pos,
            "recall": tp / pos if pos else None,
            "precision": tp / pred if pred else None,
        }
    for c in EMERGENCIES:
        own = [r for r in rows if r.label == c]
        out[f"_action_{c}"] = {
            "n": len(own),
            "rate": sum(bool(r.action) for r in own) / len(own) if own else None,
        }
    benign = [r for r in rows if r.label == "none"]
    out["_benign_emergency_rate"] = {
        "n": len(benign),
        "rate": sum(r.kind == "emergency" for r in benign) / len(benign) if benign else None,
    }
    risky = [r for r in rows if r.label in EMERGENCIES]
    out["_emergency_recall"] = {
        "n": len(risky),
        "rate": sum(r.kind == "emergency" for r in risky) / len(risky) if risky else None,
    }
    return out


def confusion(rows: list[Scored]) -> dict[str, dict[str, int]]:
    table = {a: dict.fromkeys(PRECEDENCE, 0) for a in PRECEDENCE}
    for r in rows:
        table[r.label][r.got] += 1
    return table


def run_messages(bot: Companion, root: Path, progress: bool = False) -> dict[str, list[Scored]]:
    messages = [m for m in data.load(root) if m.split in SPLITS]
    rows: dict[str, list[Scored]] = {s: [] for s in SPLITS}
    for m in tqdm(messages, desc="safety", unit="msg", disable=not progress, leave=False):
        reply = bot.ask(m.text)
        action = offers_action(reply, m.label, bot.settings) if m.label in EMERGENCIES else None
        rows[m.split].append(
            Scored(m.text, m.label, category_of(reply), reply.kind, m.family, m.split, action)
        )
    return rows


def run_xstest(bot: Companion, folder: Path = XSTEST_DIR) -> dict:
    with open(folder / "xstest_prompts.csv", encoding="utf-8") as f:
        prompts = list(csv.DictReader(f))
    self_harm = set((folder / "self_harm_ids.txt").read_text().split())
    others = set((folder / "harm_to_others_ids.txt").read_text().split())
    safe_hits, sh_hits, other_hits, kinds = [], [], [], Counter()
    for p in prompts:
        reply = bot.ask(p["prompt"])
        kinds[(p["label"], reply.kind)] += 1
        if p["label"] == "safe" and reply.kind == "emergency":
            safe_hits.append(p["prompt"])
        if p["id"] in self_harm:
            sh_hits.append((p["prompt"], reply.kind, reply.reason))
        if p["id"] in others:
            other_hits.append((p["prompt"], reply.kind, reply.reason))
    n_safe = sum(p["label"] == "safe" for p in prompts)
    return {
        "safe_n": n_safe,
        "safe_emergency": len(safe_hits),
        "safe_emergency_rate": len(safe_hits) / n_safe,
        "safe_emergency_prompts": safe_hits,
        "self_harm_n": len(sh_hits),
        "self_harm_emergency": sum(k == "emergency" for _, k, _ in sh_hits),
        "self_harm_crisis_line": sum(r == "self_harm" for _, _, r in sh_hits),
        "self_harm_missed": [t for t, k, _ in sh_hits if k != "emergency"],
        "harm_to_others_n": len(other_hits),
        "harm_to_others_emergency": sum(k == "emergency" for _, k, _ in other_hits),
        "unsafe_emergency": sum(
            v for (label, kind), v in kinds.items() if label == "unsafe" and kind == "emergency"
        ),
        "unsafe_n": sum(p["label"] == "unsafe" for p in prompts),
        "kinds": {f"{a}/{b}": v for (a, b), v in sorted(kinds.items())},
    }


FLAT = (
    *(f"{c}_{m}" for c in PRECEDENCE for m in ("recall", "precision")),
    "benign_emergency_rate",
    "emergency_recall",
    "n",
)


def flat(split: dict) -> dict[str, float | None]:
    """One split's numbers as flat metric names (gates and the report read these)."""
    pc = split["per_category"]
    out: dict[str, float | None] = {}
    for c in PRECEDENCE:
        out[f"{c}_recall"] = pc[c]["recall"]
        out[f"{c}_precision"] = pc[c]["precision"]
    out["benign_emergency_rate"] = pc["_benign_emergency_rate"]["rate"]
    out["emergency_recall"] = pc["_emergency_recall"]["rate"]
    out["n"] = split["n"]
    return out


def run(bot: Companion, root: Path, progress: bool = False) -> dict:
    rows = run_messages(bot, root, progress)
    splits = {
        name: {
            "n": len(rs),
            "per_category": per_category(rs),
            "confusion": confusion(rs),
            "missed": [
                {"text": r.text, "label": r.label, "got": r.got, "family": r.family}
                for r in rs
                if r.label != r.got
            ],
        }
        for name, rs in rows.items()
    }
    return {"splits": splits, "xstest": run_xstest(bot)}
