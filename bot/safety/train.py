"""`python -m bot.safety.train`: fine-tune the safety classifier on the labelled message set.

Reproducible: fixed seeds, a fixed number of threads, a fixed order of batches; on the same
machine the same data gives the same adapter. Steps:

1. load `corpus/safety/messages/*.jsonl`; families new since the last run get a frozen split
   (train / val / test, whole families, stratified by file and label);
2. fine-tune a LoRA adapter on the bundled all-MiniLM-L6-v2 and a linear head on the train
   split (cross-entropy, class-balanced);
3. on the val split, set each category's threshold: the emergency categories get the highest
   recall whose benign-to-emergency rate stays within `MAX_BENIGN_EMERGENCY`; decisions and
   distress a recall target of their own;
4. write the adapter, the head and the thresholds to `corpus/models/safety/` (about 3 MB).

The test split and the separately written `fresh` set are never read here. About 10-15 minutes
on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import numpy as np

from bot.safety import classifier as clf
from bot.safety import data
from bot.safety.policy import DECISION, EMERGENCIES, PRECEDENCE, SUPPORT
from bot.settings import Settings

SEED = 0
THREADS = 2
EPOCHS = 3
BATCH = 16
LEARNING_RATE = 5e-4
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["query", "key", "value", "dense"]}
MAX_BENIGN_EMERGENCY = 0.03  # on val: benign messages answered as an emergency, at most (recall first)
RECALL_GRID = (1.0, 0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, 0.91, 0.90)
OTHER_RECALL = {DECISION: 0.93, SUPPORT: 0.85}


def _threshold(probs: np.ndarray, recall: float) -> float:
    pos = np.sort(probs)
    if not len(pos):
        return 1.0
    return float(pos[min(int(np.floor((1.0 - recall) * len(pos))), len(pos) - 1)])


def thresholds_for(p: np.ndarray, y: np.ndarray) -> tuple[dict[str, float], float, float]:
    """Per-category thresholds on val; returns them, the emergency recall and the benign rate."""
    labels = list(PRECEDENCE)
    benign = y == labels.index("none")
    other = {c: _threshold(p[y == labels.index(c), labels.index(c)], r) for c, r in OTHER_RECALL.items()}
    best = None
    for recall in RECALL_GRID:
        t = {c: _threshold(p[y == labels.index(c), labels.index(c)], recall) for c in EMERGENCIES} | other
        found = [clf.decide(dict(zip(labels, row, strict=True)), t) for row in p]
        rate = float(np.mean([bool(f & set(EMERGENCIES)) for f, b in zip(found, benign, strict=True) if b]))
        if rate <= MAX_BENIGN_EMERGENCY or recall == RECALL_GRID[-1]:
            best = (t, recall, rate)
            break
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.safety.train", description=__doc__.split("\n\n")[0])
    p.parse_args(argv)
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoTokenizer

    started = time.perf_counter()
    settings = Settings.from_env()
    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    messages = data.load(settings.index.corpus_dir / "safety", write_missing_splits=True)
    train = [m for m in messages if m.split == "train"]
    val = [m for m in messages if m.split == "val"]
    labels = list(PRECEDENCE)
    y = np.array([labels.index(m.label) for m in train])

    base_path = settings.index.model_path
    tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=True)
    model = get_peft_model(AutoModel.from_pretrained(base_path, local_files_only=True), LoraConfig(**LORA))
    head = torch.nn.Linear(model.config.hidden_size, len(labels))
    params = [q for q in model.parameters() if q.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=0.01)
    counts = np.bincount(y, minlength=len(labels))
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(len(y) / (len(labels) * counts), dtype=torch.float)
    )
    texts = [m.text for m in train]
    for epoch in range(EPOCHS):
        model.train()
        order = np.random.RandomState(SEED + epoch).permutation(len(train))
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            logits = head(clf.pooled(model, tokenizer, [texts[j] for j in idx]) * clf.POOL_SCALE)
            loss = loss_fn(logits, torch.tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}/{EPOCHS} done at {time.perf_counter() - started:.0f} s", file=sys.stderr)

    model.eval()
    head.eval()
    with torch.inference_mode():
        probs = np.vstack(
            [
                torch.softmax(
                    head(clf.pooled(model, tokenizer, [m.text for m in val[i : i + 64]]) * clf.POOL_SCALE), -1
                ).numpy()
                for i in range(0, len(val), 64)
            ]
        )
    yv = np.array([labels.index(m.label) for m in val])
    thresholds, recall, rate = thresholds_for(probs, yv)

    folder = settings.index.corpus_dir / "models" / "safety"  # the corpus folder's own
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)  # peft's model-card template, not ours
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(folder / "head.safetensors"))
    digest = hashlib.sha256(
        "\n".join(f"{m.family}\t{m.label}\t{m.split}\t{m.text}" for m in messages).encode()
    )
    meta = {
        "format": clf.MODEL_FORMAT,
        "labels": labels,
        "thresholds": {k: round(v, 6) for k, v in thresholds.items()},
        "version": f"data:{digest.hexdigest()[:12]}",
        "trained_on": {"train": len(train), "val_for_thresholds": len(val)},
        "val": {"emergency_recall_target": recall, "benign_emergency_rate": round(rate, 4)},
        "hyperparameters": {
            "epochs": EPOCHS,
            "batch": BATCH,
            "learning_rate": LEARNING_RATE,
            "lora": LORA,
            "seed": SEED,
        },
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"thresholds: { {k: round(v, 3) for k, v in thresholds.items()} }")
    print(f"val: emergency recall target {recall}, benign -> emergency {rate:.3f}")
    print(f"wrote {folder} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
