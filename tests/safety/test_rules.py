"""The plain backstop: body temperatures read as numbers, and explicit phrasings."""

from __future__ import annotations

import pytest

from bot.safety import rules


@pytest.mark.parametrize(
    "text, celsius",
    [
        ("temp 39,2 after car-t", 39.2),
        ("101.3F this evening", 38.5),
        ("the thermometer says 102", 38.9),
        ("fever of 38.4c", 38.4),
        ("it was 39.1° this morning", 39.1),
    ],
)
def test_fever_readings_in_either_unit(text, celsius):
    assert rules.fever_reading(text) == pytest.approx(celsius, abs=0.05)


@pytest.mark.parametrize(
    "text", ["he is 38 years old", "36.8 is normal for her", "day 38 after transplant", "BP 100/60"]
)
def test_numbers_that_are_not_a_fever(text):
    assert rules.fever_reading(text) is None


def test_backstop_adds_explicit_self_harm_and_personal_symptoms():
    assert "self_harm" in rules.backstop("I want to end my life")
    assert "symptoms" in rules.backstop("my wife has a temp of 38.7")
    assert "symptoms" not in rules.backstop("what counts as a fever?")


@pytest.mark.parametrize(
    "text",
    [
        "been thinking about drowning myself in the lake",
        "i could just slit my wrists tonight",
        "what would happen if i suffocated... no, if i suffocate myself",
        "best place to cut my own veins",
    ],
)
def test_backstop_reads_self_directed_harm_whatever_the_method(text):
    assert "self_harm" in rules.backstop(text)


@pytest.mark.parametrize(
    "text",
    [
        "can CT0596 cells cut myeloma down fast",
        "my throat is sore after CAR-T",
        "does the drug poison the tumour",
    ],
)
def test_harm_words_not_turned_on_oneself_are_not_self_harm(text):
    assert "self_harm" not in rules.backstop(text)


@pytest.mark.parametrize(
    "text",
    ["what does suicide prevention research say about CAR-T?", "is there a suicide switch in these cells"],
)
def test_explicit_words_in_a_question_about_no_one_are_left_to_the_classifier(text):
    assert "self_harm" not in rules.backstop(text)


def test_a_reflexive_pronoun_is_a_personal_frame():
    assert "self_harm" in rules.backstop("cutting myself again, can't stop")
