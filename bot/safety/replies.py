"""What each risk category gets, as typed reply parts: fixed texts, numbers from Settings.

Emergency replies never quote a source: in a crisis a statistic is the wrong thing to read.
Phone numbers travel as `Action`s, so every interface can offer tap-to-call and tap-to-text.
"""

from __future__ import annotations

import re
from dataclasses import replace

from bot.reply import Action, Framing, Notice
from bot.safety.policy import HARM_TO_OTHERS, POISONING, SELF_HARM, SUPPORT, SYMPTOMS
from bot.settings import SafetySettings

_CAR_T = re.compile(r"\bcar[\s-]?t\b|\bcart\b|\bcar\s+t[\s-]?cells?\b|\bct0?596\b|\bct0?71\b", re.IGNORECASE)


def mentions_car_t(texts: list[str]) -> bool:
    return any(_CAR_T.search(t) for t in texts)


def _call(number: str, what: str = "") -> Action:
    return Action("call", number, f"Call {what or number}")


def _text(number: str) -> Action:
    return Action("text", number, f"Text {number}")


def self_harm(s: SafetySettings) -> Notice:
    return Notice(
        headline="I'm really glad you told me, and I'm sorry you're carrying this.",
        text=(
            f"You don't have to face it alone. Please call or text {s.crisis_line} "
            f"({s.crisis_line_name}) now to talk with someone who can help, any time, day or night. "
            f"If you are in immediate danger, call {s.emergency_number}. "
            "If you can, tell someone near you and stay with them."
        ),
        tone="urgent",
        actions=(_call(s.crisis_line), _text(s.crisis_line), _call(s.emergency_number)),
    )


def symptoms(s: SafetySettings, car_t: bool) -> Notice:
    why = (
        " After CAR-T, fever, confusion, trouble finding words, being very sleepy or hard to wake, "
        "shaking, trouble breathing or bleeding can be signs of cytokine release syndrome or nerve "
        "side effects that can get worse within hours, so they need a doctor now."
        if car_t
        else ""
    )
    return Notice(
        headline="This may be an emergency. Get medical help now.",
        text=(
            "Call your care team's 24-hour line right away, or call "
            f"{s.emergency_number} (or go to the nearest emergency room) if the symptoms are severe "
            f"or you cannot reach them.{why} Do not wait for an online answer."
        ),
        tone="urgent",
        actions=(_call(s.emergency_number),),
    )


def poisoning(s: SafetySettings) -> Notice:
    return Notice(
        headline="Call Poison Control now.",
        text=(
            f"Call {s.poison_control_name} at {s.poison_control} right away: they answer 24 hours a "
            "day and will tell you what to do. If the person is hard to wake, has trouble "
            f"breathing or has a seizure, call {s.emergency_number} now. Keep the medicine's box "
            "or bottle with you."
        ),
        tone="urgent",
        actions=(_call(s.poison_control, s.poison_control_name), _call(s.emergency_number)),
    )


def harm_to_others(s: SafetySettings) -> Notice:
    return Notice(
        headline="If anyone is in danger right now, call " + s.emergency_number + ".",
        text=(
            "I can't help with hurting anyone. If you feel you might act on these thoughts, please "
            f"step away and call {s.emergency_number}, or call or text {s.crisis_line} to talk "
            "with someone now: caring for someone through cancer can push anyone past their limit, "
            "and help is there for you too."
        ),
        tone="urgent",
        actions=(_call(s.emergency_number), _call(s.crisis_line), _text(s.crisis_line)),
    )


def support() -> Notice:
    return Notice(
        headline="That sounds really hard, and it makes sense to feel this way.",
        text=(
            "You don't have to carry it alone: your care team, and the hospital's social worker or "
            "counselling service, can help with the fear, the tiredness and the practical side. "
            "I can explain what the article and the trial records say about PCL, CT0596 and CT071, "
            "whenever you want."
        ),
        tone="care",
    )


def decision(has_facts: bool) -> list[Notice | Framing]:
    parts: list[Notice | Framing] = [
        Notice(
            headline="This is a decision for your care team.",
            text=(
                "Whether to join a trial, start, stop or change a treatment, what dose to take or "
                "what your results mean depends on your own health history, so I can't decide it "
                "or say how it applies to you."
            ),
            tone="care",
        )
    ]
    if has_facts:
        parts.append(Framing("In general, the sources say this, to bring to that conversation:"))
    return parts


def emergency(categories: list[str], s: SafetySettings, car_t: bool = False) -> list[Notice]:
    """The notices of every emergency a message carries, the first (by the policy's precedence)
    leading. One message can read as two risks ("she's confused tonight and keeps saying she's a
    burden"), and the classifier's thresholds sit low for recall, so the reply's reason may be
    the wrong one of the two: each risk found still gets the action it needs (the care team's
    line for symptoms, Poison Control for a swallowed medicine). A number already offered by an
    earlier notice is not offered again."""
    out: list[Notice] = []
    offered: set[tuple[str, str]] = set()
    for category in dict.fromkeys(categories):
        notice = for_category(category, s, car_t)
        actions = tuple(a for a in notice.actions if (a.kind, a.number) not in offered)
        offered |= {(a.kind, a.number) for a in notice.actions}
        out.append(replace(notice, actions=actions))
    return out


def for_category(category: str, s: SafetySettings, car_t: bool = False) -> Notice:
    """The notice of an emergency or support category."""
    if category == SELF_HARM:
        return self_harm(s)
    if category == HARM_TO_OTHERS:
        return harm_to_others(s)
    if category == POISONING:
        return poisoning(s)
    if category == SYMPTOMS:
        return symptoms(s, car_t)
    if category == SUPPORT:
        return support()
    raise ValueError(f"no fixed reply for {category!r}")
