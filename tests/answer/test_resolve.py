"""Follow-ups made explicit with vocabulary read from the corpus (no topic names in the code)."""

from __future__ import annotations

import pytest

from bot.answer.resolve import Vocabulary, _contrasts_in, resolve
from bot.ingest.load import load_corpus
from bot.retrieval.lexicon import Lexicon


@pytest.fixture(scope="module")
def vocabulary(settings) -> Vocabulary:
    docs = load_corpus(settings.index.corpus_dir)
    lexicon = Lexicon.from_texts(d.page_content + " " + d.metadata.get("section", "") for d in docs)
    return Vocabulary.from_corpus(docs, lexicon.rare_words())


def test_vocabulary_comes_from_the_corpus(vocabulary):
    assert vocabulary.authors == ("Paul Kleutghen",)
    assert set(vocabulary.records) == {"NCT06333509", "NCT05838131"}
    assert ("primary", "secondary") in vocabulary.contrasts and ("pPCL", "sPCL") in vocabulary.contrasts
    assert {"tocilizumab", "nkg2a", "carsgen"} <= vocabulary.terms


def test_contrasts_are_read_off_glossary_headings():
    assert _contrasts_in("Stem cell transplant: autologous (auto) and allogeneic (allo)") == [
        ("autologous", "allogeneic"),
        ("auto", "allo"),
    ]
    assert _contrasts_in("Tocilizumab") == []


@pytest.mark.parametrize(
    "earlier, question, expected",
    [
        ("tell me about CT071", "who can enroll in it?", "who can enroll in CT071?"),
        ("what happened to patient 1?", "what about the second one?", "what happened to Patient 2?"),
        (
            "what is the median OS for primary PCL?",
            "and for secondary?",
            "what is the median OS for secondary PCL?",
        ),
        ("who sponsors NCT05838131?", "and the other trial?", "who sponsors NCT06333509?"),
        ("who wrote the article?", "where was he treated?", "where was he treated? the author"),
    ],
)
def test_follow_ups_get_their_topic(vocabulary, earlier, question, expected):
    assert resolve(question, [earlier], vocabulary) == expected


def test_a_question_that_stands_alone_is_unchanged(vocabulary):
    q = "What does BCMA stand for?"
    assert resolve(q, ["tell me about CT071"], vocabulary) == q
    assert resolve("who can enroll in it?", [], vocabulary) == "who can enroll in it?"
