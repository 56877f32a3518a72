"""The command-line contract other tools rely on: --json, --batch, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bot.settings import REPO_ROOT

# The JSON contract (README): `reason`, `follow_ups`, `mode` and `dropped` were added; nothing was removed.
CONTRACT = {
    "question",
    "answer",
    "kind",
    "reason",
    "citations",
    "follow_ups",
    "disclaimer",
    "latency_ms",
    "mode",
    "dropped",
}
CITATION = {"n", "source_id", "title", "url", "section", "quote"}


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def built_index(companion):
    return companion  # the shared index exists once the session Companion is up


def test_ask_json_matches_the_contract(built_index):
    proc = run_cli("ask", "--json", "How many people are diagnosed with PCL each year in the US?")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == CONTRACT
    assert out["kind"] == "answer" and "200" in out["answer"]
    assert out["citations"] and set(out["citations"][0]) == CITATION
    assert (
        out["citations"][0]["url"]
        == "https://healthtree.org/myeloma/community/articles/25-allo-car-t-for-pcl"
    )
    assert "not medical advice" in out["disclaimer"]
    assert "Traceback" not in proc.stderr


def test_batch_writes_one_line_per_input_in_order(built_index, tmp_path):
    batch = tmp_path / "q.jsonl"
    lines = [
        {"id": "a", "question": "What is CT0596?"},
        {"id": "b", "question": "I have a fever after CAR-T"},
        {
            "id": "c",
            "question": "who can enroll in it?",
            "history": [{"role": "user", "content": "Tell me about CT071"}],
        },
        {"id": 4, "question": ""},
    ]
    batch.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    proc = run_cli("ask", "--batch", str(batch))
    assert proc.returncode == 0, proc.stderr
    outs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["id"] for o in outs] == ["a", "b", "c", "4"]
    assert [o["kind"] for o in outs] == ["answer", "emergency", "answer", "invalid"]
    assert all(set(o) == CONTRACT | {"id"} for o in outs)
    assert any(c["source_id"].startswith("NCT") for c in outs[2]["citations"])


def test_a_raw_line_separator_inside_a_question_does_not_stop_the_batch(built_index, tmp_path):
    # json.dumps(ensure_ascii=False) leaves U+2028 raw inside the string; str.splitlines() would
    # cut the line there and every later line would be lost.
    batch = tmp_path / "u2028.jsonl"
    lines = [
        {"id": "a", "question": "What is CT0596?\u2028And who makes it?"},
        {"id": "b", "question": "What is plasma cell leukemia?"},
        {"id": "c", "question": "Who sponsors NCT05838131?\u2029"},
    ]
    batch.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    assert "\u2028" in batch.read_text(encoding="utf-8")
    proc = run_cli("ask", "--batch", str(batch))
    assert proc.returncode == 0, proc.stderr
    outs = [json.loads(line) for line in proc.stdout.split("\n") if line.strip()]
    assert [o["id"] for o in outs] == ["a", "b", "c"]
    assert all(o["kind"] == "answer" for o in outs)


def test_bad_batch_line_is_reported_with_its_line_number(built_index, tmp_path):
    batch = tmp_path / "bad.jsonl"
    batch.write_text('{"id": "a", "question": "What is PCL?"}\n{"id": "b"}\n')
    proc = run_cli("ask", "--batch", str(batch))
    assert proc.returncode != 0
    assert "bad.jsonl:2" in proc.stderr and "Traceback" not in proc.stderr


def test_plain_ask_prints_sources_and_disclaimer(built_index):
    proc = run_cli("ask", "What is CT0596?")
    assert proc.returncode == 0, proc.stderr
    assert "[1]" in proc.stdout and "Sources:" in proc.stdout and "not medical advice" in proc.stdout


def test_bad_setting_is_one_clear_line(built_index):
    proc = run_cli("ask", "What is PCL?", env={"PCL_TOP_K": "lots"})
    assert proc.returncode == 2
    assert "PCL_TOP_K" in proc.stderr and "Traceback" not in proc.stderr
