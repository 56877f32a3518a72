"""The benchmark, phase by phase; each measurement runs in its own process (`bench/worker.py`).

    python -m bench                  # every phase; results and report in bench/results/
    python -m bench --quick          # a smoke run: fewer rounds, growth to 10x, 8 s per HTTP level
    python -m bench --write-report   # the same run, then BENCHMARKS.md and docs/bench-*.png rewritten
    python -m bench --only http api  # some phases only

Phases: `floors` (the embedding model on torch and on ONNX, one question and a batch of 32),
`api` (warm answers through the Python API, per stage), `cold` (process start to the first CLI
answer and to the app being ready), `http` (1, 8, 32 and 64 clients on the JSON API and on the
page's /chat endpoint, and the app's memory), `growth` (1x to 1000x corpora: build and query),
`scaleout` (a Chroma server and two app replicas).

Writes bench/results/<timestamp>.json and the report (BENCHMARKS.md and its charts) into
bench/results/<timestamp>/; only with --write-report does the report replace the committed
BENCHMARKS.md and docs/bench-growth.png, docs/bench-clients.png. Ctrl-C stops the run and every
process it started, and writes nothing.
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
import traceback
from pathlib import Path

from bench.measure import MachineLoad, machine
from bot.settings import REPO_ROOT, Settings

RESULTS = REPO_ROOT / "bench" / "results"
GROWTH_CACHE = RESULTS / "growth-cache"  # large growth corpora and their indexes, kept between runs
PHASES = ("floors", "api", "cold", "http", "growth", "scaleout")
LEVELS = (1, 8, 32, 64)  # concurrent HTTP clients
KEEP_FROM = 1000  # growth sizes at least this large are kept and reused (their build takes an hour)


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


def floors(out_dir: Path, extra: list[str]) -> dict:
    """The ONNX and the torch floors, each in a process of its own (see `worker.floors`)."""
    onnx = worker("floors", out_dir, "--runtime", "onnx", *extra)
    torch = worker("floors", out_dir, "--runtime", "torch", *extra)
    return {
        "questions": onnx["questions"],
        "asked": onnx["asked"],
        "rounds": onnx["rounds"],
        "batch_size": onnx["batch_size"],
        "one": onnx["one"] | torch["one"],
        "batch32": onnx["batch32"] | torch["batch32"],
        "cosine_onnx_torch": torch["cosine_onnx_torch"],
        "torch_threads": torch["threads"],
        "onnx_threads": onnx["threads"],
        "cores": onnx.get("cores"),
        "machine_load": {"onnx": onnx["machine_load"], "torch": torch["machine_load"]},
    }


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
        if proc.returncode != 0 or "[1]" not in proc.stdout:
            raise RuntimeError(f"python -m bot ask failed:\n{proc.stderr[-2000:]}")
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


def app_starts(runs: int, out_dir: Path) -> list[dict]:
    """`python app.py` start to ready (and to a first answer) on the existing index, `runs` times."""
    from bench.http import App

    out = []
    for i in range(runs):
        app = App(out_dir / f"app-start-{i}.log")
        meter = MachineLoad.start()
        try:
            out.append(app.start())
        finally:
            app.stop()
        out[-1]["machine_load"] = meter.stop()
    return out


def growth(
    scales: list[int], real_chunks: int, out_dir: Path, work: Path, quick: bool, keep_from: int, rebuild: bool
) -> list[dict]:
    """Build time, warm query latency and memory at growing corpus sizes.

    Sizes of `keep_from` times the real corpus and more keep their corpus and index in
    bench/results/growth-cache/<n>x/ and reuse them while the fingerprint (corpus, model,
    chunking code) is unchanged: their build takes about an hour on 2 cores, and the query
    phase is what each run measures. The row then reports the build as it was measured."""
    from bench.synth import build_corpus
    from bot.store.index import fingerprint

    base = Settings.from_env()
    rows = []
    for scale in scales:
        target = scale * real_chunks
        row: dict = {"scale": scale, "target_chunks": target}
        keep = scale >= keep_from and scale > 1
        home = GROWTH_CACHE / f"{scale}x" if keep else work
        corpus = (
            base.index.corpus_dir if scale == 1 else home / (f"corpus-{scale}x" if not keep else "corpus")
        )
        index = home / (f"index-{scale}x" if not keep else "index")
        if scale > 1:
            _say(f"growth {scale}x: generating a corpus of ~{target:,} chunks")
            t = time.perf_counter()
            row["generated"] = build_corpus(base.index.corpus_dir, target, corpus)
            row["generate_s"] = round(time.perf_counter() - t, 1)
        settings = base.with_overrides(corpus_dir=corpus, index_dir=index)
        kept = home / "build.json"
        cached = None
        if keep and not rebuild and kept.exists():
            cached = json.loads(kept.read_text(encoding="utf-8"))
            if cached.get("fingerprint") != fingerprint(settings) or not _built_at(index):
                _say(f"growth {scale}x: the kept index is stale (corpus, model or chunking changed)")
                cached = None
        if cached is not None:
            row["build"] = cached | {"reused": True}
            _say(
                f"growth {scale}x: reusing the index built {cached.get('built_at', '?')} "
                f"({cached['chunks']:,} chunks in {cached['build_s']:,.0f} s)"
            )
        else:
            shutil.rmtree(index, ignore_errors=True)
            kept.unlink(missing_ok=True)
            _say(f"growth {scale}x: building the index" + (" (kept for later runs)" if keep else ""))
            row["build"] = worker("build", out_dir, "--corpus", str(corpus), "--index", str(index))
            row["build"]["built_at"] = _built_at(index)
            if keep:
                kept.write_text(json.dumps(row["build"], indent=1), encoding="utf-8")
            _say(f"growth {scale}x: {row['build']['chunks']:,} chunks built in {row['build']['build_s']} s")
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
        if not keep and scale > 1:
            shutil.rmtree(corpus, ignore_errors=True)
        if not keep:
            shutil.rmtree(index, ignore_errors=True)
    return rows


def _built_at(index: Path) -> str:
    try:
        current = (index / "CURRENT").read_text().strip()
        return json.loads((index / current / "manifest.json").read_text())["built_at"]
    except (OSError, KeyError, ValueError):
        return ""


def http(levels: tuple[int, ...], seconds: float, out_dir: Path) -> dict:
    """The app as shipped: start to ready, then each level of clients on the JSON API and on
    Gradio's /chat, side by side (api first, then chat, at each level)."""
    import httpx

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
            runs.append(run)
            _say(
                f"http: {run['requests_per_s']} answers/s, p50 {run['latency_ms'].get('p50')} ms, "
                f"p95 {run['latency_ms'].get('p95')} ms, outcomes {run['outcomes']}"
            )
        memory = app.memory()
        health = httpx.get(app.url + "api/health", timeout=10).json()
        return {"start": started, "levels": runs, "memory_mb": memory, "batching": health.get("batching")}
    finally:
        app.stop()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short smoke run (minutes, not an hour)")
    p.add_argument(
        "--only", nargs="+", choices=PHASES, help="run only these phases (the report shows what ran)"
    )
    p.add_argument("--http-seconds", type=float, help="seconds per HTTP level (default 20, quick 8)")
    p.add_argument(
        "--scales",
        type=int,
        nargs="+",
        help="growth sizes as multiples of the real corpus (default 1 10 100 1000; quick 1 10)",
    )
    p.add_argument(
        "--keep-from",
        type=int,
        default=KEEP_FROM,
        metavar="SCALE",
        help=f"growth sizes this large and more are kept in {GROWTH_CACHE.relative_to(REPO_ROOT)}/ and "
        f"reused while their fingerprint holds (default {KEEP_FROM})",
    )
    p.add_argument(
        "--rebuild", action="store_true", help="rebuild kept growth indexes even when they are current"
    )
    p.add_argument(
        "--results-dir",
        type=Path,
        metavar="DIR",
        help=f"where the JSON and the run's folder go (default {RESULTS.relative_to(REPO_ROOT)}/)",
    )
    report = p.add_mutually_exclusive_group()
    report.add_argument(
        "--write-report",
        action="store_true",
        help="rewrite the committed BENCHMARKS.md and docs/bench-*.png "
        "(default: the report goes to bench/results/<timestamp>/)",
    )
    report.add_argument("--no-report", action="store_true", help="write the JSON only, no report")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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


