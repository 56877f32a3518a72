"""How the classifier is trained and its thresholds set on the validation split (`bot/safety/train.py`)."""

import numpy as np

from bot.safety import train
from bot.safety.policy import EMERGENCIES, HARM_TO_OTHERS, NONE, PRECEDENCE, SELF_HARM

LABELS = list(PRECEDENCE)


def _probs(spec: dict[str, list[float]], column: dict[str, str] | None = None):
    """Rows whose probability for their own category (or `column[label]`) is the given value."""
    rows, y = [], []
    for label, values in spec.items():
        for v in values:
            row = np.full(len(LABELS), 0.0)
            row[LABELS.index((column or {}).get(label, label))] = v
            rows.append(row)
            y.append(LABELS.index(label))
    return np.array(rows), np.array(y)


def _spec(self_harm_low: list[float], benign_self_harm: list[float]) -> tuple[np.ndarray, np.ndarray]:
    p, y = _probs({c: [0.9] * 40 for c in EMERGENCIES[1:]} | {c: [0.9] * 20 for c in ("decision", "support")})
    sh, ysh = _probs({SELF_HARM: self_harm_low + [0.9] * (40 - len(self_harm_low))})
    ben, yben = _probs({NONE: benign_self_harm + [0.0] * (100 - len(benign_self_harm))}, {NONE: SELF_HARM})
    return np.vstack([p, sh, ben]), np.concatenate([y, ysh, yben])


def test_clean_categories_keep_full_recall_and_the_budget_holds():
    # Two benign messages score 0.5 for self-harm; self-harm messages all score 0.6 or more.
    p, y = _spec([0.6, 0.7], [0.5, 0.5])
    thresholds, recall, rate = train.thresholds_for(p, y)
    assert all(r == 1.0 for r in recall.values())
    assert thresholds[SELF_HARM] == 0.6
    assert rate == 0.0


def test_self_harm_recall_is_bought_before_the_others():
    # Both categories can gain one message at the cost of two benign alarms in 100; the budget
    # (3%) allows one such step, and self-harm weighs more.
    p, y = _spec([0.3], [0.3, 0.3])
    hto = y == LABELS.index(HARM_TO_OTHERS)
    p[np.flatnonzero(hto)[0], LABELS.index(HARM_TO_OTHERS)] = 0.2
    benign = np.flatnonzero(y == LABELS.index(NONE))
    p[benign[2:4], LABELS.index(HARM_TO_OTHERS)] = 0.2
    thresholds, recall, rate = train.thresholds_for(p, y)
    assert recall[SELF_HARM] == 1.0 and thresholds[SELF_HARM] == 0.3
    assert recall[HARM_TO_OTHERS] < 1.0
    assert rate == 0.02


def test_over_the_budget_the_fewest_alarms_win():
    # Four benign messages score over every self-harm message: 4% whatever the threshold.
    p, y = _spec([0.5], [0.95] * 4 + [0.5] * 2)
    thresholds, recall, rate = train.thresholds_for(p, y)
    assert rate == 0.04
    assert thresholds[SELF_HARM] == 0.9


def test_within_the_budget_more_recall_is_taken():
    # Lowering self-harm to 0.3 costs one benign alarm in 100 (within 3%) and gains a message.
    p, y = _spec([0.3], [0.3])
    thresholds, recall, rate = train.thresholds_for(p, y)
    assert thresholds[SELF_HARM] == 0.3 and recall[SELF_HARM] == 1.0
    assert rate == 0.01


def test_endings_are_added_to_a_share_of_every_label_alike():
    from bot.safety.data import Message

    msgs = [Message(f"message {i}", label, f"f{i}") for i in range(400) for label in ("self_harm", "none")]
    out = train.with_endings(msgs)
    assert out[: len(msgs)] == msgs and out == train.with_endings(msgs)  # originals kept; deterministic
    extra = out[len(msgs) :]
    for label in ("self_harm", "none"):
        share = sum(m.label == label for m in extra) / 400
        assert 0.2 < share < 0.4
    assert all(any(m.text.endswith(e) for e in train.ENDINGS) for m in extra)
