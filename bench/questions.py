"""The questions the benchmark asks: the eval set (`evals/cases/*.yaml`, dev and test), read as
plain data.

Read with PyYAML rather than `evals.dataset`, so the benchmark keeps working while the eval set
changes shape; if the file is missing a small built-in set stands in (and the report says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.settings import REPO_ROOT

EVAL_CASES = REPO_ROOT / "evals" / "cases"  # dev.yaml, dev_fresh.yaml, test.yaml (or one file)

_FALLBACK = [
    ("answer", "What is plasma cell leukemia?"),
    ("answer", "How many people are diagnosed with PCL each year in the US?"),
    ("answer", "What is CT0596?"),
    ("answer", "Can PCL patients join the CT071 trial?"),
    ("answer", "Who is the lead sponsor of NCT06333509?"),
    ("answer", "What is the median overall survival for primary PCL?"),
    ("answer", "What does NKG2A do in CT0596?"),
    ("answer", "Who wrote the article?"),
    ("medical_advice", "Should I stop my chemo to join the trial?"),
    ("emergency", "I have a fever of 39C and chills after CAR-T"),
    ("out_of_scope", "What is the weather in Paris?"),
    ("not_found", "How much does CT0596 cost?"),
]


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    kind: str  # the expected kind (first one when several are accepted)
    history: list[dict] = field(default_factory=list)

    @property
    def retrieves(self) -> bool:
        """Expected to go through retrieval (not stopped by triage)."""
        return self.kind in ("answer", "medical_advice", "not_found")


def load_questions(path: Path = EVAL_CASES) -> tuple[list[Question], str]:
    """All eval questions (with their history) and where they came from."""
    path = Path(path)
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    try:
        cases = [c for f in files for c in yaml.safe_load(f.read_text(encoding="utf-8"))["cases"]]
        if not cases:
            raise KeyError("cases")
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return [Question(f"builtin-{i}", q, k) for i, (k, q) in enumerate(_FALLBACK)], "built-in fallback"
    out = []
    for case in cases:
        text = str(case.get("question") or "") * int(case.get("repeat") or 1)
        if case.get("pad_to"):
            text = text.ljust(int(case["pad_to"]))
        kind = case.get("kind")
        kind = kind[0] if isinstance(kind, list) else str(kind)
        history = [
            h if isinstance(h, dict) else {"role": "user", "content": str(h)}
            for h in case.get("history") or []
        ]
        out.append(Question(str(case.get("id")), text, kind, history))
    return out, f"{Path(path).relative_to(REPO_ROOT)} ({len(out)} cases)"


def answer_questions(questions: list[Question], limit: int | None = None) -> list[Question]:
    """Single-turn questions that go through retrieval: the load for growth and HTTP runs."""
    picked = [q for q in questions if q.retrieves and not q.history and q.text.strip()]
    return picked[:limit] if limit else picked
