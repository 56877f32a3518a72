"""The corpus as the bot reads it: one clean copy of the article, trial records, glossary."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from bot.errors import CorpusError
from bot.ingest.load import load_article, load_corpus, load_glossary
from bot.ingest.trials import load_trial_documents
from bot.settings import REPO_ROOT

CORPUS = REPO_ROOT / "corpus"
RAW = REPO_ROOT.parent / "shared" / "sources" / "healthtree-allo-car-t-pcl.raw.txt"


def article_text() -> str:
    return "\n".join(d.page_content for d in load_article(CORPUS / "article.md"))


def test_article_keeps_one_copy_of_the_body():
    text = article_text()
    assert text.count("About 200 patients are diagnosed with PCL per year in the United States.") == 1
    assert text.count("CT0596 is an allo-CAR-T targeting BCMA") == 1


def test_article_drops_page_chrome():
    text = article_text()
    for chrome in (
        "Trending Articles",
        "More on Treatment Advances",
        "newsletter",
        "Together we cure",
        "3x Faster",
    ):
        assert chrome not in text


def test_article_keeps_author_box_as_its_own_section():
    docs = load_article(CORPUS / "article.md")
    author = [d for d in docs if d.metadata["section"] == "About the author"]
    assert len(author) == 1
    assert "Paul Kleutghen" in author[0].page_content
    assert "diagnosed in 2014 with primary plasma cell leukemia" in author[0].page_content


def test_article_keeps_headings_and_citation_metadata():
    docs = load_article(CORPUS / "article.md")
    sections = [d.metadata["section"] for d in docs]
    assert "What is plasma cell leukemia?" in sections
    assert "Are allo-CAR-T treatments on the horizon for PCL?" in sections
    assert "Early outcomes for PCL patients treated with allo-CAR-T" in sections
    md = docs[0].metadata
    assert md["url"] == "https://healthtree.org/myeloma/community/articles/25-allo-car-t-for-pcl"
    assert md["kind"] == "article" and md["author"] == "Paul Kleutghen"


def raw_capture() -> str:
    """The captured page, from `../shared/sources/` beside the checkout (not in this repository).

    Missing: skipped with the reason on a developer's machine; a failure on CI (CI=true), where
    `../shared` is always laid beside the clone, so a silent skip would hide a broken setup.
    """
    if RAW.exists():
        return RAW.read_text(encoding="utf-8")
    why = (
        f"the captured article {RAW} is missing: this test needs the shared/ folder beside the "
        "checkout (../shared/sources/healthtree-allo-car-t-pcl.raw.txt)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}; on CI it must be there", pytrace=False)
    pytest.skip(why)


def test_article_sentences_are_word_for_word_from_the_capture():
    raw = " ".join(raw_capture().split())
    for doc in load_article(CORPUS / "article.md"):
        for line in doc.page_content.splitlines():
            line = line.removeprefix("- ").strip()
            if line:
                assert " ".join(line.split()) in raw, line


def test_missing_capture_skips_locally_and_fails_on_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "RAW", tmp_path / "missing.raw.txt")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs the shared/ folder"):
        raw_capture()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="on CI it must be there"):
        raw_capture()


def test_trial_records_are_partial_snapshots_with_provenance():
    for nct in ("NCT06333509", "NCT05838131"):
        study = json.loads((CORPUS / "trials" / f"{nct}.json").read_text())
        assert study["protocolSection"]["identificationModule"]["nctId"] == nct
        info = study["snapshotInfo"]
        assert info["partial"] is True and info["retrieved"] and info["provenance"]
        docs = load_trial_documents(CORPUS / "trials" / f"{nct}.json")
        sections = {d.metadata["section"] for d in docs}
        assert {
            "Overview",
            "Conditions",
            "Intervention",
            "Phase and status",
            "Eligibility",
            "Snapshot note",
        } <= sections
        assert all(d.metadata["url"] == f"https://clinicaltrials.gov/study/{nct}" for d in docs)
        note = next(d for d in docs if d.metadata["section"] == "Snapshot note").page_content
        assert "partial snapshot" in note


def test_glossary_entries_link_to_a_public_reference():
    docs = load_glossary(CORPUS / "glossary.md")
    assert len(docs) >= 25
    for d in docs:
        assert d.metadata["url"].startswith("https://"), d.metadata["section"]
        assert d.page_content and "Reference:" not in d.page_content


def test_whole_corpus_has_three_kinds():
    kinds = {d.metadata["kind"] for d in load_corpus(CORPUS)}
    assert kinds == {"article", "trial", "glossary"}


def _copy_corpus(tmp_path: Path) -> Path:
    dest = tmp_path / "corpus"
    shutil.copytree(CORPUS, dest)
    return dest


def test_malformed_trial_json_names_file_and_problem(tmp_path):
    corpus = _copy_corpus(tmp_path)
    bad = corpus / "trials" / "NCT06333509.json"
    bad.write_text('{"protocolSection": {', encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        load_corpus(corpus)
    assert "NCT06333509.json" in str(err.value) and "not valid JSON" in str(err.value)


def test_missing_trial_field_names_the_field(tmp_path):
    corpus = _copy_corpus(tmp_path)
    path = corpus / "trials" / "NCT05838131.json"
    study = json.loads(path.read_text())
    del study["protocolSection"]["identificationModule"]["briefTitle"]
    path.write_text(json.dumps(study))
    with pytest.raises(CorpusError) as err:
        load_corpus(corpus)
    assert "NCT05838131.json" in str(err.value)
    assert "protocolSection.identificationModule.briefTitle" in str(err.value)


def test_bad_nct_id_is_rejected(tmp_path):
    corpus = _copy_corpus(tmp_path)
    path = corpus / "trials" / "NCT05838131.json"
    study = json.loads(path.read_text())
    study["protocolSection"]["identificationModule"]["nctId"] = "NCT123"
    path.write_text(json.dumps(study))
    with pytest.raises(CorpusError, match="not an NCT id"):
        load_corpus(corpus)


def test_empty_article_is_rejected(tmp_path):
    corpus = _copy_corpus(tmp_path)
    (corpus / "article.md").write_text(
        "---\nsource_id: a\nkind: article\ntitle: T\nurl: https://x.org\n---\n\n"
    )
    with pytest.raises(CorpusError, match="no '## ' sections"):
        load_corpus(corpus)
