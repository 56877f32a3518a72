"""The embedding adapter's training data and batches (the training run itself: README, ~5 min)."""

from __future__ import annotations

import json

from bot.store.train_embedding import FOLDER, _answered, batches, hard_negatives, pairs


def test_every_stored_question_the_corpus_answers_is_a_training_pair(settings) -> None:
    data = pairs(settings)
    meta = json.loads((settings.index.trained(FOLDER) / "meta.json").read_text(encoding="utf-8"))
    # The committed adapter was trained on exactly the pairs the corpus gives today.
    assert (len(data), len({a for _, a in data})) == (meta["pairs"], meta["answers"])
    questions = {q for q, _ in data}
    assert "What is plasma cell leukemia?" in questions
    assert any(q.startswith("Who can join NCT") for q in questions)  # the trial-record templates
    assert all(q.strip() and a.strip() for q, a in data)


def test_a_batch_never_holds_two_questions_with_the_same_answer(settings) -> None:
    data = pairs(settings)
    out = batches(data, seed=0)
    seen = [i for b in out for i in b]
    assert len(seen) == len(set(seen)) and len(seen) >= len(data) - 1
    for b in out:
        answers = [data[i][1] for i in b]
        assert len(answers) == len(set(answers)), "an in-batch negative would be a positive"
    assert batches(data, seed=0) == out and batches(data, seed=1) != out  # reproducible, reshuffled


def test_a_near_miss_never_shares_a_sentence_with_the_right_answer(settings) -> None:
    from transformers import AutoModel, AutoTokenizer

    answered = [x for x in _answered(settings) if x[2]][:120]
    data = [(q, a) for q, a, _ in answered]
    sentences = {a: units for _, a, units in answered}
    path = settings.index.model_path
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    picked = hard_negatives(
        model, AutoTokenizer.from_pretrained(path, local_files_only=True), data, sentences
    )
    assert len(picked) == len(data) and all(picked)
    for (_, own), other in zip(data, picked, strict=True):
        assert other != own and not (sentences[other] & sentences[own])
    # Nor does a near miss hold one of the right answer's sentences inside a longer text.
    assert (
        sum(any(s in other for s in sentences[own]) for (_, own), other in zip(data, picked, strict=True))
        == 0
    )
