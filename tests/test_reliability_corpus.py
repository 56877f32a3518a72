"""Corpus validation: a broken source file is one clear error naming the file and the field,
and it never reaches the index: the current store stays current and the bot keeps answering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from reliability_fixtures import (
    adopt,
    assert_reply_is_safe,
    clone_index,
    companion_for,
    current_store,
    run_cli,
    settings_for,
    shared_embeddings,
    small_corpus,
    store_folders,
)

from bot.errors import CorpusError
from bot.ingest.load import load_corpus
from bot.store.index import open_index

TRIAL = "trials/NCT06333509.json"
ID_FIELD = "protocolSection.identificationModule.nctId"


def _edit_trial(change):
    def apply(corpus: Path) -> None:
        path = corpus / TRIAL
        study = json.loads(path.read_text(encoding="utf-8"))
        change(study)
        path.write_text(json.dumps(study), encoding="utf-8")

    return apply


def _write(relative: str, data: bytes):
    def apply(corpus: Path) -> None:
        (corpus / relative).write_bytes(data)

    return apply


def _replace_in(relative: str, old: str, new: str):
    def apply(corpus: Path) -> None:
        path = corpus / relative
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return apply


def _truncate(relative: str):
    def apply(corpus: Path) -> None:
        data = (corpus / relative).read_bytes()
        (corpus / relative).write_bytes(data[: len(data) // 2])

    return apply


def _article_front_matter_only(corpus: Path) -> None:
    text = (corpus / "article.md").read_text(encoding="utf-8")
    (corpus / "article.md").write_text(text[: text.index("\n---\n") + 5], encoding="utf-8")


def _rename_trial(corpus: Path) -> None:
    (corpus / TRIAL).rename(corpus / "trials" / "NCT05838131.json")


def _remove_article(corpus: Path) -> None:
    (corpus / "article.md").unlink()


def _glossary_entry_without_reference(corpus: Path) -> None:
    path = corpus / "glossary.md"
    text = path.read_text(encoding="utf-8")
    first = text.index("\nReference:")
    path.write_text(text[:first] + text[text.index("\n", first + 1) :], encoding="utf-8")


# (name, damage, file the error must name, field the error must name)
CASES = [
    ("trial_truncated_json", _truncate(TRIAL), TRIAL, "(JSON)"),
    ("trial_not_utf8", _write(TRIAL, b'{"protocolSection": "\xff\xfe"}'), TRIAL, "(encoding)"),
    ("trial_not_an_object", _write(TRIAL, b"[1, 2, 3]"), TRIAL, "(top level)"),
    (
        "trial_without_protocol_section",
        _edit_trial(lambda s: s.pop("protocolSection")),
        TRIAL,
        "protocolSection",
    ),
    (
        "trial_without_nct_id",
        _edit_trial(lambda s: s["protocolSection"]["identificationModule"].pop("nctId")),
        TRIAL,
        ID_FIELD,
    ),
    (
        "trial_bad_nct_id",
        _edit_trial(lambda s: s["protocolSection"]["identificationModule"].update(nctId="NCT123")),
        TRIAL,
        ID_FIELD,
    ),
    ("trial_id_not_its_file_name", _rename_trial, "trials/NCT05838131.json", ID_FIELD),
    (
        "trial_without_title",
        _edit_trial(lambda s: s["protocolSection"]["identificationModule"].pop("briefTitle")),
        TRIAL,
        "protocolSection.identificationModule.briefTitle",
    ),
    (
        "trial_conditions_not_a_list",
        _edit_trial(lambda s: s["protocolSection"]["conditionsModule"].update(conditions="PCL")),
        TRIAL,
        "protocolSection.conditionsModule.conditions",
    ),
    (
        "trial_intervention_not_an_object",
        _edit_trial(
            lambda s: s["protocolSection"]["armsInterventionsModule"].update(interventions=["CT071"])
        ),
        TRIAL,
        "protocolSection.armsInterventionsModule.interventions[0]",
    ),
    (
        "trial_criteria_not_text",
        _edit_trial(lambda s: s["protocolSection"]["eligibilityModule"].update(eligibilityCriteria=42)),
        TRIAL,
        "protocolSection.eligibilityModule.eligibilityCriteria",
    ),
    ("article_empty", _write("article.md", b""), "article.md", "front matter"),
    ("article_front_matter_only", _article_front_matter_only, "article.md", "body"),
    ("article_without_title", _replace_in("article.md", "title:", "heading:"), "article.md", "title"),
    (
        "article_front_matter_not_yaml",
        _replace_in("article.md", "kind: article", "kind: [article"),
        "article.md",
        "front matter",
    ),
    ("article_not_utf8", _write("article.md", b"---\ntitle: \xe9t\xe9\n---\n"), "article.md", "(encoding)"),
    ("glossary_entry_without_reference", _glossary_entry_without_reference, "glossary.md", "/ Reference"),
    ("corpus_without_article", _remove_article, "", "article"),
]
IDS = [c[0] for c in CASES]


@pytest.fixture(scope="module")
def template(companion, tmp_path_factory):
    adopt(companion)  # one model per test session
    root = tmp_path_factory.mktemp("corpus-template")
    corpus = small_corpus(root / "corpus")
    open_index(settings_for(corpus, root / "index"), shared_embeddings(), progress=False)
    return corpus, root / "index"


@pytest.fixture
def broken(request, template, tmp_path):
    """A copy of the good corpus and its good index, with one source file then broken."""
    _, damage, file, field = request.param
    corpus = Path(shutil.copytree(template[0], tmp_path / "corpus"))
    index = clone_index(template[1], tmp_path / "index")
    damage(corpus)
    return settings_for(corpus, index), corpus / file, field


@pytest.mark.parametrize("broken", CASES, ids=IDS, indirect=True)
def test_broken_source_is_one_error_naming_the_file_and_the_field(broken):
    settings, path, field = broken
    with pytest.raises(CorpusError) as caught:
        load_corpus(settings.index.corpus_dir)
    error = caught.value
    assert Path(error.path) == path
    assert field in error.field
    message = str(error)
    assert str(path) in message and field in message and "\n" not in message


@pytest.mark.parametrize("broken", CASES, ids=IDS, indirect=True)
def test_broken_source_never_replaces_the_current_index(broken):
    settings, path, field = broken
    index = settings.index.index_dir
    before = (current_store(index), store_folders(index))
    with pytest.raises(CorpusError):
        open_index(settings, shared_embeddings(), progress=False, fallback=False)
    assert (current_store(index), store_folders(index)) == before, "nothing half-built, nothing switched"
    # The app keeps answering from the last good index and says why it did not rebuild.
    bot = companion_for(settings)
    assert field in bot.index.notice and "last good index" in bot.index.notice
    assert (current_store(index), store_folders(index)) == before
    reply = bot.ask("What is plasma cell leukemia?")
    assert_reply_is_safe(reply, settings)
    assert reply.kind == "answer" and reply.citations


def test_cli_index_with_a_broken_source_prints_one_line_and_exits_2(template, tmp_path, monkeypatch, capsys):
    corpus = Path(shutil.copytree(template[0], tmp_path / "corpus"))
    index = clone_index(template[1], tmp_path / "index")
    _edit_trial(lambda s: s["protocolSection"]["identificationModule"].pop("briefTitle"))(corpus)
    before = (current_store(index), store_folders(index))
    env = {"PCL_CORPUS_DIR": str(corpus), "PCL_INDEX_DIR": str(index)}
    assert run_cli(["index"], env, monkeypatch) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"error: {corpus / TRIAL}: field 'protocolSection.identificationModule.briefTitle' is missing or empty"
    )
    assert (current_store(index), store_folders(index)) == before
