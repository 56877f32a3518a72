"""The process defaults for numeric thread pools (bot/threads.py), read in a fresh interpreter."""

import json
import os
import subprocess
import sys

PROBE = (
    "import bot, numpy, json; from threadpoolctl import threadpool_info; "
    "print(json.dumps([p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']))"
)


def _blas_threads(env: dict) -> list[int]:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_importing_bot_first_gives_numpy_one_blas_thread():
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    threads = _blas_threads(env)
    assert threads and all(n == 1 for n in threads), threads


def test_a_thread_count_in_the_environment_wins():
    threads = _blas_threads({**os.environ, "OPENBLAS_NUM_THREADS": "2"})
    assert threads and all(n == 2 for n in threads), threads
