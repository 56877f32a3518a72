"""The learned safety layer (placeholder until trained)."""

from __future__ import annotations


def load_classifier(settings):
    return None
