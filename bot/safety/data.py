"""The labelled message set the safety classifier learns from, and its frozen splits.

`corpus/safety/messages/*.jsonl` holds messages written in paraphrase families (one situation,
told several ways). Whole families go to one split, so no test message has a training sibling;
the split of every family is recorded in `corpus/safety/splits.json` once and never redrawn.
`corpus/safety/fresh/*.jsonl` was written separately by someone who saw none of the rest: it is
test-only, never trained or tuned on.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bot.safety.policy import PRECEDENCE

SPLITS = ("train", "val", "test")
SHARES = (0.65, 0.15, 0.20)  # of the families of each (file, label) stratum
# The test split was frozen with the first sets (a-d); families added since go to train and val
# only, so the test split, and every figure measured on it, stays comparable.
LATER_SHARES = (0.8, 0.2, 0.0)


class SafetyDataError(ValueError):
    """The labelled set is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Message:
    text: str
    label: str
    family: str
    voice: str = ""
    tags: tuple[str, ...] = ()
    source: str = ""  # file name
    split: str = ""  # train | val | test | fresh


def _read(path: Path) -> list[Message]:
    out = []
    # JSON Lines end at "\n" only: splitlines() would also break at a raw U+2028 in a message.
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            label, text, family = item["label"], item["text"], item["family"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SafetyDataError(f"{path}:{lineno}: {exc}; each line needs family, label, text") from None
        if label not in PRECEDENCE:
            raise SafetyDataError(f"{path}:{lineno}: label {label!r} is not one of {PRECEDENCE}")
        out.append(
            Message(text, label, family, item.get("voice", ""), tuple(item.get("tags", ())), path.name)
        )
    return out


def assign_splits(messages: list[Message], shares: tuple[float, float, float] = SHARES) -> dict[str, str]:
    """family -> split, stratified by (file, label), in a fixed hash order; `shares` of train,
    val and test."""
    strata: dict[tuple[str, str], set[str]] = defaultdict(set)
    for m in messages:
        strata[(m.source, m.label)].add(m.family)
    out: dict[str, str] = {}
    for _stratum, families in sorted(strata.items()):
        order = sorted(families, key=lambda f: hashlib.sha256(f"pcl-safety:{f}".encode()).hexdigest())
        n = len(order)
        n_test = max(1, round(n * shares[2])) if shares[2] else 0
        n_val = max(1, round(n * shares[1])) if n > 2 else 0
        for i, fam in enumerate(order):
            if fam in out:
                continue  # a family already placed (the same family id in two strata) keeps its split
            out[fam] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def load(root: Path, write_missing_splits: bool = False) -> list[Message]:
    """Every labelled message with its split. New families get a split only when asked to
    (the training command), so loading never silently moves a message between splits."""
    msg_dir, fresh_dir = root / "messages", root / "fresh"
    messages = [m for p in sorted(msg_dir.glob("*.jsonl")) for m in _read(p)]
    split_file = root / "splits.json"
    splits = json.loads(split_file.read_text(encoding="utf-8")) if split_file.exists() else {}
    missing = {m.family for m in messages} - set(splits)
    if missing:
        if not write_missing_splits:
            raise SafetyDataError(
                f"{len(missing)} families have no split in {split_file}; run `python -m bot.safety.train`"
            )
        new = assign_splits([m for m in messages if m.family in missing], LATER_SHARES)
        splits |= new
        split_file.write_text(json.dumps(dict(sorted(splits.items())), indent=0) + "\n", encoding="utf-8")
    out = [Message(**{**m.__dict__, "split": splits[m.family]}) for m in messages]
    out += [
        Message(**{**m.__dict__, "split": "fresh"})
        for p in sorted(fresh_dir.glob("*.jsonl"))
        for m in _read(p)
    ]
    return out
