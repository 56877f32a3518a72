"""The benchmark, phase by phase; each measurement runs in its own process (`bench/worker.py`).

    python -m bench            # API latency, cold start, growth 1x/10x/100x, HTTP 1/8/32/64 clients
    python -m bench --quick    # fewer rounds, growth to 10x, 8 s per HTTP level (a smoke run)
    python -m bench --full     # also the 1000x corpus (its build takes long; see BENCHMARKS.md)

Writes bench/results/<timestamp>.json and a report (BENCHMARKS.md, bench-growth.png) in
bench/results/<timestamp>/; with --write-report the report replaces the committed BENCHMARKS.md
and docs/bench-growth.png instead. Ctrl-C stops the run and every process it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.measure import MachineLoad, machine
from bot.settings import REPO_ROOT, Settings

RESULTS = REPO_ROOT / "bench" / "results"
BUILD_LIMIT_MIN = 15  # a growth build expected to take longer runs only with --full


def _say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def worker(what: str, out_dir: Path, *args: str, env: dict | None = None) -> dict:
    """Run `python -m bench.worker what ...` and return its JSON (with the phase's machine load)."""
    out = out_dir / f"{what}-{time.monotonic_ns()}.json"
    meter = MachineLoad.start()
    cmd = [sys.executable, "-m", "bench.worker", what, "--out", str(out), *args]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=os.environ | (env or {}), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text(encoding="utf-8"))
    result["machine_load"] = meter.stop()
    return result


def ensure_index() -> dict:
    """The real index, built if missing or stale, before anything is timed."""
    subprocess.run([sys.executable, "-m", "bot", "index"], cwd=REPO_ROOT, check=True, capture_output=True)
    index = Settings.from_env().index.index_dir
    current = (index / "CURRENT").read_text(encoding="utf-8").strip()
    return json.loads((index / current / "manifest.json").read_text(encoding="utf-8"))


