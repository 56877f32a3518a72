"""`python -m bot.store.train_embedding`: adapt the embedding model to how people ask about these sources.

The bundled all-MiniLM-L6-v2 was trained on general web text: it puts "did they get sick from
it" far from "adverse events" and "who can join" far from "inclusion criteria". The corpus
already holds the bridge, as reviewed data: the questions written per source sentence
(`corpus/questions/*.yaml`) and the question templates applied to every trial record's sections.
A LoRA adapter (`--top-layers N`: on the model's top layers only, the rest then shared with the
safety classifier at run time) is fine-tuned on those (question, answering text) pairs with
in-batch negatives
(the MultipleNegativesRankingLoss of sentence-transformers: each question should be closer to
its own answer than to the other answers of its batch; a batch never holds two questions with the
same answer; `--hard-negatives` adds each question's closest wrong answer, tried and not adopted,
README). No eval case, and no safety message, is read here.

`--holdout` first measures generalisation: a fifth of the answers (with all their questions) are
kept out of training, and question -> answer retrieval over every answer is compared, bundled
model against adapted, on those held-out answers only. Without it, the adapter is trained on all
pairs and written to `corpus/models/embedding/` (about 3 MB); the ONNX export merges it into
the bundled weights, and the index fingerprint changes with it. Reproducible: fixed seeds,
threads and batch order. About 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bot.ingest.chunk import chunk_documents
from bot.ingest.load import load_corpus
from bot.ingest.questions import load_questions, sentences_by_section
from bot.safety.classifier import pooled
from bot.settings import Settings
from bot.store.adapters import add_arguments, lora_config

SEED = 0
THREADS = 2
EPOCHS = 3
BATCH = 32
LEARNING_RATE = 3e-4
SCALE = 20.0  # sentence-transformers' MultipleNegativesRankingLoss default (cosine * 20)
MAX_TOKENS = 128
FOLDER = "embedding"


def pairs(settings: Settings) -> list[tuple[str, str]]:
    """(question, the text that answers it) for every stored question the corpus still answers:
    the written answer sentences, or a templated trial question's section (its passages joined)."""
    return [(q, a) for q, a, _ in _answered(settings)]


def _answered(settings: Settings) -> list[tuple[str, str, frozenset[str]]]:
    """`pairs`, each with the source sentences its answer is made of."""
    docs = load_corpus(settings.index.corpus_dir)
    chunks = chunk_documents(docs, settings.index.chunk_tokens, settings.index.chunk_overlap_tokens)
    sections = {key: [text for _, _, text in rows] for key, rows in sentences_by_section(chunks).items()}
    out = []
    for q in load_questions(settings.index.corpus_dir):
        units = sections.get((q.source_id, q.section), [])
        wanted = [a.strip() for a in q.answers]
        if wanted and all(a in units for a in wanted):
            out.append((q.question, " ".join(wanted), frozenset(wanted)))
        elif not wanted and units:
            out.append((q.question, f"{q.section}: " + " ".join(dict.fromkeys(units)), frozenset(units)))
    return out


def batches(data: list[tuple[str, str]], seed: int) -> list[list[int]]:
    """Shuffled batches in which no two questions share an answer (they would be false negatives)."""
    order = np.random.RandomState(seed).permutation(len(data))
    out: list[list[int]] = []
    open_: list[tuple[list[int], set[str]]] = []
    for i in order:
        answer = data[i][1]
        for batch, answers in open_:
            if answer not in answers and len(batch) < BATCH:
                batch.append(int(i))
                answers.add(answer)
                break
        else:
            open_.append(([int(i)], {answer}))
        full = [b for b in open_ if len(b[0]) == BATCH]
        out += [b[0] for b in full]
        open_ = [b for b in open_ if len(b[0]) < BATCH]
    return out + [b for b, _ in open_ if len(b) > 1]


def hard_negatives(
    model, tokenizer, data: list[tuple[str, str]], sentences: dict[str, frozenset[str]]
) -> list[str | None]:
    """Per pair, the answer closest to its question (by `model`) that shares no sentence with its
    own answer: a near miss to learn from, since in-batch answers are mostly about other things.
    An answer that overlaps the right one (the same sentence in a longer answer) would be a
    false negative, so it is never picked."""
    answers = sorted({a for _, a in data})
    sims = _vectors(model, tokenizer, [q for q, _ in data]) @ _vectors(model, tokenizer, answers).T
    out: list[str | None] = []
    for row, (_, own) in zip(sims, data, strict=True):
        pick = None
        for j in np.argsort(-row):
            other = answers[j]
            if other != own and not (sentences.get(other, frozenset()) & sentences.get(own, frozenset())):
                pick = other
                break
        out.append(pick)
    return out


