"""The corpus vocabulary: spelling repair, lay synonyms, and words the sources never use.

A question whose topic word appears nowhere in the sources ("cost", "lymphoma", "insurance")
cannot be answered from them, however similar some sentence looks to an embedding model;
detecting that is cheaper and more honest than any similarity threshold.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.retrieve import STOPWORDS, identifiers, tokenize

# Lay words -> words the sources use (for word overlap and BM25 only; never shown).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "wrote": ("author",),
    "written": ("author",),
    "writer": ("author",),
    "writes": ("author",),
    "live": ("survival",),
    "lifespan": ("survival",),
    "survive": ("survival",),
    "expectancy": ("survival",),
    "prognosi": ("survival", "prognosi"),
    "outlook": ("survival", "prognosi"),
    "join": ("included", "eligibility", "criteria"),
    "enroll": ("included", "eligibility", "criteria"),
    "enrol": ("included", "eligibility", "criteria"),
    "qualify": ("eligibility", "criteria", "included"),
    "eligible": ("eligibility", "criteria", "included"),
    "begin": ("start",),
    "side": ("developed",),
    "effect": ("developed",),
    "reaction": ("developed",),
    "donor": ("donor",),
    "cure": ("response", "result"),
    "work": ("result", "response"),
    "worked": ("result", "response"),
    "doing": ("result", "response", "recovered"),
    "where": ("location", "facility"),
    "sponsor": ("sponsor",),
    "company": ("carsgen",),
    "maker": ("carsgen",),
    "made": ("made", "manufacturing"),
    "make": ("made", "manufacturing"),
    "factory": ("manufacturing", "facility"),
    "plant": ("manufacturing", "facility"),
    "us": ("united", "state", "u.s"),
    "usa": ("united", "state", "u.s"),
    "america": ("united", "state", "u.s"),
    "yearly": ("year",),
    "annually": ("year",),
    "kind": ("type",),
    "reject": ("eliminated", "recognized", "attack"),
    "rejected": ("eliminated", "recognized", "attack"),
    "rejection": ("eliminated", "recognized", "attack"),
    "attacked": ("attack", "eliminated"),
    "killed": ("eliminated",),
    "destroyed": ("eliminated",),
    "protect": ("hinder", "attack", "armored"),
    "armor": ("armored",),
    "armour": ("armored",),
    "ready": ("available", "off-the-shelf"),
    "available": ("available", "off-the-shelf"),
    "waiting": ("available", "immediate"),
    "wait": ("available", "immediate"),
    "results": ("result", "response", "outcome"),
    "outcome": ("outcome", "result", "response"),
    "target": ("targeting", "target", "aimed"),
    "targets": ("targeting", "target", "aimed"),
    "aim": ("aimed", "target", "targeting"),
}

# Words that frame a question without naming its topic.
FRAME_WORDS = frozenset(
    [
        "what",
        "how",
        "why",
        "when",
        "where",
        "who",
        "which",
        "whose",
        "mean",
        "means",
        "meaning",
        "meant",
        "happen",
        "happened",
        "happens",
        "happening",
        "tell",
        "know",
        "explain",
        "describe",
        "get",
        "got",
        "gets",
        "give",
        "given",
        "like",
        "thing",
        "use",
        "used",
        "need",
        "needs",
        "help",
        "say",
        "said",
        "talk",
        "good",
        "bad",
        "new",
        "long",
        "fast",
        "quick",
        "quickly",
        "soon",
        "more",
        "most",
        "less",
        "anything",
        "something",
        "someone",
        "person",
        "does",
        "did",
        "doing",
        "done",
        "go",
        "going",
        "see",
        "look",
        "find",
        "show",
        "list",
        "called",
        "call",
        "name",
        "named",
        "exactly",
        "really",
        "actually",
        "still",
        "yet",
        "else",
        "stand",
        "stand",
        "abbreviation",
        "short",
        "full",
        "word",
        "term",
        "definition",
        "define",
        "simple",
        "plain",
        "english",
        "thank",
        "thanks",
        "hi",
        "hello",
        "ok",
        "okay",
        "sure",
        "question",
        "answer",
        "info",
        "information",
        "regarding",
        "detail",
        "details",
        "overview",
        "summary",
        "summarize",
        "summarise",
        "understand",
        "difference",
        "between",
        "compare",
        "versus",
        "vs",
        "same",
        "different",
        "next",
        "now",
        "today",
        "currently",
        "current",
        "yes",
        "no",
        "right",
        "wrong",
        "true",
        "false",
        "possible",
        "able",
        "way",
        "ways",
        "lot",
        "lots",
        "big",
        "small",
        "high",
        "low",
        "well",
        "better",
        "best",
        "mention",
        "mentioned",
        "say",
        "says",
        "stated",
        "state",
        "read",
        "reading",
        "learn",
        "learned",
        "important",
        "matter",
        "number",
        "numbers",
        "much",
        "many",
        "often",
        "kind",
        "sort",
        "example",
        "examples",
        "again",
        "already",
        "ever",
        "anyone",
        "everyone",
        "everything",
        "happen",
        "post",
        "page",
        "text",
        "source",
        "sources",
        "cited",
        "citation",
        "exist",
        "exists",
        "there",
        "here",
        "that",
        "happy",
        "sad",
        "hope",
        "article",
    ]
)


@dataclass
class Lexicon:
    vocabulary: frozenset[str]
    idf: dict[str, float] = field(default_factory=dict)
    _known: set[str] = field(default_factory=set)
    _corrections: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Lexicon:
        docs = [set(tokenize(text)) for text in texts]
        vocab = set().union(*docs) if docs else set()
        df: dict[str, int] = {}
        for tokens in docs:
            for t in tokens:
                df[t] = df.get(t, 0) + 1
        n = max(1, len(docs))
        lex = cls(frozenset(vocab), {t: math.log(1 + n / c) for t, c in df.items()})
        lex._known = set(vocab) | set(STOPWORDS) | set(FRAME_WORDS) | set(SYNONYMS)
        return lex

    def correct(self, token: str) -> str | None:
        """The known word a typo stands for (leukemya -> leukemia), or None."""
        if token in self._known or token.isdigit():
            return token
        if token not in self._corrections:
            match = None
            if len(token) >= 3 and not any(ch.isdigit() for ch in token):
                close = difflib.get_close_matches(token, self._known, n=1, cutoff=0.8)
                match = close[0] if close else None
            self._corrections[token] = match
        return self._corrections[token]

    def analyze(self, text: str) -> QueryTerms:
        """Corrected spellings and synonyms for each topic word, and the words no source uses."""
        ids = identifiers(text)
        extra: list[str] = []
        groups: list[frozenset[str]] = []
        weights: list[float] = []
        uncovered: list[str] = []
        for token in dict.fromkeys(tokenize(text)):
            fixed = self.correct(token)
            if fixed is None:
                uncovered.append(token)
                continue
            alternatives = {fixed, *SYNONYMS.get(fixed, ())}
            extra.extend(a for a in alternatives if a != token)
            if token not in ids and fixed not in FRAME_WORDS and fixed not in STOPWORDS:
                group = frozenset(alternatives | {token})
                groups.append(group)
                weights.append(max((self.idf.get(a, 0.0) for a in group), default=0.0) or 1.0)
        expanded = f"{text} {' '.join(extra)}" if extra else text
        return QueryTerms(expanded, tuple(groups), tuple(weights), frozenset(ids), tuple(uncovered))


@dataclass(frozen=True)
class QueryTerms:
    expanded: str  # the question plus corrected spellings and synonyms (for BM25)
    groups: tuple[frozenset[str], ...]  # per topic word: the word and its alternatives
    weights: tuple[float, ...]  # per topic word: how rare it is in the sources (idf)
    ids: frozenset[str]  # codes typed (ct071, nct06333509)
    uncovered: tuple[str, ...]  # topic words found nowhere in the sources
