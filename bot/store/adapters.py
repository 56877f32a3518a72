"""What the two LoRA trainers (embedding and safety) share: the adapter's settings and the
command-line options that change them.

An adapter trained on the top layers only leaves the bottom ones as bundled; when both adapters
do, the run time shares those layers between the two models (`encoders.shared_layers`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["query", "key", "value", "dense"]}
TOP_LAYERS = None  # layers trained, counted from the top (None: all); 3 at rank 32 was tried, docs/safety.md


def adapted_layers(model_path: str, top: int | None) -> dict:
    """The LoRA settings that keep an adapter to the model's `top` layers (None: every layer)."""
    config = json.loads(Path(model_path, "config.json").read_text(encoding="utf-8"))
    n = int(config["num_hidden_layers"])
    if top is None or top >= n:
        return {}
    return {"layers_to_transform": list(range(n - max(1, top), n)), "layers_pattern": "layer"}


def lora_config(model_path: str, top_layers: int | None = TOP_LAYERS, rank: int = LORA["r"]) -> dict:
    """`LORA` at this rank (alpha twice the rank), on the top `top_layers` layers (None: all)."""
    return LORA | {"r": rank, "lora_alpha": 2 * rank} | adapted_layers(model_path, top_layers)


def add_arguments(p: argparse.ArgumentParser, other: str) -> None:
    """`--rank` and `--top-layers`; `other` names the model the untrained layers are shared with."""
    p.add_argument("--rank", type=int, default=LORA["r"], help=f"LoRA rank (default {LORA['r']})")
    p.add_argument(
        "--top-layers",
        type=int,
        default=TOP_LAYERS,
        help=f"train only this many top layers; the rest stay shared with the {other} (default: all)",
    )
