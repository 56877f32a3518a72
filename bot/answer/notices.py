"""The fixed texts the bot says in its own voice when it does not quote (besides safety replies)."""

from __future__ import annotations

from bot.reply import Notice
from bot.settings import SafetySettings

COVERAGE = (
    "what plasma cell leukemia (PCL) is and its survival statistics; the off-the-shelf "
    "(allogeneic) CAR-T product CT0596 and the first two PCL patients who received it; CARsgen's "
    "CT071 and its trial records NCT06333509 and NCT05838131; and the article's author"
)


def out_of_scope(reason: str) -> Notice:
    if reason == "injection":
        return Notice(
            "I can't change how I work: I only answer questions about the article and its trial "
            f"records, with citations. They cover {COVERAGE}. Please ask about one of those."
        )
    return Notice(
        "I can only answer questions about the HealthTree article on relapsed plasma cell leukemia "
        f"and off-the-shelf CAR-T, and the trial records it links to. They cover {COVERAGE}. "
        "Try, for example: “What is plasma cell leukemia?” or “What is CT0596?”"
    )


def not_found() -> Notice:
    return Notice(
        "The article and trial records don't cover that, so I can't answer it without guessing. "
        f"They cover {COVERAGE}. Your care team is the best source for anything else."
    )


def unclear() -> Notice:
    return Notice(
        "I'm not sure what “it” refers to here. Could you name the treatment, trial or term you "
        "mean, for example CT0596, CT071, NCT06333509 or plasma cell leukemia? "
        f"The article and trial records cover {COVERAGE}."
    )


def invalid(reason: str, s: SafetySettings, length: int = 0) -> Notice:
    if reason == "too_long":
        return Notice(
            f"Your message is {length:,} characters long; the limit is {s.max_question_chars:,}. "
            "Please ask a shorter question."
        )
    if reason == "control_chars":
        return Notice(
            "Your message contains control characters I can't read. Please retype it as plain text."
        )
    return Notice("Please type a question, for example: “What is plasma cell leukemia?”")
