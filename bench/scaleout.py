"""Scale-out check: one `chroma run` server, two `python app.py` replicas, all on 127.0.0.1.

Verifies what README "Scaling out" claims, on the real processes:
- the index is built once into the Chroma server, and a second replica opens it without
  rebuilding and without any local index files;
- both replicas give the same answers;
- a request's two HTTP calls (Gradio's POST then event stream) must reach the same replica,
  so the load balancer needs session affinity for them;
- round-robin over the replicas (affinity per request) answers everything.

    python -m bench.scaleout            # prints a summary, writes bench/results/scaleout-<ts>.json
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import chromadb
import httpx

from bench.http import App, RestClient, free_port, stop_process
from bench.questions import answer_questions, load_questions
from bot.settings import REPO_ROOT, Settings
from bot.store.chroma import POINTER_SUFFIX, chroma_settings


class ChromaServer:
    def __init__(self, path: Path, log: Path) -> None:
        self.port = free_port()
        self.path, self.log_path = path, log

    def start(self, timeout: float = 60) -> float:
        chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [chroma, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=os.environ | {"ANONYMIZED_TELEMETRY": "False"},
        )
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited; see {self.log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"chroma run did not answer; see {self.log_path}")
            time.sleep(0.1)

    def live_build(self, collection: str) -> tuple[str, str]:
        """(newest build, its fingerprint) as the pointer names them."""
        client = chromadb.HttpClient(host="127.0.0.1", port=self.port, settings=chroma_settings())
        meta = client.get_collection(collection + POINTER_SUFFIX).metadata
        return meta["build"], json.loads(meta["manifest"])["fingerprint"]

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


def run(out_dir: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="pcl-scaleout-"))
    server = ChromaServer(work / "chroma", out_dir / "chroma.log")
    apps: list[App] = []
    result: dict = {}
    collection = Settings().index.collection
    try:
        result["chroma_start_s"] = round(server.start(), 2)
        base = {"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(server.port)}
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bot", "index"],
            cwd=REPO_ROOT,
            env=os.environ | base | {"PCL_INDEX_DIR": str(work / "builder")},
            check=True,
            capture_output=True,
        )
        result["build_into_server_s"] = round(time.perf_counter() - t, 2)
        build = server.live_build(collection)
        for name in ("a", "b"):
            env = base | {
                "PCL_INDEX_DIR": str(work / f"replica-{name}"),
                "PCL_FEEDBACK_LOG": str(work / f"replica-{name}" / "feedback.jsonl"),
            }
            app = App(out_dir / f"replica-{name}.log", env=env)
            apps.append(app)
            result[f"replica_{name}_start"] = app.start()
        after = server.live_build(collection)
        result["replicas_rebuilt_the_index"] = after[0] != build[0]
        if after[0] != build[0]:
            result["rebuild_reason"] = (
                "the fingerprint changed (corpus or chunking code edited during the run)"
                if after[1] != build[1]
                else "UNEXPECTED: same fingerprint, yet rebuilt"
            )
        result["local_index_files"] = sorted(
            str(p.relative_to(work))
            for name in ("a", "b")
            for p in (work / f"replica-{name}").glob("store-*")
        )

        questions = answer_questions(load_questions()[0], 20)
        clients = [RestClient(app.url) for app in apps]
        same = [clients[0].predict(q.text) == clients[1].predict(q.text) for q in questions]
        result["same_answers"] = f"{sum(same)}/{len(same)}"

        # Gradio's two calls for one request, split across replicas as a load balancer without
        # affinity might do: the event id only exists on the replica that took the POST.
        posted = httpx.post(
            apps[0].url + "gradio_api/call/chat", json={"data": ["What is CT0596?"]}, timeout=30
        )
        event_id = posted.json()["event_id"]
        try:
            other = httpx.get(apps[1].url + f"gradio_api/call/chat/{event_id}", timeout=30)
            outcome = f"HTTP {other.status_code}: {other.text[:200]}"
            answered = "not medical advice" in other.text.lower()
        except httpx.HTTPError as exc:
            outcome, answered = f"{type(exc).__name__}: {exc}", False
        result["split_request"] = {"post": "replica a", "event_stream": "replica b", "outcome": outcome}
        result["split_request_answered"] = answered

        # Round robin per request (both calls of one request on one replica): all answered.
        ok = 0
        t = time.perf_counter()
        for i, q in enumerate(questions * 2):
            ok += "not medical advice" in clients[i % 2].predict(q.text).lower()
        result["round_robin"] = {
            "answered": f"{ok}/{len(questions) * 2}",
            "seconds": round(time.perf_counter() - t, 2),
        }
        result["memory_mb"] = {f"replica_{n}": app.memory() for n, app in zip("ab", apps, strict=True)}
        for c in clients:
            c.close()
    finally:
        for app in apps:
            app.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out_dir = REPO_ROOT / "bench" / "results" / f"scaleout-{stamp}"
    out_dir.mkdir(parents=True)
    result = run(out_dir)
    (out_dir.parent / f"scaleout-{stamp}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
