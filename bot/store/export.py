"""Export the encoders to ONNX, once, from the local weights (torch, transformers, peft).

Only `bot.store.encoders.ensure_export` imports this module, when an export is missing or stale;
answering never does. Every graph is part of the same plain BERT forward written out here
(embeddings, six layers of attention and feed-forward, mean pooling over the real tokens, L2
normalisation), reading the weights of a loaded `BertModel`, so the exported graph does not
depend on how a transformers release builds its attention masks:

- `trunk`: the bundled all-MiniLM-L6-v2's embeddings and first layers, which neither adapter
  changes -> the hidden states both encoders start from;
- `embed`: the bundled weights, with the corpus's embedding adapter merged into a copy when there
  is one (`train_embedding.py`), from the trunk's end (or from the token ids) -> one unit vector
  per text (what sentence-transformers computes: mean pooling, then normalisation);
- `safety`: a copy of the same weights with the safety LoRA adapter merged in (peft), then the
  classifier's linear head and a softmax -> one probability per category, as `classifier.py`
  computed them with torch.

`int8=True` also applies onnxruntime's dynamic int8 quantisation (per channel) to the graph.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

OPSET = 17


def _bert_module(bert, head=None, pool_scale: float = 1.0, start: int = 0, stop: int | None = None):
    """Layers `start` to `stop` of the BERT forward. From layer 0 the graph reads token ids (and
    begins with the embeddings), else the hidden states a trunk graph left; up to `stop` it gives
    those hidden states, and through the last layer the pooled unit vector (or, with a head, the
    probabilities)."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert
            self.head = head
            c = bert.config
            self.heads = c.num_attention_heads
            self.size = c.hidden_size // c.num_attention_heads

        def forward(self, tokens, attention_mask):
            batch, length = tokens.shape[0], tokens.shape[1]
            if start == 0:  # tokens: input ids
                emb = self.bert.embeddings
                positions = torch.arange(length, device=tokens.device).unsqueeze(0)
                x = (
                    emb.word_embeddings(tokens)
                    + emb.position_embeddings(positions)
                    + emb.token_type_embeddings.weight[0]  # one segment: type 0 everywhere
                )
                x = emb.LayerNorm(x)
            else:  # tokens: the hidden states after layer start - 1
                x = tokens
            bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -1e9  # padding is never attended

            def split(t):
                return t.view(batch, length, self.heads, self.size).transpose(1, 2)

            for layer in self.bert.encoder.layer[start:stop]:
                att = layer.attention
                q, k, v = split(att.self.query(x)), split(att.self.key(x)), split(att.self.value(x))
                weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.size) + bias, dim=-1)
                ctx = (weights @ v).transpose(1, 2).reshape(batch, length, self.heads * self.size)
                x = att.output.LayerNorm(att.output.dense(ctx) + x)
                mid = torch.nn.functional.gelu(layer.intermediate.dense(x))
                x = layer.output.LayerNorm(layer.output.dense(mid) + x)
            if stop is not None:
                return x
            mask = attention_mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vec = torch.nn.functional.normalize(pooled, dim=-1)
            if self.head is None:
                return vec
            return torch.softmax(self.head(vec * pool_scale), dim=-1)

    return Encoder().eval()


def _base(model_path: str):
    from transformers import AutoModel

    return AutoModel.from_pretrained(model_path, local_files_only=True).eval()


def _merged(model_path: str, adapter_dir: Path):
    from peft import PeftModel

    return PeftModel.from_pretrained(_base(model_path), str(adapter_dir)).merge_and_unload().eval()


def _unchanged_below(merged, model_path: str, start: int) -> None:
    """A top graph starts from the shared trunk's hidden states (the bundled weights' first
    `start` layers): refuse an adapter that changed any of those layers."""
    import torch

    base = _base(model_path)
    for i in range(start):
        ours, theirs = merged.encoder.layer[i].state_dict(), base.encoder.layer[i].state_dict()
        if any(not torch.equal(ours[k], theirs[k]) for k in theirs):
            raise ValueError(f"the adapter changes layer {i}, below its graph's first layer {start}")


def trunk_module(model_path: str, stop: int):
    """The bundled weights' embeddings and first `stop` layers: what every encoder shares."""
    return _bert_module(_base(model_path), stop=stop)


def embed_module(model_path: str, adapter_dir: Path | None = None, start: int = 0):
    """The bundled weights, with the corpus's embedding adapter merged into a copy when given."""
    bert = _merged(model_path, adapter_dir) if adapter_dir else _base(model_path)
    _unchanged_below(bert, model_path, start)
    return _bert_module(bert, start=start)


def safety_module(model_path: str, adapter_dir: Path, start: int = 0):
    """The bundled weights with the adapter merged into a copy, plus the head (as classifier.py)."""
    import torch
    from safetensors.torch import load_file

    from bot.safety.classifier import POOL_SCALE

    meta = json.loads((adapter_dir / "meta.json").read_text(encoding="utf-8"))
    merged = _merged(model_path, adapter_dir)
    _unchanged_below(merged, model_path, start)
    head = torch.nn.Linear(merged.config.hidden_size, len(meta["labels"]))
    head.load_state_dict(load_file(str(adapter_dir / "head.safetensors")))
    return _bert_module(merged, head.eval(), POOL_SCALE, start=start)


OUTPUTS = {"trunk": "hidden", "embed": "embedding", "safety": "probabilities"}


def export(
    name: str,
    model_path: str,
    adapter_dir: Path | None,
    out: Path,
    int8: bool = False,
    start: int = 0,
    stop: int | None = None,
) -> None:
    """Write the `name` graph ("trunk", "embed" or "safety") to `out` (a new file): layers
    `start` to `stop` (a trunk) or `start` to the last (the others)."""
    import torch

    if name == "trunk":
        module = trunk_module(model_path, stop or 0)
    elif name == "safety":
        module = safety_module(model_path, adapter_dir, start)
    else:
        module = embed_module(model_path, adapter_dir, start)
    ids = torch.tensor([[101, 2054, 2003, 102, 0, 0], [101, 2054, 2003, 1037, 2518, 102]])
    mask = (ids > 0).long()
    first = "input_ids" if start == 0 else "hidden"
    # A top graph reads hidden states: any values of the right shape trace it.
    tokens = torch.zeros(*ids.shape, module.bert.config.hidden_size) if start else ids
    raw = out.with_suffix(".fp32.tmp") if int8 else out
    output = OUTPUTS[name]
    with torch.inference_mode():
        torch.onnx.export(
            module,
            (tokens, mask),
            str(raw),
            input_names=[first, "attention_mask"],
            output_names=[output],
            dynamic_axes={first: {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
            | {output: {0: "batch", 1: "tokens"} if name == "trunk" else {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    if int8:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(raw),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        os.unlink(raw)
