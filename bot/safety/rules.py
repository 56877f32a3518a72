"""Plain patterns: a backstop under the learned classifier, and prompt-injection attempts.

Recall comes from the classifier (`classifier.py`); these few patterns only add explicit
phrasings that must never be missed, even if the model were swapped or badly retrained, and a
general reading of body temperatures. They can add a risk, never remove one.

The symptom words cost false alarms (on the train and val splits they called 24 benign messages
urgent, mostly past events told in passing, and caught 1 the classifier missed) and are kept:
a plain "I have a fever after CAR-T" must never depend on a retrained model. The guard sets them
aside only when the classifier is sure the message is ordinary (`PCL_SYMPTOM_WORDS_VETO`).
"""

from __future__ import annotations

import re

from bot.safety.policy import DECISION, SELF_HARM, SYMPTOMS


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(parts), re.IGNORECASE)


SELF_HARM_EXPLICIT = _rx(
    r"\bkill(ing)?\s+(my|him|her|them)sel(f|ves)\b",
    r"\bsuicid",
    r"\bend(ing)?\s+(it\s+all|my\s+(own\s+)?life)\b",
    r"\btake\s+my\s+(own\s+)?life\b",
    r"\b(wants?|wanted|wanna|going|ready)\s+to\s+die\b",
    r"\b(hurt|harm|cut)(ting)?\s+(my|him|her)sel(f|ves)\b",
    r"\bself[-\s]?harm",
    r"\b(no\s+reason\s+to\s+live|better\s+off\s+dead)\b",
    r"\boverdos(e|ing)\s+on\s+purpose\b",
    # Any verb of injury turned on oneself ("hang myself", "drown myself"), and cutting or piercing
    # one's own vessels: the grammar of self-directed harm, whatever the method.
    r"\b(hang|hanging|hanged|cut|cutting|stab|stabbing|shoot|shooting|poison|poisoning|drown|drowning|"
    r"burn|burning|starve|starving|strangle|strangling|suffocate|suffocating|smother|electrocute|"
    r"injure|injuring|mutilate|mutilating|slit|slitting)\s+(my|him|her|them)sel(f|ves)\b",
    r"\b(cut|cutting|slit|slitting|slash|slashing|sever|severing|pierce|piercing|open|opening)\s+"
    r"(up\s+)?my\s+(own\s+)?(\w+\s+)?(wrists?|arter(y|ies)|veins?|throat)\b",
)

SYMPTOM = _rx(
    r"\bfever(s|ish)?\b",
    r"\b(chills|rigors)\b",
    r"\bconfus(ed|ion)\b",
    r"\bseizure|\bconvuls",
    r"\bchest\s+pain\b",
    r"\bshort(ness)?\s+of\s+breath\b",
    r"\b(passed|passing)\s+out\b|\bfaint(ed|ing)\b|\bunconscious\b|\bunresponsive\b",
)

# The message is about the writer or someone close, not a general question.
PERSONAL = _rx(
    r"\b(i|i'm|im|i've|ive|me|my|myself|we|our|us|ourselves)\b",
    r"\b(he|she|he's|she's|his|her|himself|herself|themselves)\b",
    r"\b(husband|wife|partner|mom|mum|mother|dad|father|son|daughter|brother|sister|friend|child|kid)\b",
)

DECISION_EXPLICIT = _rx(
    r"\b(should|shud|shuld|shoud|sould)\s+(i|we)\b",
    r"\b(am\s+i|are\s+we)\s+(eligible|a\s+(good\s+)?candidate|qualified)\b",
    r"\bhow\s+(much|many)\s+(\w+\s+){0,3}(should|can)\s+(i|he|she|we)\s+take\b",
)

INJECTION = _rx(
    r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(instructions?|rules?|prompts?|guidelines|directions|polic(y|ies)|restrictions|safety|disclaimer)\b",
    r"\bsystem\s+prompt\b",
    r"\byou\s+are\s+now\b",
    r"\b(pretend|act|behave)\s+(to\s+be|you\s+are|as\s+(if|a|an|my))\b",
    r"\brole[-\s]?play\b",
    r"\b(developer|dan|god|jailbreak)\s+mode\b|\bjailbreak",
    r"\bnew\s+instructions\b",
    r"\b(reveal|show|print|repeat)\s+(me\s+)?(your|the)\s+(system\s+)?(prompt|instructions|rules)\b",
    r"\b(without|no|remove|drop|skip)\s+(the\s+|your\s+|any\s+)?disclaimers?\b",
    # "ignore the instructions" in a few other languages.
    r"忽略.{0,20}(指令|说明|规则|提示)|無視|無视",
    r"\bignor(a|e|ez|iere|ieren|ar)\b.{0,40}\b(instrucciones|instructions|anweisungen|istruzioni|instru[cç][oõ]es|regeln|reglas|r[eè]gles)\b",
)

# A body temperature: a number with a unit, or next to a word for temperature.
_READING = re.compile(
    r"(?<![\d.,])(\d{2,3}(?:[.,]\d{1,2})?)\s*(°|º|deg(?:rees?)?\b)?\s*([cf])?(?![\w])", re.IGNORECASE
)
_TEMPERATURE_WORD = re.compile(r"\b(temp\w*|fever\w*|thermometer|febrile)\b", re.IGNORECASE)
FEVER_C = 38.0  # 100.4 °F


def fever_reading(text: str) -> float | None:
    """The highest body temperature in `text` that is a fever, in °C, or None.

    38-43.5 reads as Celsius and 100.4-110 as Fahrenheit when a unit or a word for temperature
    is there: "temp 39,2", "101.3F", "thermometer says 102".
    """
    worded = bool(_TEMPERATURE_WORD.search(text))
    best = None
    for m in _READING.finditer(text):
        value = float(m.group(1).replace(",", "."))
        unit = (m.group(3) or "").lower()
        if not (worded or m.group(2) or unit):
            continue
        celsius = value if unit == "c" or (not unit and value < 50) else (value - 32) * 5 / 9
        if FEVER_C <= celsius <= 43.5 and (unit != "c" or value < 50):
            best = max(best or 0.0, celsius)
    return best


def backstop(probe: str) -> set[str]:
    """Risk categories the plain patterns find in a message."""
    found: set[str] = set()
    personal = bool(PERSONAL.search(probe))
    # Only about the writer or someone close: "what is a suicide gene?" is a question about cells.
    if personal and SELF_HARM_EXPLICIT.search(probe):
        found.add(SELF_HARM)
    if personal and (SYMPTOM.search(probe) or fever_reading(probe) is not None):
        found.add(SYMPTOMS)
    if DECISION_EXPLICIT.search(probe):
        found.add(DECISION)
    return found


def is_injection(probe: str) -> bool:
    return bool(INJECTION.search(probe))
