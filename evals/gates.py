"""Release gates: thresholds from `evals/gates.yaml`, checked against the overall metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from evals.metrics import HEADLINE

FORMAT = "pcl-gates/1"
DEFAULT_GATES = Path(__file__).with_name("gates.yaml")


class GatesError(ValueError):
    """gates.yaml is malformed; the message names the gate."""


@dataclass(frozen=True)
class Gate:
    metric: str
    min: float | None = None
    max: float | None = None

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


def load_gates(path: Path | str = DEFAULT_GATES) -> list[Gate]:
    path = Path(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise GatesError(f"{path}: the first key must be `format: {FORMAT}`")
    gates = []
    for metric, rule in (raw.get("gates") or {}).items():
        if metric not in HEADLINE:
            raise GatesError(f"{path}: {metric!r} is not a metric; use one of {', '.join(HEADLINE)}")
        if not isinstance(rule, dict) or not set(rule) <= {"min", "max"} or not rule:
            raise GatesError(f"{path}: {metric}: write {{min: X}} and/or {{max: Y}}")
        gates.append(Gate(metric, rule.get("min"), rule.get("max")))
    return gates


def check_gates(gates: list[Gate], overall: dict) -> list[dict]:
    return [
        {
            "metric": g.metric,
            "rule": g.rule,
            "value": overall.get(g.metric),
            "passed": g.check(overall.get(g.metric)),
        }
        for g in gates
    ]
