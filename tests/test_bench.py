"""The benchmark's own logic (`bench/`): where results and the report go, what the report says,
and that an interrupted run stops what it started and writes nothing. No measurement is timed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bench import report, run
from bot.settings import REPO_ROOT


def _summary(p50: float, p95: float, n: int = 100) -> dict:
    return {"n": n, "p50": p50, "p95": p95, "p99": p95 * 1.2, "mean": p50, "min": p50 / 2, "max": p95 * 2}


def _level(client: str, clients: int, rps: float, p50: float, p95: float, failed: int = 0) -> dict:
    ok = int(rps * 20)
    return {
        "client": client,
        "clients": clients,
        "seconds": 20.0,
        "requests": ok + failed,
        "requests_per_s": rps,
        "latency_ms": _summary(p50, p95, ok),
        "outcomes": {"ok": ok, "busy": 0, "error": failed, "bad_reply": 0},
        "failure_examples": ["RuntimeError: HTTP 500"] if failed else [],
        "client_cpu_cores": 0.1,
        "app_cpu_cores": 1.7,
        "app_cpu_ms_per_answer": 1700 / rps,
        "machine": {"other_cores": 0.05},
    }


def sample_results(**changes) -> dict:
    """A run's JSON as `python -m bench` writes it, small but complete."""
    load = {"seconds": 10.0, "bench_cores": 1.0, "other_cores": 0.02, "loadavg_1m": 0.4}
    stages = {n: _summary(0.5, 1.0) for n in report.STAGES} | {"dense": _summary(0.05, 0.1)}
    api_block = {
        "ours_ms": _summary(5.5, 7.0),
        "floor_ms": _summary(4.0, 5.0),
        "baseline_ms": _summary(6.0, 8.0),
        "unguarded_ms": _summary(4.5, 6.0),
    }
    res = {
        "started": "2026-11-30T13:00:00Z",
        "mode": "default",
        "loadavg_at_start": [0.4, 0.8, 1.2],
        "machine": {"cpu": "Test CPU", "cores": 2, "ram_gb": 8.0, "os": "Linux", "python": "3.11.7"},
        "commit": "abc1234",
        "phases": list(run.PHASES),
        "floors": {
            "questions": "evals/cases",
            "asked": 100,
            "rounds": 3,
            "one": {
                "onnx": _summary(3.9, 5.0),
                "torch": _summary(12.0, 15.0),
                "safety_onnx": _summary(4.0, 5.0),
            },
            "batch32": {
                "onnx": _summary(60.0, 70.0),
                "torch": _summary(80.0, 90.0),
                "safety_onnx": _summary(60.0, 70.0),
            },
            "batch_size": 32,
            "cosine_onnx_torch": {"min": 0.99999, "mean": 1.0},
            "torch_threads": 2,
            "onnx_threads": 2,
            "machine_load": {"onnx": load, "torch": load},
        },
        "api": {
            "questions": "evals/cases",
            "asked": 120,
            "retrieval_path": 100,
            "rounds": 3,
            "chunks": 61,
            "sentences": 1114,
            "all": api_block,
            "retrieval": api_block,
            "retrieval_best": api_block,
            "stages_all": stages,
            "stages_retrieval": stages,
            "paired_ratio_to_floor": {"p50": 1.4, "p95": 1.8},
            "paired_ratio_to_baseline": {"p50": 0.9, "p95": 1.1},
            "safety_layer_ms": _summary(1.0, 2.0) | {"questions": 100},
            "memory_engine_mb": {"VmRSS": 300.0},
            "memory_mb": {"VmHWM": 320.0},
            "machine_load": load,
        },
        "cold": {
            "cli_ask_s": [2.4, 2.5, 2.3],
            "cli_ask_median_s": 2.4,
            "interpreter_start_s": 0.03,
            "stages_s": {"import chromadb": 0.6},
            "machine_load": load,
            "app": [
                {"start_to_ready_s": 3.5, "first_answer_after_ready_s": 0.2, "memory_after_start_mb": {}}
            ],
        },
        "http": {
            "start": {
                "start_to_ready_s": 3.5,
                "first_answer_after_ready_s": 0.2,
                "start_to_first_answer_s": 3.7,
            },
            "levels": [_level("gradio", 1, 12.0, 80, 90)]
            + [
                _level(c, n, 120.0 if c == "api" else 40.0, 6.0 * n, 8.0 * n)
                for n in run.LEVELS
                for c in ("api", "rest")
            ],
            "memory_mb": {"VmHWM": 450.0, "VmRSS": 440.0},
            "batching": {"embed": {"calls": 10, "batches": 2, "mean_batch": 5.0, "largest_batch": 8}},
        },
    }
    res.update(changes)
    return res


def test_results_go_under_bench_results_by_default(tmp_path):
    path, folder = run.results_paths("20261130-130000")
    assert path == REPO_ROOT / "bench" / "results" / "20261130-130000.json"
    assert folder == REPO_ROOT / "bench" / "results" / "20261130-130000"
    assert run.results_paths("x", tmp_path) == (tmp_path / "x.json", tmp_path / "x")


