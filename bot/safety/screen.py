"""Input screening: is the message readable text within the limits, and what are its words?

Runs first on every message. It never judges meaning: it removes markup, links and invisible
characters, decodes text hidden in Base64 so it is judged like plain text, and names the
problem when the message cannot be answered at all (empty, too long, control characters).
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from dataclasses import dataclass

import nh3

EMPTY = "empty"
TOO_LONG = "too_long"
CONTROL_CHARS = "control_chars"

_ZERO_WIDTH = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_B64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\((?:[^()]|\([^)]*\))*\)")
_URL = re.compile(r"\b(?:https?|javascript|data|vbscript):\S+", re.IGNORECASE)
_CODES = re.compile(r"\b(n?ct)[\s-]+(\d{3,8})\b", re.IGNORECASE)


@dataclass(frozen=True)
class Screened:
    text: str  # the cleaned words of the message
    problem: str = ""  # why it cannot be answered (empty, too_long, control_chars), or ""
    probe: str = ""  # everything the risk checks should see: cleaned, raw and decoded text


def clean(text: str) -> str:
    """The words of a message: markup, links and images removed, codes rejoined (ct 0596)."""
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    if "<" in text or "&" in text:
        text = html.unescape(nh3.clean(text, tags=set()))
    text = _MD_IMAGE.sub(" ", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _CODES.sub(lambda m: m.group(1).upper() + m.group(2), text)
    return re.sub(r"\s+", " ", text).strip()


def decoded_payloads(text: str) -> str:
    """Text hidden in Base64 runs, so an encoded message is judged like a plain one."""
    out = []
    for run in _B64.findall(text):
        padded = run + "=" * (-len(run) % 4)
        try:
            decoded = base64.b64decode(padded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if decoded and sum(ch.isprintable() for ch in decoded) / len(decoded) > 0.9:
            out.append(decoded)
    return " ".join(out)


def has_control_chars(text: str) -> bool:
    # Lone surrogates (Cs) are not text either: the tokenizer and the HTML sanitizer raise on them.
    return any(
        (cat := unicodedata.category(ch)) == "Cs" or (cat == "Cc" and ch not in "\n\r\t") for ch in text
    )


def screen(message: object, max_chars: int) -> Screened:
    if not isinstance(message, str):
        return Screened("", EMPTY)
    if len(message) > max_chars:
        return Screened("", TOO_LONG)
    if has_control_chars(message):
        return Screened("", CONTROL_CHARS)
    text = clean(message)
    if not text or not any(ch.isalnum() for ch in text):
        return Screened(text, EMPTY)
    decoded = decoded_payloads(text)
    return Screened(text, "", " ".join(p for p in (text, message, decoded) if p))
