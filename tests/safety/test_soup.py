"""The safety model is the weight average of runs that differ only in their seed (`train.soup`).

Two adapters on the real bundled encoder, each with its own (random, non-zero) weights, stand in
for two training runs: the soup must change every weight by exactly the mean of the two runs'
changes, average the heads, and load and merge like any other adapter.
"""

import json

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModel

from bot.safety import classifier as clf
from bot.safety import train
from bot.safety.policy import PRECEDENCE
from bot.store.adapters import lora_config


def _member(base_path: str, seed: int, folder):
    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModel.from_pretrained(base_path, local_files_only=True), LoraConfig(**lora_config(base_path))
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: give the run a weight change of its own
                p.normal_(0.0, 0.02)
    head = torch.nn.Linear(model.config.hidden_size, len(PRECEDENCE))
    train.save_member(model.eval(), head, folder)
    (folder / "meta.json").write_text(json.dumps({"format": clf.MODEL_FORMAT}), encoding="utf-8")
    return model.merge_and_unload().state_dict(), head.state_dict()


def test_the_soup_is_the_exact_average_of_its_members(settings, tmp_path):
    base_path = settings.index.model_path
    runs = [_member(base_path, seed, tmp_path / f"seed{seed}") for seed in (1, 2)]
    model, head = train.soup([tmp_path / "seed1", tmp_path / "seed2"], base_path)
    train.save_member(model, head, tmp_path / "soup")
    (tmp_path / "soup" / "meta.json").write_text(
        json.dumps({"format": clf.MODEL_FORMAT, "labels": list(PRECEDENCE)}), encoding="utf-8"
    )

    merged, _, soup_head = clf.load_torch(tmp_path / "soup", base_path)  # as the export loads it
    weights = merged.state_dict()
    name = "encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(runs[0][0][name], runs[1][0][name], atol=1e-4)  # the runs differ
    for key, value in weights.items():
        mean = (runs[0][0][key] + runs[1][0][key]) / 2
        assert torch.allclose(value, mean, atol=1e-5), key
    saved = load_file(str(tmp_path / "soup" / "head.safetensors"))
    for key, value in saved.items():
        assert torch.allclose(value, (runs[0][1][key] + runs[1][1][key]) / 2)
    assert torch.allclose(soup_head.weight, saved["weight"])
