"""The ONNX exports: same numbers as the torch models, keyed by their inputs, part of the index
fingerprint, re-exported when stale, and no torch on the answer path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.safety.classifier import POOL_SCALE, load_torch, model_dir
from bot.settings import REPO_ROOT
from bot.store.encoders import embed_spec, ensure_export, export_key, safety_spec, settings_key
from bot.store.index import fingerprint

TEXTS = [
    "What is CT0596?",
    "how long do ppl live with secondary pcl",
    "I have a fever of 39C and chills after CAR-T",
    "Should I stop my chemo to join the trial?",
    "What is plasma cell leukemia? " * 40,  # past the 256-token limit: truncated the same way
]


def _sentence_transformer(settings, adapter: Path | None):
    """The reference: sentence-transformers on torch, with the adapter merged in when given."""
    from peft import PeftModel
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(settings.index.model_path, device="cpu", local_files_only=True)
    if adapter is not None:
        bert = model[0].auto_model
        model[0].auto_model = PeftModel.from_pretrained(bert, str(adapter)).merge_and_unload().eval()
    return model


def test_onnx_embeddings_match_sentence_transformers(companion, settings) -> None:
    spec = embed_spec(settings)
    assert spec.adapter_dir is not None, "the corpus's embedding adapter is on by default"
    ref = _sentence_transformer(settings, spec.adapter_dir).encode(TEXTS, normalize_embeddings=True)
    got = companion.embeddings.encode(TEXTS)
    assert np.min(np.sum(ref * got, axis=1)) > 0.9999


def test_without_the_adapter_the_bundled_model_is_exported_as_it_is(companion, settings, tmp_path) -> None:
    from bot.store.embed import load_embeddings

    # Its own folder: an export replaces the earlier exports of its graph in the folder it is in.
    bare = settings.with_overrides(models_embed_adapter=False, index_dir=tmp_path)
    assert embed_spec(bare).adapter_dir is None
    assert export_key(embed_spec(bare)) != export_key(embed_spec(settings))
    ref = _sentence_transformer(settings, None).encode(TEXTS, normalize_embeddings=True)
    got = load_embeddings(bare).encode(TEXTS)
    assert np.min(np.sum(ref * got, axis=1)) > 0.9999
    # The adapter changes the vectors: the two exports are not the same model.
    adapted = companion.embeddings.encode(TEXTS)
    assert np.min(np.sum(adapted * got, axis=1)) < 0.99


def test_onnx_classifier_matches_the_torch_classifier(companion, settings) -> None:
    import torch

    from bot.safety.classifier import pooled

    model, tokenizer, head = load_torch(model_dir(settings), settings.index.model_path)
    with torch.inference_mode():
        ref = torch.softmax(head(pooled(model, tokenizer, TEXTS) * POOL_SCALE), dim=-1).numpy()
    companion.classifier.forget()
    got = np.vstack([companion.classifier.probabilities(t) for t in TEXTS])
    assert np.abs(ref - got).max() < 1e-4
    assert [np.argmax(r) for r in ref] == [np.argmax(g) for g in got]


def _copy_tree(src: Path, dst: Path) -> Path:
    """A copy whose big files are hard links (same content, no 90 MB copy)."""
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file():
            try:
                os.link(p, dst / p.name)
            except OSError:
                shutil.copyfile(p, dst / p.name)
        else:
            shutil.copytree(p, dst / p.name)
    return dst


def test_export_keys_follow_the_content_of_their_inputs(settings, tmp_path) -> None:
    spec = safety_spec(settings, model_dir(settings))
    same = safety_spec(settings, _copy_tree(model_dir(settings), tmp_path / "same"))
    assert export_key(same) == export_key(spec)  # content, not location
    changed = _copy_tree(model_dir(settings), tmp_path / "changed")
    meta = json.loads((changed / "meta.json").read_text())
    meta["version"] += "-retrained"
    (changed / "meta.json").unlink()  # a hard link: write a new file, not through the link
    (changed / "meta.json").write_text(json.dumps(meta))
    assert export_key(safety_spec(settings, changed)) != export_key(spec)
    assert export_key(embed_spec(settings)) != export_key(spec)
    int8 = settings.with_overrides(models_safety_int8=True)
    assert export_key(safety_spec(int8, model_dir(settings))) != export_key(spec)


def test_the_index_fingerprint_follows_the_embedding_export(settings, tmp_path) -> None:
    model = _copy_tree(Path(settings.index.model_path), tmp_path / "model")
    copy = settings.with_overrides(embed_model=str(model), index_dir=tmp_path / "index")
    assert settings_key(copy, embed_spec(copy)) == settings_key(settings, embed_spec(settings))
    config = json.loads((model / "config.json").read_text())
    config["layer_norm_eps"] = 1e-6  # a different model: a different export, so a different index
    (model / "config.json").unlink()
    (model / "config.json").write_text(json.dumps(config))
    assert settings_key(copy, embed_spec(copy)) != settings_key(settings, embed_spec(settings))
    assert fingerprint(copy) != fingerprint(settings)


def test_a_stale_export_is_replaced_by_a_new_one(settings, tmp_path) -> None:
    """A retrained adapter (new files) gets a new export; the old one is removed."""
    local = settings.with_overrides(index_dir=tmp_path / "index")
    first = ensure_export(local, safety_spec(local, model_dir(settings)))  # reused from the default folder
    adapter = _copy_tree(model_dir(settings), tmp_path / "adapter")
    meta = json.loads((adapter / "meta.json").read_text())
    meta["version"] += "-retrained"
    (adapter / "meta.json").unlink()
    (adapter / "meta.json").write_text(json.dumps(meta))
    second = ensure_export(local, safety_spec(local, adapter))  # exported with torch, here
    assert second != first and second.exists() and not first.exists()
    assert json.loads(second.with_suffix(".json").read_text())["adapter"] == str(adapter)
    assert ensure_export(local, safety_spec(local, adapter)) == second  # fresh: not exported again


def test_the_answer_path_imports_no_torch_transformers_or_peft() -> None:
    code = (
        "import sys, bot\n"
        "from bot.pipeline import Companion\n"
        "c = Companion(progress=False)\n"
        "assert c.ask('What is CT0596?').kind == 'answer'\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'sentence_transformers', 'langchain_huggingface') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", ["embed", "safety"])
def test_exports_live_beside_the_index(settings, name) -> None:
    spec = embed_spec(settings) if name == "embed" else safety_spec(settings, model_dir(settings))
    path = ensure_export(settings, spec)
    assert path.parent == Path(settings.index.index_dir) / "models" and path.name.startswith(f"{name}-")


def test_the_word_embedding_table_is_one_memory_mapped_file(companion, monkeypatch) -> None:
    """The graphs that read token ids (the shared trunk, or each whole encoder) read their 45 MB
    word-embedding table from one mapped .npy (only the rows read are resident), and give
    exactly what the graph with its own copy gives."""
    from bot.store import encoders

    readers = [e.trunk or e.graph for e in (companion.embeddings.encoder, companion.classifier.encoder)]
    assert all(g._tables for g in readers)
    maps = [encoders.mapped_tables(g.path) for g in readers]
    assert all(isinstance(t, np.memmap) for m in maps for t in m.values())
    assert {id(t) for t in maps[0].values()} == {id(t) for t in maps[1].values()}  # one mapping
    listing = json.loads(
        readers[0].path.with_name(f"{readers[0].path.stem}.tables.json").read_text(encoding="utf-8")
    )
    assert list(listing["tables"]) == ["bert.embeddings.word_embeddings.weight"]

    ids = np.array([[101, 2054, 2003, 102, 0], [101, 2054, 2003, 1037, 102]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)}
    monkeypatch.setattr(encoders, "mapped_tables", lambda path: {})
    for mapped in readers:
        own = encoders.Graph(mapped.path, 1)
        assert not own._tables
        assert np.array_equal(own.run(feeds), mapped.run(feeds))


def test_questions_batched_together_are_split_by_length(companion) -> None:
    """One long message among short questions gets a model call of its own (everything in a call
    is padded to its longest text), and each text still gets its own row."""
    from types import SimpleNamespace

    from bot.store.encoders import Encoder

    lengths = [12, 10, 11, 200, 13, 40]
    encodings = [SimpleNamespace(ids=[0] * n) for n in lengths]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    runs = Encoder._runs(order, encodings)
    assert runs == [[1, 2, 0, 4], [5], [3]]
    build = Encoder._runs(list(range(70)), [SimpleNamespace(ids=[0] * 5)] * 70)  # an index build
    assert [len(r) for r in build] == [32, 32, 6]
    texts = ["What is CT0596?", "Is PCL hereditary? " * 30, "Who sponsors CT071?"]
    together = companion.embeddings.encode(texts)
    alone = np.vstack([companion.embeddings.encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_one_thread_per_call_and_many_texts_side_by_side(companion) -> None:
    """Answering: one onnxruntime thread per model call. An index build: its runs of 32 go
    through the model side by side, one per core, and each text gets its own row."""
    encoder = companion.embeddings.encoder
    assert encoder.session.get_session_options().intra_op_num_threads == 1
    assert encoder.parallel_runs == (os.cpu_count() or 1)
    texts = [f"{t} ({i})" for i in range(30) for t in TEXTS[:4]]  # 120 texts: 4 runs
    together = companion.embeddings.encode(texts)
    alone = np.vstack([companion.embeddings.encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def _adapter(settings, folder: Path, layers: list[int] | None) -> Path:
    """A small LoRA adapter with non-zero weights on `layers` (None: every layer)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    config = LoraConfig(r=2, target_modules=["query", "value"], init_lora_weights=False)
    if layers is not None:
        config = LoraConfig(
            r=2,
            target_modules=["query", "value"],
            init_lora_weights=False,
            layers_to_transform=layers,
            layers_pattern="layer",
        )
    base = AutoModel.from_pretrained(settings.index.model_path, local_files_only=True)
    get_peft_model(base, config).save_pretrained(str(folder))
    return folder


