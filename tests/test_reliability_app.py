"""The chat endpoint and the page, fuzzed on the real app (`python app.py` on 127.0.0.1).

`/chat` (what `gradio_client.Client(url).predict(msg, api_name="/chat")` calls) must answer any
text with a reply that ends with the disclaimer and shows no trace; the page's own send event
must show bubbles with nothing executable or remote-loading in them.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from gradio_client import Client
from hypothesis import HealthCheck, given, settings
from reliability_fixtures import TRACE_MARKERS, VALID_KINDS, PageSession, assert_inert, guarded_app
from test_reliability_input_fuzz import HOSTILE, messages

from bot.interfaces import render
from bot.settings import Settings

DISCLAIMERS = {Settings().disclaimer_for(kind) for kind in VALID_KINDS}  # worded per kind


@pytest.fixture(scope="module")
def app(companion, settings):
    return guarded_app(str(settings.index.index_dir))


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


@pytest.fixture(scope="module")
def page(app):
    with httpx.Client(timeout=120) as http:
        config = http.get(app.url + "config").json()
        yield lambda: PageSession(app.url, http, config)


def assert_clean_text(text: str) -> None:
    assert any(text.rstrip().endswith(d) for d in DISCLAIMERS), text[-300:]
    for marker in TRACE_MARKERS:
        assert marker not in text, marker


def call_chat(app, value) -> tuple[str, str]:
    """POST /gradio_api/call/chat with any JSON value (ASCII-escaped, so lone surrogates too);
    returns (event, data) of the result stream."""
    call = app.url + "gradio_api/call/chat"
    body = json.dumps({"data": [value]}).encode()
    posted = httpx.post(call, content=body, headers={"Content-Type": "application/json"}, timeout=60)
    result = httpx.get(f"{call}/{posted.json()['event_id']}", timeout=120).text
    for marker in TRACE_MARKERS:
        assert marker not in result, marker
    event = re.findall(r"^event: (\w+)", result, re.M)[-1]
    data = re.findall(r"^data: (.*)$", result, re.M)[-1]
    return event, data


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(message=messages.map(lambda m: m.encode("utf-8", "replace").decode("utf-8")))
def test_chat_endpoint_answers_any_text(client, message):
    """Through gradio_client, the documented way (it cannot send lone surrogates: see below)."""
    assert_clean_text(client.predict(message, api_name="/chat"))


@pytest.mark.parametrize(
    "message",
    HOSTILE
    + ["", " \n ", "\x00\x01", "What is CT0596? " * 700, "🧬" * 2000, "\u202eCT0596 si tahW"]
    + ["What is CT0596? \udcff", "\ud83e\udd2f is CT0596 safe?", "\ud83e"],
)
def test_chat_endpoint_answers_odd_text(app, message):
    event, data = call_chat(app, message)
    assert event == "complete", data
    assert_clean_text(json.loads(data)[0])


@pytest.mark.parametrize("value", [None, 42, ["What is CT0596?"], {"text": "What is CT0596?"}, True])
def test_chat_endpoint_refuses_non_text_plainly(app, value):
    event, data = call_chat(app, value)
    assert event == "complete", data
    assert "Please type a question" in data


PAGE_MESSAGES = [
    *HOSTILE,
    "What is CT0596? <img src=https://evil.example/p.png>",
    "What is CT0596? ![x](https://evil.example/p.png) [more](https://evil.example)",
    "**What** is `CT0596`? <details open><summary>x</summary></details>",
    "\u202eWhat is CT0596?",
    pytest.param("What is CT0596? \udcff", id="lone_surrogate"),
]


@pytest.mark.parametrize("message", PAGE_MESSAGES)
def test_page_bubbles_are_inert(page, message):
    tab = page()
    done = tab.ask(message)
    assert done.get("msg") == "process_completed" and done.get("success"), done
    bubbles = tab.bubbles()
    assert len(bubbles) == 2
    for bubble in bubbles:
        assert_inert(bubble)
        assert 'href="https://evil.example' not in bubble
    assert render.note(tab.turns[-1]["payload"]["kind"]) in bubbles[1]


def test_app_is_still_healthy(app, client):
    assert app.alive()
    assert "[1]" in client.predict("What is CT0596?", api_name="/chat")
