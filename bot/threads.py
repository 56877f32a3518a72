"""One thread per BLAS call: numpy's matrix products on the answer path stay on the caller's thread.

Those products are tiny (a question against about a thousand stored questions, or the sentences of
ten passages: tens of microseconds), and under load they run on dozens of request threads at once
while onnxruntime keeps both cores busy. OpenBLAS would split each one over a pool of threads per
core, and the hand-offs cost more than the product. Measured on the JSON API at 32 clients, three
interleaved rounds each: 15.5-16.4 ms of app CPU per answer instead of 16.2-17.7, 97-101 answers/s
instead of 89-99 (BENCHMARKS.md). Set before numpy is imported (bot/__init__.py); a value in the
environment wins.
"""

import os

# numpy's wheels bundle OpenBLAS; torch (training, export) keeps its own thread settings.
_DEFAULTS = {"OPENBLAS_NUM_THREADS": "1"}


def apply() -> None:
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
