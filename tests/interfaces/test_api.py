"""The JSON API (`bot/interfaces/api.py`) on the real engine: contract, 4xx, limits, health.

In process through Starlette's test client (the session's real Companion: real ONNX models, real
index), plus one check on the real `python app.py`, where the API and the page share a server.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import httpx
import pytest
from fastapi.testclient import TestClient

from bot.interfaces.api import RateLimiter, create_api
from bot.settings import REPO_ROOT

CONTRACT_KEYS = [
    "question",
    "answer",
    "kind",
    "reason",
    "citations",
    "follow_ups",
    "disclaimer",
    "latency_ms",
    "mode",  # generated | extractive, and the generated sentences the guard dropped (additions)
    "dropped",
]


@pytest.fixture(scope="module")
def client(companion) -> TestClient:
    return TestClient(create_api(companion))


def _without_latency(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k != "latency_ms"}


def test_ask_returns_the_json_contract_of_the_cli(client, companion) -> None:
    got = client.post("/api/ask", json={"question": "What is CT0596?"})
    assert got.status_code == 200
    body = got.json()
    assert list(body) == CONTRACT_KEYS  # no id unless one was sent, as the CLI prints
    assert body["kind"] == "answer" and "[1]" in body["answer"]
    assert set(body["citations"][0]) == {"n", "source_id", "title", "url", "section", "quote"}
    assert _without_latency(body) == _without_latency(companion.ask("What is CT0596?").to_json())


def test_ask_matches_python_m_bot_ask_json(client) -> None:
    cli = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "--json", "What is CT0596?"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    printed = json.loads(cli.stdout)
    body = client.post("/api/ask", json={"question": "What is CT0596?"}).json()
    assert _without_latency(body) == _without_latency(printed)


def test_ask_echoes_the_id_and_resolves_a_follow_up_from_history(client) -> None:
    body = client.post(
        "/api/ask",
        json={
            "id": 42,
            "question": "Who can enroll in it?",
            "history": [{"role": "user", "content": "Tell me about CT071"}],
        },
    ).json()
    assert body["id"] == "42" and list(body)[0] == "id"
    assert body["kind"] in ("answer", "medical_advice")
    assert "CT071" in body["answer"] or any("NCT" in c["source_id"] for c in body["citations"])


def test_an_emergency_gets_guidance_not_an_error(client) -> None:
    body = client.post("/api/ask", json={"question": "I have a fever and confusion after CAR-T"}).json()
    assert body["kind"] == "emergency" and "911" in body["answer"] and body["citations"] == []


def test_a_too_long_question_is_answered_invalid_as_the_cli_does(client, settings) -> None:
    body = client.post("/api/ask", json={"question": "x" * (settings.safety.max_question_chars + 1)}).json()
    assert body["kind"] == "invalid" and body["reason"] == "too_long"


@pytest.mark.parametrize(
    ("payload", "status", "says"),
    [
        ('{"question": ', 400, "not valid JSON"),
        ("[1, 2]", 422, "must be a JSON object"),
        ("{}", 422, 'The field "question" is missing'),
        ('{"questoin": "What is CT0596?"}', 422, "question"),
        ('{"question": 5}', 422, 'The field "question" must be a string'),
        ('{"question": "hi", "history": "earlier"}', 422, "history must be a list of turns"),
        (
            '{"question": "hi", "history": [{"role": "bot", "content": "x"}]}',
            422,
            'role "user" or "assistant"',
        ),
        ('{"question": "hi", "id": [1]}', 422, 'The field "id" must be a string or a number'),
        ('{"question": "hi", "lang": "en"}', 422, 'The field "lang" is not part of the request'),
    ],
)
def test_a_bad_body_gets_a_4xx_that_says_what_to_send(client, payload, status, says) -> None:
    got = client.post("/api/ask", content=payload, headers={"content-type": "application/json"})
    assert got.status_code == status, got.text
    message = got.json()["error"]
    assert says in message, message
    assert "Traceback" not in got.text and "pydantic" not in got.text.lower()


def test_a_body_sent_without_json_content_type_is_told_so(client) -> None:
    got = client.post(
        "/api/ask", content="question=hi", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert got.status_code == 422
    assert "Content-Type: application/json" in got.json()["error"]


def test_a_too_large_body_gets_413_before_the_engine(companion, settings) -> None:
    small = TestClient(create_api(companion, settings.with_overrides(api_max_body_bytes=1000)))
    got = small.post("/api/ask", json={"question": "x" * 2000})
    assert got.status_code == 413 and "larger than 1,000 bytes" in got.json()["error"]

    def chunks():  # no Content-Length: counted while read
        yield b'{"question": "'
        for _ in range(40):
            yield b"x" * 100
        yield b'"}'

    got = small.post("/api/ask", content=chunks(), headers={"content-type": "application/json"})
    assert got.status_code == 413
    assert small.post("/api/ask", json={"question": "What is CT0596?"}).status_code == 200


def test_too_many_requests_from_one_address_get_429_with_retry_after(companion, settings) -> None:
    strict = TestClient(
        create_api(companion, settings.with_overrides(api_rate_per_minute=6, api_rate_burst=3))
    )
    codes = [strict.post("/api/ask", json={"question": "What is PCL?"}).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    got = strict.post("/api/ask", json={"question": "What is PCL?"})
    assert got.status_code == 429 and 1 <= int(got.headers["retry-after"]) <= 10
    assert "Too many requests" in got.json()["error"]
    assert strict.get("/api/health").status_code == 200  # health is never rate limited


def test_the_rate_refills_over_time() -> None:
    limiter = RateLimiter(per_minute=60, burst=2)
    assert [limiter.wait_needed("a", now=t) for t in (0.0, 0.0)] == [0.0, 0.0]
    assert limiter.wait_needed("a", now=0.0) == pytest.approx(1.0)
    assert limiter.wait_needed("b", now=0.0) == 0.0  # per address
    assert limiter.wait_needed("a", now=1.0) == 0.0


def test_health_reports_index_models_and_version(client, companion) -> None:
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["version"]
    assert body["index"]["fingerprint"] == companion.index.manifest["fingerprint"]
    assert body["index"]["chunks"] == companion.index.manifest["chunks"]
    assert body["models"]["runtime"] == "onnxruntime"
    assert body["models"]["embed"].startswith("embed-") and body["models"]["embed"].endswith(".onnx")
    assert body["models"]["safety"].startswith("safety-")
    assert body["index"]["encoder"] in body["models"]["embed"]
    assert {"calls", "batches", "largest_batch"} <= set(body["batching"]["embed"])


def test_openapi_docs_describe_the_api(client) -> None:
    spec = client.get("/api/openapi.json").json()
    assert {"/api/ask", "/api/health"} <= set(spec["paths"])
    ask = spec["paths"]["/api/ask"]["post"]
    assert {"200", "400", "413", "422", "429"} <= set(ask["responses"])
    assert client.get("/api/docs").status_code == 200


def test_the_real_app_serves_the_api_beside_the_page_and_chat() -> None:
    from app_fixtures import app_server  # the session's real `python app.py`
    from gradio_client import Client

    server = app_server()
    body = httpx.post(
        server.url + "api/ask", json={"question": "What is CT0596?", "id": "a"}, timeout=60
    ).json()
    assert body["id"] == "a" and body["kind"] == "answer"
    assert httpx.get(server.url + "api/health", timeout=30).json()["status"] == "ok"
    assert httpx.get(server.url, timeout=30).status_code == 200  # the page
    text = Client(server.url, verbose=False).predict("What is CT0596?", api_name="/chat")
    assert "[1]" in text


def test_the_mounted_page_keeps_at_most_the_configured_number_of_sessions(companion, settings) -> None:
    """Each /chat call is a Gradio session; the page keeps nothing in them, so only a few hundred
    are kept (Gradio's default, 10,000, grew the app by ~16 kB per call)."""
    from starlette.routing import Mount

    from bot.interfaces.api import mount_page
    from bot.interfaces.ui import build, launch_options

    bot = copy.copy(companion)  # the same engine, read with another setting
    bot.settings = settings.with_overrides(app_session_capacity=20)
    app = mount_page(create_api(bot), build(bot), launch_options())
    page = next(r.app for r in app.routes if isinstance(r, Mount))
    holder = page.state_holder
    assert holder.capacity == 20
    for i in range(50):  # what Gradio does for every call: a session's state, then its update
        holder[f"call-{i}"]
        holder.update(f"call-{i}")
    assert len(holder.session_data) == 20 and "call-49" in holder and "call-0" not in holder
