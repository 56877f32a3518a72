"""The chat app over HTTP: start `python app.py` on a free loopback port, time it to ready, then
put 1, 8, 32 and 64 concurrent clients on the JSON API (`POST /api/ask`) and on the `/chat`
endpoint for a bounded time each.

Each simulated person is one client object in its own thread, asking back to back. The load uses
Gradio's REST protocol for `/chat` (`RestClient`); `gradio_client.Client(url).predict(message,
api_name="/chat")`, the documented way to call the app, is checked and timed with one client,
since its own CPU cost would otherwise compete with the app for the 2 cores. The client side's
CPU is measured and reported either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from bench.measure import MachineLoad, proc_status, process_cpu_seconds, summary, tree_rss_mb
from bench.questions import Question
from bot.settings import REPO_ROOT

DISCLAIMER_MARK = "not medical advice"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """`python app.py` as a subprocess on 127.0.0.1; its memory is sampled while it runs."""

    def __init__(self, log_path: Path, env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        # Every simulated person comes from 127.0.0.1: the API's per-address rate limit would
        # measure itself, so the benchmark's app allows this one address all it asks.
        self.env = os.environ | {
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(self.port),
            "PCL_API_RATE_PER_MINUTE": "1000000",
            "PCL_API_RATE_BURST": "100000",
            # The load cycles through a few hundred eval questions: with the app's memory of recent
            # texts every question after the first round would skip both model passes. Off, every
            # answer pays for them, as a stream of new questions would.
            "PCL_CACHE_TEXTS": "0",
        }
        self.env |= env or {}
        self.peak_tree_rss_mb = 0.0
        self._stop = threading.Event()

    def start(self, timeout: float = 300.0) -> dict:
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._log = log
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "app.py"], cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"app.py not ready after {timeout:.0f} s; see {self.log_path}")
            time.sleep(0.05)
        ready_s = time.perf_counter() - t0
        from gradio_client import Client

        t = time.perf_counter()
        text = Client(self.url, verbose=False).predict("What is CT0596?", api_name="/chat")
        first_answer_s = time.perf_counter() - t
        assert DISCLAIMER_MARK in text.lower(), text[:200]
        return {
            "start_to_ready_s": round(ready_s, 2),
            "first_answer_after_ready_s": round(first_answer_s, 3),
            "start_to_first_answer_s": round(ready_s + first_answer_s, 2),
            "memory_after_start_mb": proc_status(self.proc.pid),
        }

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_tree_rss_mb = max(self.peak_tree_rss_mb, tree_rss_mb(self.proc.pid))
            self._stop.wait(0.25)

    def memory(self) -> dict:
        return {**proc_status(self.proc.pid), "peak_tree_rss_mb": self.peak_tree_rss_mb}

    def stop(self) -> None:
        self._stop.set()
        stop_process(self.proc)
        self._log.close()


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Terminate, and kill if it does not exit in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _classify(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".lower()
    return (
        "busy"
        if ("queue is full" in text or "busy" in text or "too many" in text or "429" in text)
        else "error"
    )


class RestClient:
    """Gradio's documented REST protocol for the same endpoint: POST /gradio_api/call/chat, then
    read the result's event stream. A few ms of CPU per call, where `gradio_client` spends
    ~100 ms of client CPU per `predict` (measured here), which on 2 shared cores would load the
    machine as much as the app does."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)

    def predict(self, message: str, api_name: str = "/chat") -> str:
        path = "gradio_api/call" + api_name
        posted = self.http.post(path, json={"data": [message]})
        if posted.status_code != 200:
            raise RuntimeError(f"HTTP {posted.status_code}: {posted.text[:200]}")
        event_id = posted.json()["event_id"]
        event = ""
        with self.http.stream("GET", f"{path}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    data = json.loads(line[5:]) if line[5:].strip() not in ("", "null") else None
                    if event == "error":
                        raise RuntimeError(f"app error: {data}")
                    return data[0]
        raise RuntimeError(f"event stream ended without a result (last event {event!r})")

    def close(self) -> None:
        self.http.close()


class ApiClient:
    """The JSON API: POST /api/ask with {"question": ...}; the reply is the CLI's JSON object."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)

    def predict(self, message: str, api_name: str = "") -> str:
        got = self.http.post("api/ask", json={"question": message})
        if got.status_code != 200:
            raise RuntimeError(f"HTTP {got.status_code}: {got.text[:200]}")
        body = got.json()
        return f"{body['answer']}\n\n{body['disclaimer']}"

    def close(self) -> None:
        self.http.close()


def make_client(kind: str, url: str):
    if kind == "api":
        return ApiClient(url)
    if kind == "gradio":
        from gradio_client import Client

        return Client(url, verbose=False)
    return RestClient(url)


def load(
    url: str, clients: int, seconds: float, questions: list[Question], app_pid: int, client: str = "rest"
) -> dict:
    """`clients` threads, each asking questions back to back for `seconds`; every reply checked."""
    made = [make_client(client, url) for _ in range(clients)]  # connecting is not part of the load
    latencies: list[float] = []
    outcomes = {"ok": 0, "busy": 0, "error": 0, "bad_reply": 0}
    examples: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def person(i: int) -> None:
        client = made[i]
        n = i * 7
        start.wait()
        while time.perf_counter() < deadline[0]:
            q = questions[n % len(questions)]
            n += 1
            t = time.perf_counter()
            try:
                text = client.predict(q.text, api_name="/chat")
                outcome = "ok" if DISCLAIMER_MARK in str(text).lower() else "bad_reply"
                detail = str(text)[:200]
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the run
                outcome, detail = _classify(exc), f"{type(exc).__name__}: {exc}"[:200]
            ms = (time.perf_counter() - t) * 1000
            with lock:
                outcomes[outcome] += 1
                if outcome == "ok":
                    latencies.append(ms)
                elif len(examples) < 5:
                    examples.append(detail)

    threads = [threading.Thread(target=person, args=(i,), daemon=True) for i in range(clients)]
    for th in threads:
        th.start()
    meter = MachineLoad.start(pids=(app_pid,))
    app0 = process_cpu_seconds(app_pid)
    cpu0 = time.process_time()
    deadline[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for th in threads:
        th.join(timeout=seconds + 300)
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - cpu0
    app_cpu = process_cpu_seconds(app_pid) - app0
    for c in made:
        with contextlib.suppress(Exception):  # closing is best effort
            c.close()
    done = sum(outcomes.values())
    return {
        "client": client,
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": done,
        "requests_per_s": round(outcomes["ok"] / wall, 2),
        "latency_ms": summary(latencies),
        "outcomes": outcomes,
        "error_rate": round((done - outcomes["ok"]) / done, 4) if done else None,
        "failure_examples": examples,
        "client_cpu_cores": round(client_cpu / wall, 2),
        "app_cpu_cores": round(app_cpu / wall, 2),
        "app_cpu_ms_per_answer": round(app_cpu * 1000 / outcomes["ok"], 2) if outcomes["ok"] else None,
        "machine": meter.stop(),
    }
