"""Shared helpers for the chat-app tests: one real `python app.py` per test session, timings.

The app runs exactly as a person starts it: a subprocess on a free loopback port, with its own
feedback log and its own index folder, so its first start builds the index ("cold start to
ready" is the real first start) and no other process rebuilding or writing the shared `index/`
can pull the store from under a running test. (Seen on a shared machine: answers failed while
another process had the same Chroma store open for writing.)
Both test_app.py and test_browser.py use the same server; `app_server()` starts it once.
`start_app(env)` starts another one with its own settings (tests/llm: the app with an LLM).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.settings import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts"
TIMINGS_FILE = ARTIFACTS / "app-timings.json"
START_TIMEOUT_S = 600  # generous: a cold CI machine builds the index before serving
# Small queue limits so the overflow test can fill the queue with a few dozen requests.
CONCURRENCY_LIMIT = 1
MAX_QUEUE = 2

_timings: dict[str, float | str] = {}


@dataclass(frozen=True)
class AppServer:
    url: str
    process: subprocess.Popen
    feedback_log: Path
    log_file: Path
    cold_start_s: float
    stop: Callable[[], None] = lambda: None  # ends the process (also done at exit)

    def output(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@functools.cache
def app_server() -> AppServer:
    """Start `python app.py` once per session and wait until the page is served."""
    server = start_app()
    record_timing("cold_start_to_ready_s", server.cold_start_s)
    record_timing("cold_start_built_the_index", "Embedding passages" in server.output())
    return server


def start_app(extra_env: dict[str, str] | None = None) -> AppServer:
    """Start `python app.py` (with `extra_env` added to its environment) and wait for the page."""
    workdir = Path(tempfile.mkdtemp(prefix="pcl-app-test-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PCL_LLM_")} | {
        "PCL_INDEX_DIR": str(workdir / "index"),
        "PCL_FEEDBACK_LOG": str(workdir / "feedback" / "ratings.jsonl"),
        "PCL_CONCURRENCY_LIMIT": str(CONCURRENCY_LIMIT),
        "PCL_MAX_QUEUE": str(MAX_QUEUE),
        "PYTHONUNBUFFERED": "1",
    }
    env |= extra_env or {}
    env.pop("GRADIO_SERVER_NAME", None)  # the default must be loopback
    log_file = workdir / "app.log"
    started = time.perf_counter()
    with log_file.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if not os.environ.get("PCL_KEEP_APP_LOG"):
            shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(stop)
    deadline = started + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_file.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.perf_counter() > deadline:
            raise RuntimeError(f"app.py not ready after {START_TIMEOUT_S} s:\n{log_file.read_text()}")
        time.sleep(0.2)
    return AppServer(
        url=url,
        process=process,
        feedback_log=workdir / "feedback" / "ratings.jsonl",
        log_file=log_file,
        cold_start_s=time.perf_counter() - started,
        stop=stop,
    )


def record_timing(name: str, value: float | str | bool) -> None:
    """Keep a measurement for the closing note: print it (pytest -s) and rewrite the JSON file."""
    _timings[name] = round(value, 3) if isinstance(value, float) else value
    print(f"\n[timing] {name} = {_timings[name]}")
    ARTIFACTS.mkdir(exist_ok=True)
    TIMINGS_FILE.write_text(json.dumps(_timings, indent=2) + "\n", encoding="utf-8")
