"""Source sentences that are never quoted: text planted to steer the bot or its readers.

A poisoned document cannot turn into advice in our voice: a sentence that speaks to an AI, tells
readers to change their treatment, or asks to drop the disclaimer or citations is left out of
every answer, context sentences included.
"""

from __future__ import annotations

import re
from functools import lru_cache

from bot.safety.rules import INJECTION


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(parts), re.IGNORECASE)


PLANTED = _rx(
    r"\b(tell|instruct|advise|inform)\s+(the\s+)?(users?|patients?|people|readers?|everyone)\s+(to|that)\b",
    # An order about the reader's own treatment: "stop taking their chemotherapy", "double your dose".
    r"\b(stop|quit|discontinue|skip|miss|double|triple|halve|increase|decrease|reduce|raise|lower|change)"
    r"\s+(taking\s+|using\s+)?(your|their|his|her|all|any)\s+(\w+\s+){0,2}"
    r"(treatments?|medications?|medicines?|meds|drugs?|chemo\w*|therap(y|ies)|doses?|dosage|pills?|infusions?)\b",
    r"\b(assistant|chatbot|ai|model|bot|llm)\s*(:|\b(must|should|will)\b)",
    r"\bnote\s+(to|for)\s+(the\s+)?(ai|assistants?|chatbots?|bots?|models?|llms?)\b",
    r"\b(if\s+you\s+are|as)\s+an?\s+(ai|assistant|chatbot|language\s+model|llm)\b",
    r"\b(omit|remove|drop|leave\s+out|skip|hide|delete)\s+(the\s+|your\s+|any\s+)?(disclaimers?|citations?|sources?)\b",
)


@lru_cache(maxsize=1 << 16)
def looks_planted(sentence: str) -> bool:
    """A source sentence that speaks to the bot or orders readers about their treatment.

    Remembered per text: the same source sentences are checked for every question that
    retrieves them, and the answer never changes (the regexes are fixed)."""
    return bool(INJECTION.search(sentence) or PLANTED.search(sentence))
