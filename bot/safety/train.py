"""`python -m bot.safety.train`: fine-tune the safety classifier on the labelled message set.

Reproducible: fixed seeds, a fixed number of threads, a fixed order of batches; on the same
machine the same data gives the same adapter. Steps:

1. load `corpus/safety/messages/*.jsonl`; families new since the last run get a split (whole
   families, stratified by file and label; train and val only, the test split is frozen);
2. fine-tune a LoRA adapter on the bundled all-MiniLM-L6-v2 (`--top-layers N`: its top layers
   only, the rest then shared with the embedding model at run time) and a linear head on the train
   split (cross-entropy, class-balanced; a share of it also seen with a generic ending); with
   `--members N`, once per seed, and the runs' weights averaged into one model (`soup`: runs
   that differ only in their seed disagree on borderline messages; their average costs a single
   encoder pass; tried and not adopted yet, see docs/safety.md);
3. on the val split, set each category's threshold: self-harm and symptoms keep a recall floor,
   then the emergency categories get the most recall (weighted by `MISS_COST`) whose
   benign-to-emergency rate stays within `MAX_BENIGN_EMERGENCY`; decisions and distress a recall
   target of their own (`--thresholds-only` redoes just this step);
4. write the adapter, the head and the thresholds to `corpus/models/safety/` (about 3 MB; a
   soup of N runs, N times that).

The test split and the separately written `fresh` set are never read here. About 15 minutes
per run on 2 CPU cores; `--soup-of` averages runs already trained (`--seed N --out DIR` each)
in a minute.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bot.safety import classifier as clf
from bot.safety import data
from bot.safety.policy import (
    DECISION,
    EMERGENCIES,
    HARM_TO_OTHERS,
    NONE,
    POISONING,
    PRECEDENCE,
    SELF_HARM,
    SUPPORT,
    SYMPTOMS,
)
from bot.settings import Settings
from bot.store.adapters import add_arguments, lora_config

SEED = 0
MEMBERS = 1  # runs (seeds) averaged into one model (see `soup`); 3 was tried, docs/safety.md
THREADS = 2
EPOCHS = 4
BATCH = 16
LEARNING_RATE = 3e-4  # chosen on val against 3 epochs at 5e-4 (2026-11-30)
MAX_BENIGN_EMERGENCY = 0.03  # on val: benign messages answered as an emergency, at most
# What a missed message of each emergency category weighs against the others: a missed crisis
# first, then the urgent medical ones. Within the benign budget the thresholds maximise recall
# weighted by these (a fixed false-alarm rate, the most recall it allows).
MISS_COST = {SELF_HARM: 4.0, SYMPTOMS: 2.0, POISONING: 2.0, HARM_TO_OTHERS: 1.0}
# Recall first for a crisis and for urgent symptoms: on val these stay at least this, whatever
# the budget says. (A poisoning floor of 0.95 was tried: 8.9% of benign messages on val.)
RECALL_FLOOR = {SELF_HARM: 0.97, SYMPTOMS: 0.95}
# People often end a message with a plea or a question. The first classifiers learned that such an
# ending meant an ordinary question ("I have a fever after CAR-T" read as urgent, the same with
# "what should I do?" as benign), so a share of the training messages of every label are seen
# again with one of these generic endings: the ending then carries no label.
ENDINGS = (
    "what should I do?",
    "what do we do?",
    "help",
    "please advise",
    "any advice?",
    "is this normal?",
    "thanks",
)
ENDING_SHARE = 0.3
MIN_RECALL = 0.85  # thresholds searched: those keeping at least this recall in their category
OTHER_RECALL = {DECISION: 0.93, SUPPORT: 0.85}


def with_endings(messages: list[data.Message], seed: int = SEED) -> list[data.Message]:
    """`messages` plus a copy of a share of them (every label alike) with a generic ending."""
    rng = np.random.RandomState(seed)
    extra = []
    for m in messages:
        if rng.rand() < ENDING_SHARE:
            ending = ENDINGS[rng.randint(len(ENDINGS))]
            joint = " " if m.text.rstrip().endswith((".", "?", "!")) else ", "
            extra.append(data.Message(**{**m.__dict__, "text": f"{m.text.rstrip()}{joint}{ending}"}))
    return messages + extra


def _threshold(probs: np.ndarray, recall: float) -> float:
    pos = np.sort(probs)
    if not len(pos):
        return 1.0
    return float(pos[min(int(np.floor((1.0 - recall) * len(pos))), len(pos) - 1)])


def thresholds_for(p: np.ndarray, y: np.ndarray) -> tuple[dict[str, float], dict[str, float], float]:
    """Per-category thresholds on val. For the emergency categories every combination of
    per-category candidates (each positive's score) is tried, so a category whose scores separate
    cleanly gets a low threshold without lowering the others'. Self-harm and symptoms keep their
    `RECALL_FLOOR`; then the combination with the most recall weighted by `MISS_COST` whose benign
    messages answered as an emergency stay within `MAX_BENIGN_EMERGENCY` wins (when the floors
    alone cost more, within what they cost). Decisions and distress get a recall target each.
    Returns the thresholds, the emergency recall per category on val, and the benign rate."""
    labels = list(PRECEDENCE)
    benign = p[y == labels.index(NONE)]
    cands, recalls, hits = [], [], []
    for c in EMERGENCIES:
        pos = np.sort(p[y == labels.index(c), labels.index(c)])
        keep = pos[: len(pos) - int(np.ceil(MIN_RECALL * len(pos))) + 1] if len(pos) else np.array([1.0])
        cand = np.unique(keep)
        cands.append(cand)
        recalls.append(np.array([np.mean(pos >= t) if len(pos) else 1.0 for t in cand]))
        hits.append(benign[:, labels.index(c)][None, :] >= cand[:, None])  # candidate x benign
    allowed = [
        np.flatnonzero(r >= min(RECALL_FLOOR.get(c, 0.0), r.max()))
        for c, r in zip(EMERGENCIES, recalls, strict=True)
    ]
    scored = []
    for combo in itertools.product(*allowed):
        fired = np.zeros(len(benign), dtype=bool)
        for h, k in zip(hits, combo, strict=True):
            fired |= h[k]
        rate = float(fired.mean()) if len(benign) else 0.0
        gain = sum(MISS_COST[c] * r[k] for c, r, k in zip(EMERGENCIES, recalls, combo, strict=True))
        scored.append((combo, rate, gain))
    # When the floors alone cost more than the budget, the budget is what they cost.
    budget = max(MAX_BENIGN_EMERGENCY, min(rate for _, rate, _ in scored))
    combo, rate, _ = max(
        (x for x in scored if x[1] <= budget),
        key=lambda x: (round(x[2], 9), -x[1], sum(cd[k] for cd, k in zip(cands, x[0], strict=True))),
    )
    thresholds = {c: float(cd[k]) for c, cd, k in zip(EMERGENCIES, cands, combo, strict=True)}
    thresholds |= {
        c: _threshold(p[y == labels.index(c), labels.index(c)], r) for c, r in OTHER_RECALL.items()
    }
    recall = {c: float(r[k]) for c, r, k in zip(EMERGENCIES, recalls, combo, strict=True)}
    return thresholds, recall, rate


def val_probabilities(model, tokenizer, head, val: list[data.Message]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.vstack(
            [
                torch.softmax(
                    head(clf.pooled(model, tokenizer, [m.text for m in val[i : i + 64]]) * clf.POOL_SCALE), -1
                ).numpy()
                for i in range(0, len(val), 64)
            ]
        )


def rethreshold(folder: Path | None) -> int:
    """Thresholds set again on val for a trained classifier (the adapter and head unchanged)."""
    settings = Settings.from_env()
    folder = folder or clf.model_dir(settings)
    model, tokenizer, head = clf.load_torch(folder, settings.index.model_path)
    labels = list(PRECEDENCE)
    val = [m for m in data.load(settings.index.corpus_dir / "safety") if m.split == "val"]
    thresholds, recall, rate = thresholds_for(
        val_probabilities(model, tokenizer, head, val), np.array([labels.index(m.label) for m in val])
    )
    meta = clf.read_meta(folder) | _threshold_meta(thresholds, recall, rate)
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return 0


def _threshold_meta(thresholds: dict[str, float], recall: dict[str, float], rate: float) -> dict:
    """The thresholds and their validation figures as meta.json keeps them (printed too)."""
    print(f"thresholds: { {k: round(v, 3) for k, v in thresholds.items()} }")
    print(
        f"val: emergency recall { {k: round(v, 3) for k, v in recall.items()} }, benign -> emergency {rate:.3f}"
    )
    return {
        "thresholds": {k: round(v, 6) for k, v in thresholds.items()},
        "val": {
            "emergency_recall": {k: round(v, 4) for k, v in recall.items()},
            "benign_emergency_rate": round(rate, 4),
        },
    }


def train_member(
    settings: Settings,
    messages: list[data.Message],
    epochs: int,
    learning_rate: float,
    seed: int,
    lora: dict | None = None,
):
    """One fine-tuning run: (peft model, head), trained on the train split with this seed."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    torch.manual_seed(seed)
    torch.set_num_threads(THREADS)
    train = with_endings([m for m in messages if m.split == "train"], seed)
    labels = list(PRECEDENCE)
    y = np.array([labels.index(m.label) for m in train])
    base_path = settings.index.model_path
    tokenizer = _tokenizer(base_path)
    model = get_peft_model(
        AutoModel.from_pretrained(base_path, local_files_only=True),
        LoraConfig(**(lora or lora_config(base_path))),
    )
    head = torch.nn.Linear(model.config.hidden_size, len(labels))
    params = [q for q in model.parameters() if q.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)
    counts = np.bincount(y, minlength=len(labels))
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(len(y) / (len(labels) * counts), dtype=torch.float)
    )
    texts = [m.text for m in train]
    started = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = np.random.RandomState(seed + epoch).permutation(len(train))
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            logits = head(clf.pooled(model, tokenizer, [texts[j] for j in idx]) * clf.POOL_SCALE)
            loss = loss_fn(logits, torch.tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(
            f"seed {seed}: epoch {epoch + 1}/{epochs} done at {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    return model.eval(), head.eval(), len(train)


def _tokenizer(base_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_path, local_files_only=True)


def save_member(model, head, folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)  # peft's model-card template, not ours
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(folder / "head.safetensors"))


def soup(members: list[Path], base_path: str):
    """The uniform weight average of runs that differ only in their seed (a "model soup",
    Wortsman et al. 2022): one model, so one encoder pass, that varies less from run to run than
    any of its members. Each member's weight change B·A is averaged exactly by concatenating the
    members' LoRA matrices (peft's `cat` combination: rank = the sum of the ranks), and the heads
    are averaged. Returns (peft model with the soup as its only adapter, head)."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModel

    base = AutoModel.from_pretrained(base_path, local_files_only=True)
    names = [f"member{i}" for i in range(len(members))]
    model = PeftModel.from_pretrained(base, str(members[0]), adapter_name=names[0])
    for name, folder in zip(names[1:], members[1:], strict=True):
        model.load_adapter(str(folder), adapter_name=name)
    model.add_weighted_adapter(names, [1.0 / len(members)] * len(members), "default", combination_type="cat")
    model.set_adapter("default")
    for name in names:
        model.delete_adapter(name)
    heads = [load_file(str(folder / "head.safetensors")) for folder in members]
    head = torch.nn.Linear(base.config.hidden_size, len(PRECEDENCE))
    head.load_state_dict({k: sum(h[k] for h in heads) / len(heads) for k in heads[0]})
    return model.eval(), head.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.safety.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="write here instead of corpus/models/safety (candidates)")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    p.add_argument("--seed", type=int, default=SEED, help="the first member's seed (the others follow it)")
    add_arguments(p, "embedding model")
    p.add_argument(
        "--members",
        type=int,
        default=MEMBERS,
        help=f"runs averaged into the model, seeds SEED, SEED+1, ... (default {MEMBERS}; 1: one run)",
    )
    p.add_argument(
        "--soup-of",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="average these already trained runs (each a --members 1 output) instead of training",
    )
    p.add_argument(
        "--thresholds-only",
        action="store_true",
        help="keep the trained adapter and head; set the thresholds again on val (a policy change)",
    )
    args = p.parse_args(argv)
    if args.thresholds_only:
        return rethreshold(args.out)

    started = time.perf_counter()
    settings = Settings.from_env()
    messages = data.load(settings.index.corpus_dir / "safety", write_missing_splits=True)
    val = [m for m in messages if m.split == "val"]
    labels = list(PRECEDENCE)
    folder = args.out or settings.index.corpus_dir / "models" / "safety"  # the corpus folder's own
    members = list(args.soup_of or [])
    lora = lora_config(settings.index.model_path, args.top_layers, args.rank)
    if members:
        seeds = [clf.read_meta(m)["hyperparameters"]["seed"] for m in members]
        lora = clf.read_meta(members[0])["hyperparameters"]["lora"]
        n_train = clf.read_meta(members[0])["trained_on"]["train"]
    else:
        seeds = list(range(args.seed, args.seed + max(1, args.members)))
    with tempfile.TemporaryDirectory(prefix="safety-members-") as tmp:
        for seed in [] if args.soup_of else seeds:
            model, head, n = train_member(
                settings,
                messages,
                args.epochs,
                args.learning_rate,
                seed,
                lora,
            )
            if seed == seeds[0]:
                n_train = n
            if len(seeds) > 1:  # kept on disk until the soup is made
                members.append(Path(tmp) / f"seed{seed}")
                save_member(model, head, members[-1])
        if members:
            model, head = soup(members, settings.index.model_path)
        thresholds, recall, rate = thresholds_for(
            val_probabilities(model, _tokenizer(settings.index.model_path), head, val),
            np.array([labels.index(m.label) for m in val]),
        )
        save_member(model, head, folder)
    _write_meta(folder, labels, thresholds, recall, rate, messages, n_train, len(val), args, seeds, lora)
    print(f"wrote {folder} in {time.perf_counter() - started:.0f} s")
    return 0


def _write_meta(
    folder, labels, thresholds, recall, rate, messages, n_train, n_val, args, seeds, lora
) -> None:
    digest = hashlib.sha256(
        "\n".join(f"{m.family}\t{m.label}\t{m.split}\t{m.text}" for m in messages).encode()
    )
    meta = {
        "format": clf.MODEL_FORMAT,
        "labels": labels,
        **_threshold_meta(thresholds, recall, rate),
        "version": f"data:{digest.hexdigest()[:12]}",
        "trained_on": {"train": n_train, "val_for_thresholds": n_val, "endings": ENDING_SHARE},
        "hyperparameters": {
            "epochs": args.epochs,
            "batch": BATCH,
            "learning_rate": args.learning_rate,
            "lora": lora,
            "seed": seeds[0],
            "seeds": seeds,
            "soup": "uniform weight average (peft cat)" if len(seeds) > 1 else "",
        },
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
