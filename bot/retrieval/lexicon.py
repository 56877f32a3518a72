"""The corpus vocabulary: spelling repair, topic words weighted by rarity, words no source uses.

A question whose topic word appears nowhere in the sources ("cost", "lymphoma", "insurance")
cannot be answered from them, however similar some sentence looks to an embedding model;
detecting that is cheaper and more honest than any similarity threshold.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bot.retrieval.search import STOPWORDS, identifiers, stem, tokenize

_WORD = re.compile(r"[a-z0-9]+")
_COMMON_CODE = 0.25  # a code in more than this share of passages is an ordinary word

# Words that frame a question without naming its topic.
FRAME_WORDS = frozenset(
    """what how why when where who which whose mean means meaning meant happen happened happens
    happening tell know explain describe get got gets give given like thing use used need needs help
    say said talk good bad new long fast quick quickly soon more most less anything something
    someone person does did doing done go going see look find show list called call name named
    exactly really actually still yet else stand abbreviation short full word term definition define
    simple plain english thank thanks hi hello ok okay sure question answer info information
    regarding detail details overview summary summarize summarise understand difference between
    compare versus vs same different next now today currently current yes no right wrong true false
    possible able way ways lot lots big small high low well better best mention mentioned says
    stated state read reading learn learned important matter number numbers much many often kind
    sort example examples again already ever anyone everyone everything post page text source
    sources cited citation exist exists there here that happy sad hope article click link please
    think thinks opinion view take takes bot chatbot app first second third one two other others""".split()  # noqa: SIM905
)

_STEMMED_FRAME = frozenset(stem(w) for w in FRAME_WORDS)


def word_pieces(model_path: str) -> list[str]:
    """The whole words of the embedding model's vocabulary (`vocab.txt`), or none."""
    vocab = Path(model_path) / "vocab.txt"
    if not vocab.exists():
        return []
    return [w for w in vocab.read_text(encoding="utf-8").split() if not w.startswith(("##", "["))]


@dataclass(frozen=True)
class QueryTerms:
    expanded: str  # the question plus corrected spellings and synonyms (for BM25)
    corrected: str  # the question with misspelled words replaced (for the embedding)
    groups: tuple[frozenset[str], ...]  # per topic word: its stem and its alternatives' stems
    weights: tuple[float, ...]  # per topic word: how rare it is in the sources (idf)
    ids: frozenset[str]  # codes typed (ct071, nct06333509, patient 2)
    uncovered: tuple[str, ...]  # topic words found nowhere in the sources


@dataclass
class Lexicon:
    words: frozenset[str]  # raw lower-case words of the sources
    idf: dict[str, float] = field(default_factory=dict)  # per stemmed token
    df: dict[str, int] = field(default_factory=dict)  # passages holding each stemmed token
    passages: int = 1
    _known: set[str] = field(default_factory=set)
    _corrections: dict[str, str | None] = field(default_factory=dict)
    # Whole words of ordinary English (the embedding model's word-piece vocabulary): such a word
    # is what the person meant, not a typo, so "weather" is never repaired into "whether".
    dictionary: frozenset[str] = frozenset()
    pairs: frozenset[tuple[str, str]] = frozenset()  # adjacent words of the sources ("plasma", "cell")

    @classmethod
    def from_texts(cls, texts: Iterable[str], dictionary: Iterable[str] = ()) -> Lexicon:
        texts = list(texts)
        docs = [set(tokenize(text)) for text in texts]
        df: dict[str, int] = {}
        for tokens in docs:
            for t in tokens:
                df[t] = df.get(t, 0) + 1
        n = max(1, len(docs))
        words = frozenset(w for text in texts for w in _WORD.findall(text.lower()))
        lex = cls(words, {t: math.log(1 + n / c) for t, c in df.items()}, df, n)
        lex._known = set(words) | set(STOPWORDS) | set(FRAME_WORDS)
        lex.dictionary = frozenset(w for w in dictionary if w.isalpha() and len(w) >= 4)
        lex.pairs = frozenset(
            pair
            for text in texts
            for words in [_WORD.findall(text.lower())]
            for pair in zip(words, words[1:], strict=False)
        )
        return lex

    def rare_words(self, share: float = 0.05) -> frozenset[str]:
        """Words of the sources found in few passages: the names and terms a topic is made of."""
        limit = max(2, int(self.passages * share))
        return frozenset(
            w
            for w in self.words
            if len(w) >= 3 and not w.isdigit() and self.df.get(stem(w), limit + 1) <= limit
        )

    def correct(self, word: str, before: str = "", after: str = "") -> str | None:
        """The known word a typo stands for (leukemya -> leukemia), or None.

        A real English word the sources don't use ("weather") is taken as meant, unless its
        repair forms a pair of words the sources use with a neighbour ("plasma sell" -> "plasma
        cell"): a real-word typo shows only in context."""
        if word in self._known or word.isdigit():
            return word
        if stem(word) in self.df:  # another form of a word the sources use (enroll: enrolment)
            return word
        if word in self.dictionary:
            close = difflib.get_close_matches(word, self._known, n=3, cutoff=0.74)
            fits = [c for c in close if (before, c) in self.pairs or (c, after) in self.pairs]
            return fits[0] if fits else None
        if word not in self._corrections:
            match = None
            if len(word) >= 3 and not any(ch.isdigit() for ch in word):
                close = difflib.get_close_matches(word, self._known, n=1, cutoff=0.78)
                match = close[0] if close else None
            self._corrections[word] = match
        return self._corrections[word]

    def analyze(self, text: str) -> QueryTerms:
        """Corrected spellings and synonyms for each topic word, and the words no source uses."""
        # A code found in many passages (PCL) is an ordinary topic word, not a pointer.
        ids = {code for code in identifiers(text) if self.df.get(code, 0) <= self.passages * _COMMON_CODE}
        id_tokens = {t for code in ids for t in tokenize(code)}
        extra: list[str] = []
        corrected = text
        groups: list[frozenset[str]] = []
        weights: list[float] = []
        uncovered: list[str] = []
        said = _WORD.findall(text.lower())
        neighbours = {
            w: (said[i - 1] if i else "", said[i + 1] if i + 1 < len(said) else "")
            for i, w in reversed(list(enumerate(said)))
        }
        for word in dict.fromkeys(said):
            if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
                continue
            fixed = self.correct(word, *neighbours[word])
            if fixed is None:
                # Asked about, found nowhere: it weighs like the rarest word and is never held,
                # so "How much does CT0596 cost?" is not answered with any sentence on CT0596.
                uncovered.append(word)
                groups.append(frozenset({f"\0{word}"}))
                weights.append(2 * math.log(1 + self.passages))
                continue
            if fixed != word:
                corrected = re.sub(rf"\b{re.escape(word)}\b", fixed, corrected, flags=re.IGNORECASE)
                extra.append(fixed)
            token = stem(fixed)
            if token in id_tokens or token in _STEMMED_FRAME or fixed in STOPWORDS:
                continue
            group = frozenset({token})
            groups.append(group)
            weights.append(max((self.idf.get(a, 0.0) for a in group), default=0.0) or 1.0)
        expanded = f"{corrected} {' '.join(extra)}" if extra else corrected
        return QueryTerms(
            expanded, corrected, tuple(groups), tuple(weights), frozenset(ids), tuple(uncovered)
        )