def test_a_trunk_and_a_top_give_what_the_whole_graph_gives(settings, tmp_path) -> None:
    """The two encoders share the layers no adapter changes: a trunk graph (the bundled weights'
    first layers) and a top graph (the adapted rest) together give the whole graph's vectors."""
    from bot.store.encoders import Encoder, ExportSpec, first_adapted_layer, shared_layers

    local = settings.with_overrides(index_dir=tmp_path / "index")
    adapter = _adapter(settings, tmp_path / "top", [4, 5])
    assert first_adapted_layer(adapter) == 4
    model = settings.index.model_path
    tokenizer = Path(model) / "tokenizer.json"
    whole = Encoder(ensure_export(local, ExportSpec("embed", model, adapter)), tokenizer)
    trunk = ensure_export(local, ExportSpec("trunk", model, None, stop=4))
    top = ensure_export(local, ExportSpec("embed", model, adapter, start=4))
    split = Encoder(top, tokenizer, trunk=trunk)
    assert np.abs(whole(TEXTS) - split(TEXTS)).max() < 1e-5
    # An adapter that changes a layer below where its graph starts is refused, not exported.
    everywhere = _adapter(settings, tmp_path / "all", None)
    assert first_adapted_layer(everywhere) == 0
    with pytest.raises(ValueError, match="changes layer 0"):
        ensure_export(local, ExportSpec("embed", model, everywhere, start=4))
    # What the two encoders share: below the lowest layer either adapter changes.
    assert shared_layers(local.with_overrides(models_embed_adapter=False), adapter) == 4
    assert shared_layers(local.with_overrides(models_embed_adapter=False), everywhere) == 0
    assert shared_layers(local.with_overrides(models_embed_adapter=False), None) == 0
