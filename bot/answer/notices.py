"""The fixed texts the bot says in its own voice. Numbers come from Settings, never literals."""

from __future__ import annotations

from bot.settings import Settings

COVERAGE = (
    "what plasma cell leukemia (PCL) is and its survival statistics; the off-the-shelf "
    "(allogeneic) CAR-T product CT0596 and the first two PCL patients who received it; CARsgen's "
    "CT071 and its trial records NCT06333509 and NCT05838131; and the article's author"
)


def emergency(settings: Settings, reason: str) -> str:
    if reason == "self_harm":
        return (
            "**Please reach out for help right now.** If you are thinking about harming yourself, "
            f"call or text **{settings.crisis_line}** ({settings.crisis_line_name}) now, or call "
            f"**{settings.emergency_number}** if you are in immediate danger. "
            "If you can, tell someone near you and stay with them. You do not have to go through this alone."
        )
    return (
        "**This may be an emergency. Get medical help now.** Fever, confusion, trouble speaking, "
        "seizures, trouble breathing, chest pain or bleeding, especially in the weeks after CAR-T, "
        "need urgent care. **Call your care team's 24-hour line right away**, or call "
        f"**{settings.emergency_number}** (or go to the nearest emergency room) if the symptoms are "
        "severe or you cannot reach them. Do not wait for an online answer."
    )


def medical_advice(has_facts: bool) -> str:
    text = (
        "**This is a decision for your care team.** Whether to join a trial, start or stop a "
        "treatment, or what dose to take depends on your own health history, so I can't decide it "
        "or give doses."
    )
    if has_facts:
        text += " Here is what the article and trial records say in general, to bring to that conversation:"
    return text


def out_of_scope(reason: str) -> str:
    if reason == "injection":
        return (
            "I can't change how I work: I only answer questions about the article and its trial "
            f"records, with citations. They cover {COVERAGE}. Please ask about one of those."
        )
    return (
        "I can only answer questions about the HealthTree article on relapsed plasma cell leukemia "
        f"and off-the-shelf CAR-T, and the trial records it links to. They cover {COVERAGE}. "
        "Try, for example: “What is plasma cell leukemia?” or “What is CT0596?”"
    )


def not_found() -> str:
    return (
        "The article and trial records don't cover that, so I can't answer it without guessing. "
        f"They cover {COVERAGE}. Your care team is the best source for anything else."
    )


def invalid(reason: str, settings: Settings, length: int = 0) -> str:
    if reason == "too_long":
        return (
            f"Your message is {length:,} characters long; the limit is {settings.max_question_chars:,}. "
            "Please ask a shorter question."
        )
    if reason == "control_chars":
        return "Your message contains control characters I can't read. Please retype it as plain text."
    return "Please type a question, for example: “What is plasma cell leukemia?”"
