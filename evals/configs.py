"""Named configurations for `--config NAME` and `--ablations`.

Each is a set of overrides on the settings read from the environment (so `PCL_*` variables
still apply). A configuration whose chunking differs from the base gets its own index folder,
`<PCL_INDEX_DIR>/ablations/chunk-<tokens>`, built on first use: the main index is never rebuilt
or swapped by an ablation.
"""

from __future__ import annotations

from pathlib import Path

from bot.settings import ConfigError, Settings

CONFIGS: dict[str, dict[str, object]] = {
    "default": {},
    "hybrid": {"retrieval_mode": "hybrid"},
    "dense": {"retrieval_mode": "dense"},
    "bm25": {"retrieval_mode": "bm25"},
    "chunk-96": {"chunk_tokens": 96},
    "chunk-160": {"chunk_tokens": 160},
    "chunk-256": {"chunk_tokens": 256},
    "followups-on": {"resolve_followups": True},
    "followups-off": {"resolve_followups": False},
}

# The comparison table: retrieval mode, chunk size, follow-up resolution (one axis at a time).
ABLATIONS = (
    "hybrid",
    "dense",
    "bm25",
    "chunk-96",
    "chunk-160",
    "chunk-256",
    "followups-on",
    "followups-off",
)


def settings_for(name: str, base: Settings | None = None) -> Settings:
    if name not in CONFIGS:
        raise ConfigError(f"unknown config {name!r}; choose one of: {', '.join(CONFIGS)}")
    base = base or Settings.from_env()
    s = base.with_overrides(**CONFIGS[name])
    if (s.index.chunk_tokens, s.index.chunk_overlap_tokens) != (
        base.index.chunk_tokens,
        base.index.chunk_overlap_tokens,
    ):
        suffix = f"chunk-{s.index.chunk_tokens}" + (
            f"-o{s.index.chunk_overlap_tokens}" if s.index.chunk_overlap_tokens else ""
        )
        s = s.with_overrides(index_dir=Path(base.index.index_dir) / "ablations" / suffix)
    return s


def describe(s: Settings) -> str:
    return (
        f"retrieval={s.retrieval.mode} chunk={s.index.chunk_tokens} overlap={s.index.chunk_overlap_tokens} "
        f"top_k={s.retrieval.top_k} candidates={s.retrieval.candidate_k} rrf_k={s.retrieval.rrf_k} max_sentences={s.answer.max_sentences} "
        f"min_evidence={s.answer.min_evidence} followups={'on' if s.answer.resolve_followups else 'off'}"
    )


def fingerprint(s: Settings) -> tuple:
    """What makes two configurations produce the same replies (to run duplicates once)."""
    return (
        s.retrieval.mode,
        s.index.chunk_tokens,
        s.index.chunk_overlap_tokens,
        s.retrieval.top_k,
        s.retrieval.candidate_k,
        s.retrieval.rrf_k,
        s.answer.max_sentences,
        s.answer.min_evidence,
        s.answer.resolve_followups,
        str(s.index.index_dir),
        s.index.corpus_dir,
        s.index.embed_model,
    )
