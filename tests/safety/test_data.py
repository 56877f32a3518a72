"""The labelled message set: well formed, split by family, and the test split frozen."""

from __future__ import annotations

import hashlib
import json
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
