"""Release gates and targets from `evals/gates.yaml`, checked on the frozen test split.

`gates` fail the run (exit 1); `targets` are the goals the project works toward, reported beside
them so a run shows both what must not regress and how far the goals still are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

FORMAT = "pcl-gates/2"
DEFAULT_GATES = Path(__file__).with_name("gates.yaml")


class GatesError(ValueError):
    """gates.yaml is malformed; the message names the gate."""


@dataclass(frozen=True)
class Gate:
    metric: str  # "<suite>.<metric>", e.g. answers.pass_rate or safety.self_harm_recall
    min: float | None = None
    max: float | None = None
    enforced: bool = True

    def check(self, value: float | None) -> bool:
        if value is None:  # no cases measured it: a gate without data is not a pass
            return False
        return (self.min is None or value >= self.min - 1e-9) and (
            self.max is None or value <= self.max + 1e-9
        )

    @property
    def rule(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


def load_gates(path: Path | str, known: set[str]) -> list[Gate]:
    path = Path(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise GatesError(f"{path}: the first key must be `format: {FORMAT}`")
    gates = []
    for section, enforced in (("gates", True), ("targets", False)):
        for metric, rule in (raw.get(section) or {}).items():
            if metric not in known:
                raise GatesError(f"{path}: {section}: {metric!r} is not a metric; use one of {sorted(known)}")
            if not isinstance(rule, dict) or not set(rule) <= {"min", "max"} or not rule:
                raise GatesError(f"{path}: {metric}: write {{min: X}} and/or {{max: Y}}")
            gates.append(Gate(metric, rule.get("min"), rule.get("max"), enforced))
    return gates


def check_gates(gates: list[Gate], measured: dict[str, float | None]) -> list[dict]:
    return [
        {
            "metric": g.metric,
            "rule": g.rule,
            "value": measured.get(g.metric),
            "passed": g.check(measured.get(g.metric)),
            "enforced": g.enforced,
        }
        for g in gates
    ]