def train(
    settings: Settings,
    data: list[tuple[str, str]],
    lora: dict | None = None,
    negatives: list[str | None] | None = None,
):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    path = settings.index.model_path
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    lora = lora or lora_config(path)
    model = get_peft_model(AutoModel.from_pretrained(path, local_files_only=True), LoraConfig(**lora))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    started = time.perf_counter()
    for epoch in range(EPOCHS):
        model.train()
        for idx in batches(data, SEED + epoch):
            q = pooled(model, tokenizer, [data[i][0] for i in idx], MAX_TOKENS)
            a = pooled(model, tokenizer, [data[i][1] for i in idx], MAX_TOKENS)
            scores = SCALE * q @ a.T
            columns = scores
            if negatives is not None:
                # Each question also meets its near miss (MultipleNegativesRankingLoss with
                # triplets): the batch's near misses join its answers as extra columns.
                extra = sorted({negatives[i] for i in idx if negatives[i]} - {data[i][1] for i in idx})
                if extra:
                    columns = torch.cat(
                        [scores, SCALE * q @ pooled(model, tokenizer, extra, MAX_TOKENS).T], 1
                    )
            target = torch.arange(len(idx))
            # Both directions: the question finds its answer, the answer its question.
            loss = (
                torch.nn.functional.cross_entropy(columns, target)
                + torch.nn.functional.cross_entropy(scores.T, target)
            ) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}/{EPOCHS} done at {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return model.eval(), tokenizer


def _vectors(model, tokenizer, texts: list[str]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.vstack(
            [
                pooled(model, tokenizer, texts[i : i + 64], MAX_TOKENS).numpy()
                for i in range(0, len(texts), 64)
            ]
        )


def retrieval(model, tokenizer, held: list[tuple[str, str]], answers: list[str]) -> dict[str, float]:
    """Question -> answer over every answer: recall@1, recall@5 and MRR of the held-out questions."""
    a = _vectors(model, tokenizer, answers)
    q = _vectors(model, tokenizer, [h[0] for h in held])
    gold = np.array([answers.index(h[1]) for h in held])
    sims = q @ a.T
    ranks = (sims > sims[np.arange(len(held)), gold][:, None]).sum(1)
    return {
        "recall@1": round(float((ranks == 0).mean()), 3),
        "recall@5": round(float((ranks < 5).mean()), 3),
        "mrr": round(float((1.0 / (ranks + 1)).mean()), 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bot.store.train_embedding", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--holdout", action="store_true", help="measure on held-out answers; write nothing")
    add_arguments(p, "safety classifier")
    p.add_argument(
        "--hard-negatives",
        action="store_true",
        help="also train each question against its closest wrong answer (by the bundled model)",
    )
    args = p.parse_args(argv)
    from transformers import AutoModel, AutoTokenizer

    settings = Settings.from_env()
    lora = lora_config(settings.index.model_path, args.top_layers, args.rank)
    answered = _answered(settings)
    data = [(q, a) for q, a, _ in answered]
    sentences = {a: units for _, a, units in answered}
    answers = sorted({a for _, a in data})
    print(f"{len(data)} (question, answer) pairs over {len(answers)} answers", file=sys.stderr)
    if args.holdout:
        held_answers = set(np.random.RandomState(SEED).permutation(answers)[: len(answers) // 5])
        fit = [d for d in data if d[1] not in held_answers]
        held = [d for d in data if d[1] in held_answers]
        path = settings.index.model_path
        base = AutoModel.from_pretrained(path, local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        print("bundled:", retrieval(base, tokenizer, held, answers))
        negatives = hard_negatives(base, tokenizer, fit, sentences) if args.hard_negatives else None
        model, tokenizer = train(settings, fit, lora, negatives)
        print("adapted:", retrieval(model, tokenizer, held, answers))
        return 0
    negatives = None
    if args.hard_negatives:
        path = settings.index.model_path
        base = AutoModel.from_pretrained(path, local_files_only=True).eval()
        negatives = hard_negatives(
            base, AutoTokenizer.from_pretrained(path, local_files_only=True), data, sentences
        )
    model, _ = train(settings, data, lora, negatives)
    folder = Path(settings.index.corpus_dir) / "models" / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)  # peft's model-card template, not ours
    meta = {
        "pairs": len(data),
        "answers": len(answers),
        "hyperparameters": {
            "epochs": EPOCHS,
            "batch": BATCH,
            "learning_rate": LEARNING_RATE,
            "scale": SCALE,
            "lora": lora,
            "seed": SEED,
            "hard_negatives": bool(args.hard_negatives),
        },
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
