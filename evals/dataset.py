"""The eval set: load and validate `evals/cases.yaml` (format `pcl-evals/1`, see evals/README.md).

Validation is strict on purpose. A case that expects an answer must name the sections that hold
it, and every required fact and every sentence of its reference answer must be found in the
corpus text of those sections: the dataset cannot put a claim in the bot's mouth that the
sources do not make.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.ingest.load import load_corpus
from bot.reply import KINDS
from evals.text import find, normalize, pattern

FORMAT = "pcl-evals/1"
CASES_DIR = Path(__file__).with_name("cases")
SPLITS = ("dev", "test")
_ROLES = ("user", "assistant")
_CASE_KEYS = {
    "id",
    "group",
    "split",
    "question",
    "repeat",
    "pad_to",
    "history",
    "kind",
    "reference",
    "facts",
    "forbidden",
    "sections",
    "tags",
    "note",
}


class DatasetError(ValueError):
    """The eval set is malformed; the message names the case and the field."""


@dataclass(frozen=True)
class Fact:
    """A required fact (or a forbidden claim): any one alternative is enough to match."""

    alternatives: tuple[str, ...]  # each a phrase (case- and spacing-insensitive) or "re:<regex>"

    @property
    def label(self) -> str:
        return " | ".join(self.alternatives)

    def find(self, text: str) -> str | None:
        """The alternative that occurs in `text`, or None."""
        for alt in self.alternatives:
            if find(alt, text):
                return alt
        return None


@dataclass(frozen=True)
class Section:
    source_id: str
    section: str

    @property
    def label(self) -> str:
        return f"{self.source_id}/{self.section}"


@dataclass(frozen=True)
class Case:
    id: str
    question: str
    kinds: tuple[str, ...]  # accepted reply kinds; the first is the expected one
    reference: str
    facts: tuple[Fact, ...] = ()
    forbidden: tuple[Fact, ...] = ()
    sections: tuple[Section, ...] = ()
    tags: tuple[str, ...] = ()
    history: tuple[dict, ...] = ()
    note: str = ""
    group: str = ""  # cases asking the same thing in other words (paraphrase consistency)
    split: str = ""  # dev | test (frozen: never tuned on)

    @property
    def kind(self) -> str:
        return self.kinds[0]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.source_id for s in self.sections))


@dataclass(frozen=True)
class Corpus:
    """Normalized text of every (source, section) of the corpus, plus article authors."""

    sections: dict[tuple[str, str], str]
    authors: dict[str, str]  # source_id -> author (articles only)
    titles: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, corpus_dir: Path) -> Corpus:
        sections: dict[tuple[str, str], str] = {}
        authors: dict[str, str] = {}
        titles: dict[str, str] = {}
        for doc in load_corpus(corpus_dir):
            md = doc.metadata
            key = (md["source_id"], md.get("section", ""))
            sections[key] = (sections.get(key, "") + " " + normalize(doc.page_content)).strip()
            if md.get("author"):
                authors[md["source_id"]] = md["author"]
            titles[md["source_id"]] = md.get("title", "")
        return cls(sections, authors, titles)

    def text(self, source_id: str, section: str) -> str | None:
        return self.sections.get((source_id, section))


@dataclass(frozen=True)
class Dataset:
    format: str
    cases: tuple[Case, ...]
    tags: dict[str, dict[str, str]]  # group -> tag -> meaning
    always_forbidden: tuple[Fact, ...]
    path: str = ""

    def tag_group(self, tag: str) -> str:
        for group, tags in self.tags.items():
            if tag in tags:
                return group
        return ""

    def all_tags(self) -> list[str]:
        return [t for tags in self.tags.values() for t in tags]


def _facts(raw: object, where: str) -> tuple[Fact, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise DatasetError(f"{where}: must be a list of phrases (or lists of alternative phrases)")
    out = []
    for item in raw:
        alts = item if isinstance(item, list) else [item]
        if not alts or not all(isinstance(a, str) and a.strip() for a in alts):
            raise DatasetError(f"{where}: {item!r} is not a phrase or a list of phrases")
        for a in alts:
            try:
                pattern(a)
            except re.error as exc:
                raise DatasetError(f"{where}: {a!r} is not a valid regular expression: {exc}") from None
        out.append(Fact(tuple(a.strip() for a in alts)))
    return tuple(out)


def _sections(raw: object, aliases: dict[str, str], corpus: Corpus, where: str) -> tuple[Section, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise DatasetError(f"{where}: must be a list of 'source/section' strings")
    out = []
    for ref in raw:
        source, _, section = ref.partition("/")
        source = aliases.get(source, source)
        if corpus.text(source, section) is None:
            known = sorted(f"{s}/{t}" for s, t in corpus.sections)
            raise DatasetError(
                f"{where}: {ref!r} is not a section of the corpus; known sections: {'; '.join(known)}"
            )
        out.append(Section(source, section))
    return tuple(out)


def _history(raw: object, where: str) -> tuple[dict, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise DatasetError(f"{where}: must be a list of {{role, content}} turns")
    out = []
    for turn in raw:
        if isinstance(turn, str):  # shorthand: a bare string is an earlier user turn
            turn = {"role": "user", "content": turn}
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in _ROLES
            or not isinstance(turn.get("content"), str)
        ):
            raise DatasetError(f"{where}: {turn!r} is not {{role: user|assistant, content: text}}")
        out.append({"role": turn["role"], "content": turn["content"]})
    return tuple(out)


def _reference_pieces(reference: str) -> list[str]:
    """Split a reference into sentence-sized pieces; any piece of a verbatim quote is verbatim too."""
    pieces = re.split(r"(?<=[.!?;:”\"])\s+|\n+", reference.strip())
    return [p.strip() for p in pieces if len(p.strip()) > 1]


def _check_supported(case: Case, corpus: Corpus, where: str) -> None:
    """An expected answer may only contain what the expected sections say."""
    texts = [corpus.text(s.source_id, s.section) or "" for s in case.sections]
    for fact in case.facts:
        if not any(fact.find(t) for t in texts):
            raise DatasetError(
                f"{where}: required fact {fact.label!r} is not in the expected sections "
                f"({', '.join(s.label for s in case.sections)}); facts must come from the sources"
            )
    everything = " ".join(corpus.sections.values())
    for piece in _reference_pieces(case.reference):
        if normalize(piece) not in everything:
            raise DatasetError(
                f"{where}: reference sentence {piece!r} is not quoted word for word from the corpus"
            )


def load_dataset(path: Path | str, corpus: Corpus) -> Dataset:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file; pass --dataset PATH") from None
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DatasetError(f"{path}: the first key must be `format: {FORMAT}`")
    aliases = raw.get("sources") or {}
    tags = raw.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, dict) for v in tags.values()):
        raise DatasetError(f"{path}: `tags` must map group -> {{tag: meaning}}")
    known_tags = {t for group in tags.values() for t in group}
    always = _facts(raw.get("always_forbidden"), f"{path}: always_forbidden")
    cases: list[Case] = []
    seen: set[str] = set()
    for i, item in enumerate(raw.get("cases") or []):
        where = f"{path}: case #{i + 1}"
        if not isinstance(item, dict):
            raise DatasetError(f"{where}: must be a mapping")
        cid = item.get("id")
        if not isinstance(cid, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", cid or ""):
            raise DatasetError(f"{where}: id {cid!r} must be lower-case letters, digits, - _ .")
        where = f"{path}: case {cid}"
        if cid in seen:
            raise DatasetError(f"{where}: duplicate id")
        seen.add(cid)
        unknown = set(item) - _CASE_KEYS
        if unknown:
            raise DatasetError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_CASE_KEYS)}")
        question = item.get("question")
        if not isinstance(question, str):
            raise DatasetError(f"{where}: question must be a string (it may be empty)")
        repeat = item.get("repeat", 1)
        if not isinstance(repeat, int) or repeat < 1:
            raise DatasetError(f"{where}: repeat must be a whole number >= 1")
        pad_to = item.get("pad_to", 0)
        if not isinstance(pad_to, int) or pad_to < 0:
            raise DatasetError(f"{where}: pad_to must be a whole number of characters")
        question = (question * repeat).ljust(pad_to)
        kinds = item.get("kind")
        kinds = tuple(kinds) if isinstance(kinds, list) else (kinds,)
        if not kinds or any(k not in KINDS for k in kinds):
            raise DatasetError(f"{where}: kind {item.get('kind')!r} must be one (or a list) of {KINDS}")
        reference = item.get("reference")
        if not isinstance(reference, str) or not reference.strip():
            raise DatasetError(f"{where}: reference (the expected answer or behaviour) is required")
        case_tags = item.get("tags")
        if not isinstance(case_tags, list) or not case_tags:
            raise DatasetError(f"{where}: tags must be a non-empty list")
        bad = [t for t in case_tags if t not in known_tags]
        if bad:
            raise DatasetError(f"{where}: unknown tag(s) {bad}; declare them under `tags:`")
        case = Case(
            id=cid,
            question=question,
            kinds=kinds,
            reference=reference.strip(),
            facts=_facts(item.get("facts"), f"{where}: facts"),
            forbidden=_facts(item.get("forbidden"), f"{where}: forbidden"),
            sections=_sections(item.get("sections"), aliases, corpus, f"{where}: sections"),
            tags=tuple(case_tags),
            history=_history(item.get("history"), f"{where}: history"),
            note=str(item.get("note") or ""),
            group=str(item.get("group") or ""),
            split=str(item.get("split") or ""),
        )
        if case.kind == "answer":
            if not case.sections or not case.facts:
                raise DatasetError(f"{where}: an expected answer needs `sections` and `facts`")
            _check_supported(case, corpus, where)
        cases.append(case)
    if not cases:
        raise DatasetError(f"{path}: no cases")
    bad = [c.id for c in cases if c.split not in SPLITS]
    if bad:
        raise DatasetError(f"{path}: case {bad[0]}: split must be one of {SPLITS}")
    return Dataset(raw["format"], tuple(cases), tags, always, str(path))


def load_cases(folder: Path | str, corpus: Corpus) -> Dataset:
    """Every case file of the folder as one dataset (the dev and the frozen test split)."""
    files = sorted(Path(folder).glob("*.yaml"))
    if not files:
        raise DatasetError(f"{folder}: no case files (*.yaml)")
    parts = [load_dataset(p, corpus) for p in files]
    seen: dict[str, str] = {}
    for d in parts:
        for c in d.cases:
            if c.id in seen:
                raise DatasetError(f"{d.path}: case {c.id}: duplicate id (also in {seen[c.id]})")
            seen[c.id] = d.path
    tags: dict[str, dict[str, str]] = {}
    for d in parts:
        for group, ts in d.tags.items():
            tags.setdefault(group, {}).update(ts)
    always = tuple(dict.fromkeys(f for d in parts for f in d.always_forbidden))
    return Dataset(FORMAT, tuple(c for d in parts for c in d.cases), tags, always, str(folder))
