"""Shared fixtures: one real Companion (real Chroma index, real embedding model) per session."""

from __future__ import annotations

import pytest

import bot  # noqa: F401  (offline defaults before any other library import)
from bot.pipeline import Companion
from bot.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The default settings with the default index (built on demand, shared, lock-protected)."""
    return Settings.from_env()


@pytest.fixture(scope="session")
def companion(settings: Settings) -> Companion:
    return Companion(settings, progress=False)
