"""The labelled message set: well formed, split by family, and the test split frozen."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter

from bot.safety import data
from bot.settings import REPO_ROOT

ROOT = REPO_ROOT / "corpus" / "safety"
# sha256 of the sorted test-split family ids (changing the frozen split must be deliberate)
FROZEN_TEST = "ca4904a7a525bd48"


def test_the_test_split_is_frozen():
    splits = json.loads((ROOT / "splits.json").read_text())
    test = sorted(f for f, s in splits.items() if s == "test")
    assert hashlib.sha256("\n".join(test).encode()).hexdigest()[:16] == FROZEN_TEST


def test_whole_families_stay_in_one_split_and_every_category_is_in_each():
    messages = data.load(ROOT)
    by_family: dict[str, set[str]] = {}
    for m in messages:
        by_family.setdefault(m.family, set()).add(m.split)
    assert all(len(s) == 1 for s in by_family.values())
    counts = Counter((m.split, m.label) for m in messages)
    for split in ("train", "val", "test", "fresh"):
        for label in ("self_harm", "harm_to_others", "poisoning", "symptoms", "decision", "support", "none"):
            assert counts[(split, label)] > 0, (split, label)
    assert sum(v for (s, _), v in counts.items() if s != "fresh") >= 2000


def test_families_added_after_the_test_split_was_frozen_go_to_train_and_val_only(tmp_path):
    """A new set gets splits from the training command; the frozen test split must not grow."""
    messages = tmp_path / "messages"
    messages.mkdir()
    shutil.copy(ROOT / "splits.json", tmp_path / "splits.json")
    for p in (ROOT / "messages").glob("*.jsonl"):
        shutil.copy(p, messages / p.name)
    lines = [
        json.dumps({"family": f"z-{i:03d}", "label": label, "text": f"message {i} {j}"})
        for i, label in enumerate(["none", "support", "decision", "symptoms", "self_harm"] * 4)
        for j in range(3)
    ]
    (messages / "z-new.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = json.loads((tmp_path / "splits.json").read_text())
    loaded = data.load(tmp_path, write_missing_splits=True)
    after = json.loads((tmp_path / "splits.json").read_text())
    new = {m.family: m.split for m in loaded if m.source == "z-new.jsonl"}
    assert set(new.values()) == {"train", "val"}
    assert {f: s for f, s in after.items() if f in before} == before
    assert sorted(f for f, s in after.items() if s == "test") == sorted(
        f for f, s in before.items() if s == "test"
    )
