"""No leaks: no outbound connection, no telemetry, no traces or paths shown to people, no user text
in the logs beyond the feedback log.

The app runs with default settings (nothing offline-related inherited from the test environment)
under a socket guard that refuses and records every non-loopback connect, sendto and name lookup,
and, where strace is installed, under strace, which sees connect() from native code as well.
"""

from __future__ import annotations

import json
import logging
import os
import uuid

import httpx
import pytest
from gradio_client import Client
from reliability_fixtures import (
    NETGUARD,
    TRACE_MARKERS,
    PageSession,
    free_port,
    guarded_app,
    loopback_only,
    reusing_model,
    run_cli,
    run_python,
)

MARKER = f"zq{uuid.uuid4().hex[:10]}"  # a word no source contains, to find user text in logs


@pytest.fixture(scope="module")
def app(companion, settings):
    return guarded_app(str(settings.index.index_dir))


@pytest.fixture(scope="module")
def traffic(app):
    """What a person does: open the page, ask on the page and rate, ask through the API."""
    with httpx.Client(timeout=120) as http:
        assert http.get(app.url).status_code == 200
        config = http.get(app.url + "config").json()
        tab = PageSession(app.url, http, config)
        asked = tab.ask(f"What is CT0596? {MARKER}-page")
        rated = tab.rate_last(liked=False)
    client = Client(app.url, verbose=False)
    answers = [
        client.predict(f"What is plasma cell leukemia? {MARKER}-api", api_name="/chat"),
        client.predict(f"I have a fever {MARKER}-emergency", api_name="/chat"),
        client.predict(f"{MARKER}-invalid \x00", api_name="/chat"),
    ]
    return {"config": config, "asked": asked, "rated": rated, "answers": answers}


# ---------------------------------------------------------------- outbound connections


def test_the_guard_refuses_and_records_outbound_attempts(tmp_path):
    """The guard is not vacuous: outbound attempts are refused and logged, loopback works."""
    log = tmp_path / "netguard.jsonl"
    env = {"PCL_NETGUARD_LOG": str(log), "PCL_NETGUARD_PID": str(tmp_path / "pid")}
    result = run_python(
        NETGUARD
        + """
import socket, httpx
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
socket.create_connection(server.getsockname(), timeout=2).close()  # loopback: allowed
for attempt in (
    lambda: httpx.get("https://clinicaltrials.gov/api/v2/version", timeout=2),
    lambda: socket.create_connection(("93.184.216.34", 80), timeout=2),
    lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)),
):
    try:
        attempt()
    except Exception as exc:
        print("refused:", type(exc).__name__)
""",
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("refused:") == 3
    targets = [json.loads(line)["target"] for line in log.read_text().splitlines()]
    assert any("clinicaltrials.gov" in t for t in targets)
    assert any("93.184.216.34" in t for t in targets) and any("8.8.8.8" in t for t in targets)


def test_the_app_opens_no_outbound_connection(app, traffic):
    assert traffic["asked"].get("success") and traffic["rated"].get("success")
    assert all("not medical advice. Talk to your care team" in a for a in traffic["answers"])
    refused = app.refused()
    assert refused == [], "\n\n".join(f"{r['what']} {r['target']}\n{r['stack']}" for r in refused)
    if app.strace_log:
        assert any(f"htons({app.port})" in b for b in app.strace_binds()), "is strace tracing the app?"
        assert [c for c in app.strace_connects() if not loopback_only(c)] == []


def test_telemetry_and_analytics_are_off(app, traffic, settings):
    assert traffic["config"]["analytics_enabled"] is False
    assert os.environ["ANONYMIZED_TELEMETRY"] == "False"
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"  # onnxruntime's usage events (1.29+)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    from bot.store.chroma import chroma_settings

    assert chroma_settings().anonymized_telemetry is False


def test_a_loaded_index_uses_a_client_without_telemetry(companion):
    assert companion.index.store.client.get_settings().anonymized_telemetry is False


# ---------------------------------------------------------------- what people see


def test_an_internal_fault_shows_a_plain_sentence(companion, monkeypatch, caplog):
    """A fault deep in retrieval (with a file path in its message) on a real Gradio server."""
    from bot.interfaces import ui

    def broken_search(*args, **kwargs):
        raise RuntimeError(f"disk I/O error in {companion.settings.index.index_dir}/chroma.sqlite3")

    monkeypatch.setattr(companion.search, "search", broken_search)
    demo = ui.build(companion)
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **ui.launch_options())
    try:
        url = f"http://127.0.0.1:{port}/"
        call = url + "gradio_api/call/chat"
        with caplog.at_level(logging.ERROR):
            event = httpx.post(call, json={"data": [f"What is CT0596? {MARKER}-fault"]}, timeout=60).json()
            result = httpx.get(f"{call}/{event['event_id']}", timeout=60).text
            with httpx.Client(timeout=60) as http:
                tab = PageSession(url, http, http.get(url + "config").json())
                tab.ask(f"What is CT0596? {MARKER}-fault-page")
        assert "event: error" in result and "Sorry, something went wrong" in result
        bubble = tab.bubbles()[-1]
        assert "Sorry, something went wrong" in bubble
        for shown in (result, bubble):
            for marker in (*TRACE_MARKERS, "chroma.sqlite3", "RuntimeError", "disk I/O"):
                assert marker not in shown, marker
        # The server log keeps the trace for the maintainer, not the person's question.
        assert "answering failed" in caplog.text and MARKER not in caplog.text
    finally:
        demo.close()


def test_a_bad_setting_is_one_line_without_a_trace(monkeypatch, capsys):
    assert run_cli(["ask", "What is CT0596?"], {"PCL_TOP_K": "lots"}, monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: PCL_TOP_K='lots' is not a whole number; use 1..50."]


def test_the_app_with_a_broken_corpus_and_no_index_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    import shutil

    from reliability_fixtures import CORPUS

    import app as app_module

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "trials" / "NCT06333509.json").write_text("{", encoding="utf-8")
    monkeypatch.setenv("PCL_CORPUS_DIR", str(corpus))
    monkeypatch.setenv("PCL_INDEX_DIR", str(tmp_path / "index"))
    with reusing_model():
        assert app_module.main(["--port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("Cannot start: ")
    assert "NCT06333509.json: field '(JSON)' is not valid JSON" in err


# ---------------------------------------------------------------- logs


def test_logs_hold_no_user_text_beyond_the_feedback_log(app, traffic):
    output = app.output()
    assert MARKER not in output, "the app log repeats what a person typed"
    for line in output.splitlines():
        assert "What is plasma cell leukemia?" not in line and "I have a fever" not in line
    ratings = [json.loads(line) for line in app.feedback_log.read_text(encoding="utf-8").splitlines()]
    rated = [r for r in ratings if MARKER in r["question"]]
    assert [r["question"] for r in rated] == [f"What is CT0596? {MARKER}-page"]
    assert set(rated[0]) == {"ts", "question", "kind", "sources", "rating"}  # nothing else kept
