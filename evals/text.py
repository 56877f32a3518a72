"""Text matching shared by the dataset checks and the metrics.

Both sides of every comparison go through `normalize`, so "10⁻⁶" in a source matches "10-6"
in a fact, curly quotes match straight ones, and line breaks never hide a quote.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")
_QUOTES = {ord("\u2018"): "'", ord("\u2019"): "'", ord("\u201c"): '"', ord("\u201d"): '"'}
MARKER = re.compile(r"\[(\d+)\]")


def normalize(text: str) -> str:
    """Lower case, NFKC, plain quotes and dashes, single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_DASHES).translate(_QUOTES)
    return re.sub(r"\s+", " ", text).strip().lower()


@lru_cache(maxsize=4096)
def pattern(spec: str) -> re.Pattern[str]:
    """A phrase matches as whole words; `re:<regex>` is a regular expression (case-insensitive)."""
    if spec.startswith("re:"):
        return re.compile(spec[3:], re.IGNORECASE)
    phrase = normalize(spec)
    left = r"(?<!\w)" if phrase[:1].isalnum() else ""
    right = r"(?!\w)" if phrase[-1:].isalnum() else ""
    return re.compile(left + re.escape(phrase) + right)


def find(spec: str, text: str) -> bool:
    return bool(pattern(spec).search(normalize(text)))


def strip_markers(text: str) -> str:
    return re.sub(r"\s*\[\d+\]", "", text)