def test_the_committed_report_is_written_only_when_asked_and_every_phase_ran(tmp_path):
    parse = run.parser().parse_args
    assert run.report_dir(parse([]), [], tmp_path) == tmp_path
    assert run.report_dir(parse(["--write-report"]), [], tmp_path) is None
    assert run.report_dir(parse(["--write-report"]), ["http"], tmp_path) == tmp_path
    with pytest.raises(SystemExit):
        parse(["--write-report", "--no-report"])


def test_a_report_into_a_folder_leaves_benchmarks_md_alone(tmp_path):
    before = report.REPORT.read_bytes()
    written = report.write_report(sample_results(), tmp_path / "r.json", out_dir=tmp_path)
    assert report.REPORT.read_bytes() == before
    names = {p.name for p in written}
    assert {"BENCHMARKS.md", "bench-clients.png"} <= names
    assert all(p.parent == tmp_path for p in written)
    text = (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert "(bench-clients.png)" in text  # the chart beside it, not the committed one


def test_the_report_has_before_after_targets_and_where_the_time_goes():
    text = report.render(sample_results())
    assert "## Before and after" in text and "## Where the remaining time goes" in text
    # The figures from before issue 14, next to this run's.
    for before in (
        "15.5 / 19.4 ms",
        "34.2/s, p50 29 / p95 35 ms",
        "p50 906 / p95 1,071 ms",
        "896 MB",
        "7.28 s",
    ):
        assert before in text
    targets = text.split("## Targets")[1].split("##")[0]
    assert targets.count("**met**") == 6 and "**missed**" not in targets
    assert "The learned safety layer adds ≤ 3 ms at p50 | **1.00 ms**" in targets
    assert "| guard | 0.50 |" in text


def test_a_missed_target_and_failed_requests_are_reported():
    res = sample_results()
    res["http"]["levels"] = [_level("api", 32, 80.0, 350.0, 900.0, failed=3)]
    text = report.render(res)
    row = next(line for line in text.splitlines() if line.startswith("| JSON API at 32 clients"))
    assert "**missed**" in row and "failed 3" in row
    assert "**3 failed**" in text


def test_a_safety_layer_over_its_budget_is_a_missed_target():
    res = sample_results()
    res["api"]["safety_layer_ms"] = _summary(3.5, 6.0) | {"questions": 100}
    row = next(line for line in report.render(res).splitlines() if "learned safety layer adds" in line)
    assert "**missed**" in row and "**3.50 ms**" in row


def test_a_failed_phase_is_named_and_the_rest_is_still_reported():
    text = report.render(sample_results(http={"error": "RuntimeError: app.py exited with 2", "trace": ""}))
    assert "`http`: `RuntimeError: app.py exited with 2`" in text
    assert "## Floors" in text and "## HTTP" not in text


def test_a_busy_machine_is_said_in_the_report():
    assert "not quiet" in report.render(sample_results(loadavg_at_start=[3.5, 2.0, 1.0]))
    assert "not quiet" not in report.render(sample_results())


def test_stop_children_ends_what_the_run_started():
    # In a process of its own, as a bench run is: stop_children ends every child of the process
    # that calls it, and this test session's children include the app other tests share.
    script = (
        "import subprocess, sys, time\n"
        "from bench import run\n"
        "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']) for _ in range(2)]\n"
        "time.sleep(0.5)\n"
        "stopped = run.stop_children(timeout=5)\n"
        "print(stopped, all(k.wait(timeout=5) is not None for k in kids))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["2", "True"], out.stdout + out.stderr


def test_ctrl_c_stops_the_run_and_writes_nothing(tmp_path):
    """A real `python -m bench` interrupted while it starts the app: exit 130, every process it
    started stopped, no results and no report."""
    before = report.REPORT.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "--only", "http", "--write-report", "--results-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches it
        # As typed in a terminal: Ctrl-C is not ignored. (A background job of a shell without job
        # control, such as `(make test &)`, starts with it ignored, and so would the bench.)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(tmp_path.iterdir()):
            time.sleep(0.1)  # the run's folder exists: it is under way
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Nothing was written to BENCHMARKS.md" in err
    assert list(tmp_path.iterdir()) == []
    assert report.REPORT.read_bytes() == before
    leftovers = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftovers == []


def test_the_report_can_be_rewritten_from_a_saved_run(tmp_path):
    saved = tmp_path / "20261130-130000.json"
    saved.write_text(json.dumps(sample_results()), encoding="utf-8")
    assert report.main([str(saved)]) == 0
    assert (tmp_path / "20261130-130000" / "BENCHMARKS.md").exists()


def test_phases_and_levels_are_the_ones_the_issue_asks_for():
    assert run.LEVELS == (1, 8, 32, 64)
    assert {"floors", "api", "cold", "http", "growth"} <= set(run.PHASES)
    args = run.parser().parse_args([])
    assert not args.write_report and not args.quick and args.keep_from == 1000


def test_a_kept_growth_index_lives_under_bench_results():
    assert run.GROWTH_CACHE.is_relative_to(REPO_ROOT / "bench" / "results")
    assert (REPO_ROOT / ".gitignore").read_text(encoding="utf-8").count("/bench/results/") == 1