def cold_start(runs: int, out_dir: Path) -> dict:
    """`python -m bot ask` from process start to printed answer, and where that time goes."""
    walls = []
    meter = MachineLoad.start()
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "bot", "ask", "What is CT0596?"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        walls.append(round(time.perf_counter() - t, 2))
        assert proc.returncode == 0 and "[1]" in proc.stdout, proc.stderr[-2000:]
    load = meter.stop()
    spawned = time.time()
    parts = worker("cold", out_dir, "--spawned-at", str(spawned))
    parts["interpreter_start_s"] = round(parts["main_at"] - parts["spawned_at"], 3)
    return {
        "cli_ask_s": walls,
        "cli_ask_median_s": sorted(walls)[len(walls) // 2],
        "machine_load": load,
        **parts,
    }


def growth(
    scales: list[int], real_chunks: int, out_dir: Path, work: Path, limit_min: float | None, quick: bool
) -> list[dict]:
    """Build time, warm query latency and memory at growing corpus sizes."""
    from bench.synth import build_corpus

    rows = []
    rate = None  # texts per second of the last build, to decide whether the next one is sensible
    for scale in scales:
        target = scale * real_chunks
        row: dict = {"scale": scale, "target_chunks": target}
        if scale > 1 and rate and rows:
            last = rows[-1]
            est = last["build"]["build_s"] * target / last["build"]["chunks"]
            row["estimated_build_s"] = round(est)
            if limit_min is not None and est > limit_min * 60:
                row["skipped"] = (
                    f"estimated build {est / 60:.0f} min (> {limit_min:g} min at the measured "
                    f"{rate:.0f} texts/s); run `python -m bench --full` to measure it"
                )
                _say(f"growth {scale}x: skipped, {row['skipped']}")
                rows.append(row)
                continue
        corpus = Settings().index.corpus_dir if scale == 1 else work / f"corpus-{scale}x"
        if scale > 1:
            _say(f"growth {scale}x: generating a corpus of ~{target} chunks")
            t = time.perf_counter()
            row["generated"] = build_corpus(Settings().index.corpus_dir, target, corpus)
            row["generate_s"] = round(time.perf_counter() - t, 1)
        index = work / f"index-{scale}x"
        shutil.rmtree(index, ignore_errors=True)
        _say(f"growth {scale}x: building the index")
        row["build"] = worker("build", out_dir, "--corpus", str(corpus), "--index", str(index))
        rate = row["build"]["texts_per_s"]
        _say(f"growth {scale}x: {row['build']['chunks']} chunks built in {row['build']['build_s']} s")
        row["query"] = worker(
            "query",
            out_dir,
            "--corpus",
            str(corpus),
            "--index",
            str(index),
            "--built-at",
            _built_at(index),
            "--questions",
            "30" if quick else "60",
            "--rounds",
            "1" if quick else "3",
        )
        _say(f"growth {scale}x: query p50 {row['query']['ours_ms']['p50']} ms")
        rows.append(row)
        if scale > 1:
            shutil.rmtree(corpus, ignore_errors=True)
        shutil.rmtree(index, ignore_errors=True)
    return rows


def _built_at(index: Path) -> str:
    current = (index / "CURRENT").read_text().strip()
    return json.loads((index / current / "manifest.json").read_text())["built_at"]


def http(levels: list[int], seconds: float, out_dir: Path) -> dict:
    """The app as shipped: start to ready, then each level of clients on the JSON API and on
    Gradio's /chat, side by side (api first, then chat, at each level)."""
    from bench.http import App, load
    from bench.questions import answer_questions, load_questions

    questions = answer_questions(load_questions()[0])
    app = App(out_dir / "app.log")
    _say("http: starting python app.py")
    try:
        started = app.start()
        _say(f"http: ready in {started['start_to_ready_s']} s")
        runs = []
        plan = [("gradio", 1)] + [(client, n) for n in levels for client in ("api", "rest")]
        for client, clients in plan:
            _say(f"http: {clients} {client} client(s) for {seconds:.0f} s")
            run = load(app.url, clients, seconds, questions, app.proc.pid, client=client)
            run["app"] = "default"
            runs.append(run)
            _say(
                f"http: {run['requests_per_s']} req/s, p50 {run['latency_ms'].get('p50')} ms, "
                f"p95 {run['latency_ms'].get('p95')} ms, outcomes {run['outcomes']}"
            )
        memory = app.memory()
        health = httpx.get(app.url + "api/health", timeout=10).json()
        return {
            "start": started,
            "levels": runs,
            "memory_mb": memory,
            "memory_by_app_mb": {"default": memory},
            "batching": health.get("batching"),
        }
    finally:
        app.stop()


def app_starts(runs: int, out_dir: Path) -> list[dict]:
    """`python app.py` start to ready (and to a first answer) on the existing index, `runs` times."""
    from bench.http import App

    out = []
    for i in range(runs):
        app = App(out_dir / f"app-start-{i}.log")
        try:
            out.append(app.start())
        finally:
            app.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a short smoke run (minutes, not an hour)")
    mode.add_argument("--full", action="store_true", help="also build and query the 1000x corpus")
    p.add_argument(
        "--only",
        nargs="+",
        choices=("api", "cold", "growth", "http", "scaleout"),
        help="run only these phases (the report shows what ran)",
    )
    p.add_argument("--http-seconds", type=float, help="seconds per HTTP level (default 20, quick 8)")
    p.add_argument(
        "--scales",
        type=int,
        nargs="+",
        help="growth sizes as multiples of the real corpus (default 1 10 100 1000)",
    )
    p.add_argument(
        "--max-build-minutes",
        type=float,
        default=BUILD_LIMIT_MIN,
        help=f"skip a growth size whose estimated build is longer (default {BUILD_LIMIT_MIN}; --full: no limit)",
    )
    report = p.add_mutually_exclusive_group()
    report.add_argument(
        "--write-report",
        action="store_true",
        help="rewrite the committed BENCHMARKS.md and docs/bench-growth.png "
        "(default: the report goes to bench/results/<timestamp>/)",
    )
    report.add_argument("--no-report", action="store_true", help="write the JSON only, no report")
    args = p.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # `kill` or a closed terminal: stop as Ctrl-C does
        signal.signal(sig, _interrupt)
    try:
        return _run(args)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
        stopped = stop_children()
        what = f"; stopped {stopped} process{'es' if stopped != 1 else ''} it had started" if stopped else ""
        print(
            f"\n[bench] interrupted{what}. Nothing was written to BENCHMARKS.md.", file=sys.stderr, flush=True
        )
        return 130


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _children_of(pid: int) -> list[int]:
    """Every descendant of pid, from /proc (Linux); [] where /proc cannot tell."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop_children(timeout: float = 10.0) -> int:
    """Terminate every process this run started (the app, Chroma, workers), kill what lingers."""
    pids = _children_of(os.getpid())
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if _running(pid)]
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _running(pid: int) -> bool:
    try:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child: reap it
                return False
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def _run(args: argparse.Namespace) -> int:
    phases = set(args.only or ("api", "cold", "growth", "http", "scaleout"))

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_dir = RESULTS / stamp
    out_dir.mkdir()
    work = Path(tempfile.mkdtemp(prefix="pcl-bench-"))
    results: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": "quick" if args.quick else "full" if args.full else "default",
        "machine": machine(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "phases": sorted(phases),
    }
    try:
        _say("building the real index if needed")
        manifest = ensure_index()
        results["index"] = {
            k: manifest.get(k) for k in ("chunks", "sentences", "build_seconds", "fingerprint")
        }
        if "api" in phases:
            _say("api: warm latency over the eval questions (ours, embed floor, LangChain baseline)")
            extra = ["--rounds", "1", "--every", "4"] if args.quick else ["--rounds", "3"]
            results["api"] = worker("api", out_dir, *extra)
            r = results["api"]["retrieval"]
            _say(
                f"api: p50 ours {r['ours_ms']['p50']} ms, floor {r['floor_ms']['p50']} ms, "
                f"baseline {r['baseline_ms']['p50']} ms"
            )
        if "cold" in phases:
            _say("cold: python -m bot ask, from process start to answer")
            results["cold"] = cold_start(1 if args.quick else 3, out_dir)
            _say(f"cold: {results['cold']['cli_ask_s']} s")
            if (REPO_ROOT / "app.py").exists():
                results["cold"]["app"] = app_starts(1 if args.quick else 3, out_dir)
                _say(f"cold: app ready in {[a['start_to_ready_s'] for a in results['cold']['app']]} s")
        if "growth" in phases:
            scales = args.scales or ([1, 10] if args.quick else [1, 10, 100, 1000])
            limit = None if args.full else args.max_build_minutes
            results["growth"] = growth(scales, manifest["chunks"], out_dir, work, limit, quick=args.quick)
        if "http" in phases:
            if (REPO_ROOT / "app.py").exists():
                seconds = args.http_seconds or (8.0 if args.quick else 20.0)
                results["http"] = http([1, 8, 32, 64], seconds, out_dir)
            else:
                results["http"] = {"skipped": "app.py does not exist yet"}
        if "scaleout" in phases:
            from bench.scaleout import run as scaleout

            _say("scaleout: chroma run + 2 app replicas")
            results["scaleout"] = scaleout(out_dir)
            _say(f"scaleout: {results['scaleout']}")
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        shutil.rmtree(out_dir, ignore_errors=True)  # a half run's raw files: nothing to keep
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = RESULTS / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    _say(f"results: {path.relative_to(REPO_ROOT)}")
    if not args.no_report:
        from bench.report import write_report

        for written in write_report(results, path, out_dir=None if args.write_report else out_dir):
            _say(f"wrote {written.relative_to(REPO_ROOT)}")
    return 0