def _phase(results: dict, name: str, fn) -> None:
    """Run one phase; a failure is recorded (and shown in the report), the other phases still run."""
    try:
        results[name] = fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one broken phase must not cost the others' numbers
        _say(f"{name}: FAILED: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}")
        results[name] = {
            "error": f"{type(exc).__name__}: {exc}"[-3000:],
            "trace": traceback.format_exc()[-3000:],
        }


def results_paths(stamp: str, results_dir: Path | None = None) -> tuple[Path, Path]:
    """(the run's JSON, the folder for its raw files and report), under bench/results/ by default."""
    results_dir = Path(results_dir or RESULTS)
    return results_dir / f"{stamp}.json", results_dir / stamp


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def report_dir(args: argparse.Namespace, failed: list[str], out_dir: Path) -> Path | None:
    """Where the report goes: the run's own folder, or None (over the committed BENCHMARKS.md),
    which only `--write-report` asks for, and only when every phase ran."""
    return None if args.write_report and not failed else out_dir


def _run(args: argparse.Namespace) -> int:
    phases = [p for p in PHASES if p in (args.only or PHASES)]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path, out_dir = results_paths(stamp, args.results_dir)
    results: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": "quick" if args.quick else "default",
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "phases": phases,
    }
    out_dir.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix="pcl-bench-"))
    try:
        _say(f"load average {results['loadavg_at_start']}; building the real index if needed")
        manifest = ensure_index()
        results["index"] = {
            k: manifest.get(k) for k in ("chunks", "sentences", "build_seconds", "fingerprint")
        }
        if "floors" in phases:
            _say("floors: the embedding model on torch and on ONNX, one question and a batch of 32")
            extra = ["--rounds", "1", "--every", "4"] if args.quick else ["--rounds", "3"]
            _phase(results, "floors", lambda: floors(out_dir, extra))
            f = results["floors"]
            if "error" not in f:
                _say(
                    f"floors: one question ONNX {f['one']['onnx']['p50']} ms, torch {f['one']['torch']['p50']} ms; "
                    f"32 questions ONNX {f['batch32']['onnx']['p50']} ms, torch {f['batch32']['torch']['p50']} ms"
                )
        if "api" in phases:
            _say("api: warm answers over the eval questions (ours, ONNX floor, LangChain baseline)")
            extra = ["--rounds", "1", "--every", "4"] if args.quick else ["--rounds", "3"]
            _phase(results, "api", lambda: worker("api", out_dir, *extra))
            if "error" not in results["api"]:
                r = results["api"]["retrieval"]
                _say(
                    f"api: p50 ours {r['ours_ms']['p50']} ms, floor {r['floor_ms']['p50']} ms, "
                    f"baseline {r['baseline_ms']['p50']} ms"
                )
        if "cold" in phases:

            def cold() -> dict:
                _say("cold: python -m bot ask, from process start to answer")
                out = cold_start(1 if args.quick else 3, out_dir)
                _say(f"cold: {out['cli_ask_s']} s")
                out["app"] = app_starts(1 if args.quick else 3, out_dir)
                _say(f"cold: app ready in {[a['start_to_ready_s'] for a in out['app']]} s")
                return out

            _phase(results, "cold", cold)
        if "http" in phases:
            seconds = args.http_seconds or (8.0 if args.quick else 20.0)
            _phase(results, "http", lambda: http(LEVELS, seconds, out_dir))
        if "growth" in phases:
            scales = args.scales or ([1, 10] if args.quick else [1, 10, 100, 1000])
            _phase(
                results,
                "growth",
                lambda: growth(
                    scales, manifest["chunks"], out_dir, work, args.quick, args.keep_from, args.rebuild
                ),
            )
        if "scaleout" in phases:
            from bench.scaleout import run as scaleout

            _say("scaleout: chroma run + 2 app replicas")
            _phase(results, "scaleout", lambda: scaleout(out_dir))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        shutil.rmtree(out_dir, ignore_errors=True)  # a half run's raw files: nothing to keep
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    failed = [p for p in phases if isinstance(results.get(p), dict) and "error" in results[p]]
    path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    _say(f"results: {_shown(path)}")
    if not args.no_report:
        from bench.report import write_report

        target = report_dir(args, failed, out_dir)
        if args.write_report and target is not None:
            _say(
                f"phases failed ({', '.join(failed)}): the report goes to {_shown(out_dir)}/, "
                "BENCHMARKS.md is left as it was"
            )
        for written in write_report(results, path, out_dir=target):
            _say(f"wrote {_shown(written)}")
    if failed:
        _say(f"failed phases: {', '.join(failed)}")
        return 1
    return 0
