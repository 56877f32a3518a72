"""Named configurations for `--config NAME` and `--ablations`: one mechanism off at a time.

Each is a set of overrides on the settings read from the environment (so `PCL_*` variables
still apply). A configuration whose chunking or embedding model differs from the base gets its own index
folder, `<PCL_INDEX_DIR>/ablations/chunk-<tokens>` or `.../bundled-embedding`, built on first
use: the main index is never rebuilt or swapped by an ablation.
"""

from __future__ import annotations

from pathlib import Path

from bot.settings import ConfigError, Settings

CONFIGS: dict[str, dict[str, object]] = {
    "default": {},
    "dense": {"retrieval_mode": "dense"},
    "bm25": {"retrieval_mode": "bm25"},
    "no-stored-questions": {"retrieval_stored_questions": False},
    "no-followups": {"answer_resolve_followups": False},
    "no-same-kind-codes": {"answer_same_kind_codes": False},
    "no-classifier": {"safety_classifier": False},
    "no-symptom-veto": {"safety_symptom_words_veto": 1.0},
    "no-embedding-adapter": {"models_embed_adapter": False},
    "chunk-96": {"index_chunk_tokens": 96},
    "chunk-256": {"index_chunk_tokens": 256},
}

# The comparison table: each row switches one mechanism off (or changes one size).
ABLATIONS = tuple(CONFIGS)


def settings_for(name: str, base: Settings | None = None) -> Settings:
    if name not in CONFIGS:
        raise ConfigError(f"unknown config {name!r}; choose one of: {', '.join(CONFIGS)}")
    base = base or Settings.from_env()
    s = base.with_overrides(**CONFIGS[name])
    bi, si = base.index, s.index
    if (si.chunk_tokens, si.chunk_overlap_tokens) != (bi.chunk_tokens, bi.chunk_overlap_tokens):
        suffix = f"chunk-{si.chunk_tokens}" + (
            f"-o{si.chunk_overlap_tokens}" if si.chunk_overlap_tokens else ""
        )
        s = s.with_overrides(index_dir=Path(bi.index_dir) / "ablations" / suffix)
    elif s.models.embed_adapter != base.models.embed_adapter:
        suffix = "adapted-embedding" if s.models.embed_adapter else "bundled-embedding"
        s = s.with_overrides(index_dir=Path(bi.index_dir) / "ablations" / suffix)
    return s


def describe(s: Settings) -> str:
    r, a = s.retrieval, s.answer
    return (
        f"retrieval={r.mode} stored_questions={'on' if r.stored_questions else 'off'} "
        f"chunk={s.index.chunk_tokens} top_k={r.top_k} min_evidence={a.min_evidence} "
        f"margin={a.sentence_margin} followups={'on' if a.resolve_followups else 'off'} "
        f"classifier={'on' if s.safety.classifier else 'off'} "
        f"embedding_adapter={'on' if s.models.embed_adapter else 'off'}"
    ) + (f" llm={_llm(s)}" if s.llm.enabled else "")


def _llm(s: Settings) -> str:
    from pathlib import PurePath

    return f"{s.llm.model}@{s.llm.base_url}" if s.llm.base_url else PurePath(s.llm.gguf).name


def fingerprint(s: Settings) -> tuple:
    """What makes two configurations produce the same replies (to run duplicates once)."""
    return (s.index, s.retrieval, s.answer, s.safety, s.llm, s.models.embed_adapter)
