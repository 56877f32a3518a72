"""Questions each source sentence answers: the bridge between patients' words and the sources'.

`corpus/questions/<source>.yaml` lists, per article and glossary sentence, questions written the
way people ask (reviewed corpus data); `corpus/questions/trials.yaml` holds templates applied to
every trial record's sections. The index embeds them next to the passages (LangChain's
MultiVectorRetriever pattern): a question close to a stored one finds its sentence even when
they share no word.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.errors import CorpusError

FORMAT = "pcl-questions/1"
TEMPLATES = "pcl-question-templates/1"


@dataclass(frozen=True)
class StoredQuestion:
    question: str
    source_id: str
    section: str
    answers: tuple[str, ...]  # the sentences that answer it, word for word; () = the whole section


def _yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CorpusError(path, "questions", f"is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise CorpusError(path, "questions", "is not a mapping")
    return raw


def load_written(path: Path) -> list[StoredQuestion]:
    raw = _yaml(path)
    if raw.get("format") != FORMAT:
        raise CorpusError(path, "format", f"must be {FORMAT}")
    source = str(raw.get("source_id") or "")
    out = []
    for i, item in enumerate(raw.get("items") or []):
        answers = item.get("answer")
        answers = (answers,) if isinstance(answers, str) else tuple(answers or ())
        questions = item.get("questions") or []
        if not answers or not questions or not item.get("section"):
            raise CorpusError(path, f"items[{i}]", "needs section, answer and questions")
        out += [StoredQuestion(str(q), source, str(item["section"]), answers) for q in questions]
    return out


def _trial_names(path: Path) -> tuple[str, list[str]]:
    study = json.loads(path.read_text(encoding="utf-8"))
    p = study.get("protocolSection", {})
    nct = p.get("identificationModule", {}).get("nctId", path.stem)
    products = [
        i.get("name", "")
        for i in p.get("armsInterventionsModule", {}).get("interventions", [])
        if i.get("name")
    ]
    return nct, products


def load_templated(templates: Path, trial_files: list[Path]) -> list[StoredQuestion]:
    raw = _yaml(templates)
    if raw.get("format") != TEMPLATES:
        raise CorpusError(templates, "format", f"must be {TEMPLATES}")
    out = []
    for trial in trial_files:
        nct, products = _trial_names(trial)
        for section, questions in (raw.get("sections") or {}).items():
            for q in questions:
                for product in products or [nct]:
                    out.append(StoredQuestion(q.format(id=nct, product=product), nct, section, ()))
    return list({(q.question, q.source_id, q.section): q for q in out}.values())


def load_questions(corpus_dir: Path) -> list[StoredQuestion]:
    folder = Path(corpus_dir) / "questions"
    written = [q for p in sorted(folder.glob("*.yaml")) if p.name != "trials.yaml" for q in load_written(p)]
    templates = folder / "trials.yaml"
    trials = sorted((Path(corpus_dir) / "trials").glob("*.json"))
    return written + (load_templated(templates, trials) if templates.exists() else [])


def sentences_by_section(chunks) -> dict[tuple[str, str], list[tuple[str, int, str]]]:
    """(source id, section) -> its quotable sentences as (chunk id, unit index, text), in order:
    what a stored question's `section` and `answers` point at."""
    from bot.ingest.chunk import units_of

    out: dict[tuple[str, str], list[tuple[str, int, str]]] = {}
    for c in chunks:
        key = (c.metadata["source_id"], c.metadata.get("section", ""))
        out.setdefault(key, []).extend(
            (c.id, j, u.text.strip()) for j, u in enumerate(units_of(c)) if not u.label
        )
    return out


def question_files(corpus_dir: Path) -> list[Path]:
    return sorted((Path(corpus_dir) / "questions").glob("*.yaml"))
