"""The chat app without a browser: the `/chat` API on a real server, hardening, safe rendering.

The server is the real `python app.py` (real Companion, real index, real Gradio) started once per
session by `app_fixtures.app_server()`; the rendering tests feed hand-made replies whose source
text is hostile, which no real corpus sentence would let us check.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

import httpx
import pytest
from app_fixtures import AppServer, app_server
from gradio_client import Client

import app as app_module
from bot.interfaces import render, ui
from bot.reply import Citation, Reply
from bot.settings import Settings

DISCLAIMER = Settings().disclaimer


@pytest.fixture(scope="module")
def server() -> AppServer:
    return app_server()


@pytest.fixture(scope="module")
def client(server: AppServer) -> Client:
    return Client(server.url, verbose=False)


# ------------------------------------------------------------------ the /chat API


def test_article_question_gets_cited_answer_and_disclaimer(client: Client) -> None:
    text = client.predict("What is CT0596?", api_name="/chat")
    assert "[1]" in text
    assert "Sources:\n[1] " in text
    assert "healthtree.org" in text or "cancer.gov" in text
    assert "CT0596" in text.split("Sources:")[0]
    assert text.rstrip().endswith(DISCLAIMER)


def test_emergency_question_gets_emergency_guidance(client: Client) -> None:
    text = client.predict("I have a fever and confusion after CAR-T", api_name="/chat")
    assert text.startswith("**This may be an emergency. Get medical help now.**")
    assert "911" in text
    assert "Sources:" not in text  # guidance first and alone, no search results
    assert DISCLAIMER in text


@pytest.mark.parametrize("question", ui.EXAMPLES)
def test_every_example_question_gets_a_cited_answer(client: Client, question: str) -> None:
    text = client.predict(question, api_name="/chat")
    assert "[1]" in text.split("Sources:")[0], f"the example {question!r} is not answered: {text[:200]}"


def test_chat_is_the_only_public_endpoint(client: Client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/chat"}


def test_too_long_message_is_refused_by_the_server(client: Client) -> None:
    limit = Settings().safety.max_question_chars
    text = client.predict("What is PCL? " * (limit // 10), api_name="/chat")
    assert f"the limit is {limit:,}" in text
    assert "Sources:" not in text


def test_full_queue_answers_busy_and_the_admitted_requests_complete(server: AppServer) -> None:
    """More requests than the queue holds: the overflow is told so at once, the rest are answered."""
    call = server.url + "gradio_api/call/chat"

    def ask(_: int) -> httpx.Response:
        return httpx.post(call, json={"data": ["What happened to the two patients?"]}, timeout=60)

    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(ask, range(32)))
    busy = [r for r in responses if r.status_code == 503]
    admitted = [r for r in responses if r.status_code == 200]
    assert busy, "no request was turned away although the queue holds only a few"
    assert all("Queue is full" in r.json()["detail"] for r in busy)
    assert admitted
    for r in admitted:  # each admitted request still gets its whole answer
        result = httpx.get(f"{call}/{r.json()['event_id']}", timeout=60).text
        assert "event: complete" in result and "[1]" in result


def test_malformed_api_input_gets_no_stack_trace(server: AppServer) -> None:
    call = server.url + "gradio_api/call/chat"
    event = httpx.post(call, json={"data": [{"not": "text"}]}, timeout=30).json()["event_id"]
    result = httpx.get(f"{call}/{event}", timeout=30).text
    assert "Traceback" not in result and 'File "' not in result
    assert "Please type a question" in result


def test_page_is_english_and_serves_no_upload_or_share_link(server: AppServer) -> None:
    page = httpx.get(server.url, timeout=10).text
    assert '<html\n\tlang="en"' in page or 'lang="en"' in page[:300]
    config = httpx.get(server.url + "config", timeout=10).json()
    kinds = {c.get("type") for c in config["components"]}
    assert "chatbot" in kinds and not kinds & {"file", "uploadbutton", "image", "audio", "video"}
    assert not config.get("share_url")
    assert config["analytics_enabled"] is False
    assert config["show_error"] is False


def test_first_start_prints_progress_around_the_index_build(server: AppServer) -> None:
    out = server.output()
    assert "Loading the embedding model and the local index" in out
    assert re.search(r"Engine ready in \d+\.\d s\.", out)
    assert out.index("Loading") < out.index("Engine ready") < out.index("http://127.0.0.1:")


# ------------------------------------------------------------------ app.py options


def test_host_and_port_default_to_loopback_7860(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    args = app_module.parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 7860)


def test_gradio_variables_and_options_choose_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8123")
    args = app_module.parse_args([])
    assert (args.host, args.port) == ("0.0.0.0", 8123)
    assert app_module.parse_args(["--port", "9000", "--host", "::1"]).port == 9000


def test_bad_port_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        app_module.parse_args(["--port", "seventy"])
    assert "not a port number" in capsys.readouterr().err


def test_bad_setting_stops_the_app_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PCL_MAX_QUEUE", "lots")
    assert app_module.main(["--port", "7999"]) == 2
    assert "PCL_MAX_QUEUE" in capsys.readouterr().err


def test_launch_options_keep_the_app_closed() -> None:
    opts = ui.launch_options()
    assert opts["share"] is False and opts["show_error"] is False
    assert not opts["allowed_paths"]
    assert opts["ssr_mode"] is False and opts["mcp_server"] is False


# ------------------------------------------------------------------ rendering

HOSTILE = (
    'Intro <script>alert("x")</script> <img src=x onerror=alert(1)> ![pixel](https://evil.example/p.png) '
    "Cited sentence with [a link](javascript:alert(1)) and <b>tags</b>. Tail."
)


def _reply(kind: str = "answer", answer: str = "Cited sentence with tags. [1]", **cite) -> Reply:
    c = Citation(
        n=1,
        source_id="healthtree-allo-car-t-pcl",
        title='Title <i onmouseover="x">',
        url=cite.get("url", "https://healthtree.org/myeloma/community/articles/25-allo-car-t-for-pcl"),
        section="Section & more",
        quote="Cited sentence with [a link](javascript:alert(1)) and <b>tags</b>.",
        passage=HOSTILE,
        kind="article",
        sentences=("Cited sentence with [a link](javascript:alert(1)) and <b>tags</b>.",),
    )
    return Reply("q", answer, kind, (c,), DISCLAIMER, 1.0)


class _Tags(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))


def _assert_inert(html: str) -> None:
    """Only our small set of tags; no event handlers; links only to the web."""
    for tag, attrs in _Tags(html).tags:
        assert tag not in {"script", "img", "iframe", "style", "b", "i", "svg", "object"}, tag
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
        if "href" in attrs:
            assert attrs["href"].startswith("https://"), attrs


def test_source_text_cannot_inject_markup_scripts_or_remote_images() -> None:
    out = render.reply_html(_reply())
    _assert_inert(out)
    assert "evil.example" not in out  # an image becomes its description, never a request
    assert "&lt;script&gt;" in out  # shown as the text it is


def test_cited_sentence_is_highlighted_inside_its_passage_with_section_and_link() -> None:
    out = render.reply_html(_reply())
    mark = re.search(r"<mark>(.*?)</mark>", out)
    assert mark and mark.group(1).startswith("Cited sentence with")
    assert out.index("Intro") < out.index("<mark>") < out.index("Tail.")
    assert "Section &amp; more" in out
    assert "Read the original on healthtree.org" in out
    assert 'href="https://healthtree.org/myeloma/community/articles/25-allo-car-t-for-pcl"' in out
    assert 'rel="noopener noreferrer"' in out
    assert '<details class="pcl-sources"><summary>Sources (1)' in out
    assert '<span class="pcl-cite">[1]</span>' in out
    assert DISCLAIMER in out


def test_a_source_link_that_is_not_web_is_dropped() -> None:
    out = render.reply_html(_reply(url="javascript:alert(1)"))
    _assert_inert(out)
    assert "Read the original" not in out


def test_markers_without_a_citation_stay_plain_text() -> None:
    out = render.reply_html(_reply(answer="Fact. [1] Not a marker [7]."))
    assert out.count('class="pcl-cite"') == 2  # the answer's [1] and the source's [1]
    assert "[7]" in out


def test_reply_html_has_no_newlines_so_markdown_never_rereads_it() -> None:
    out = render.reply_html(_reply(answer="One. [1]\n\nTwo.\n- item [1]"))
    assert "\n" not in out
    assert "<ul><li>item" in out


def test_stream_shows_sentences_one_by_one_then_sources() -> None:
    reply = _reply(answer="First sentence. [1] Second sentence. [1]\n\nThird one. [1]")
    steps = list(render.stream_html(reply))
    assert len(steps) == 3  # two sentences on their own, then everything
    assert "First sentence. <span" in steps[0] and "Second" not in steps[0]  # marker with its sentence
    assert "Second sentence" in steps[1] and "Third" not in steps[1]
    assert "pcl-sources" not in steps[1] and DISCLAIMER not in steps[1]
    assert "Third one" in steps[-1] and "pcl-sources" in steps[-1] and DISCLAIMER in steps[-1]


def test_emergency_guidance_is_shown_whole_at_once_as_an_alert() -> None:
    reply = Reply("q", "**Get help now.** Call 911. Do not wait.", "emergency", (), DISCLAIMER, 1.0)
    [only] = list(render.stream_html(reply))
    assert only.startswith('<div class="pcl-reply pcl-kind-emergency pcl-emergency" role="alert">')
    assert "<strong>Get help now.</strong>" in only


def test_user_text_is_escaped_and_long_text_cut() -> None:
    out = render.user_html("<img src=x onerror=alert(1)>\n\n![a](https://evil.example/a.png)", 1000)
    _assert_inert(out)
    assert "&lt;img" in out
    assert "<br><br>" in out and "\n" not in out
    assert render.user_html("x" * 50, 10).endswith("xxxxxxxxxx…</div>")


class _BrokenCompanion:
    """Stands in for an engine that fails mid-answer (a corrupt index, a full disk)."""

    settings = Settings()

    def ask(self, question: str, history: object = None) -> Reply:
        raise RuntimeError("chroma: database disk image is malformed")


def test_engine_failure_becomes_a_plain_sentence_not_a_trace(tmp_path) -> None:
    from bot.interfaces.feedback import FeedbackLog

    cb = ui.ChatCallbacks(_BrokenCompanion(), FeedbackLog(tmp_path / "f.jsonl"))  # type: ignore[arg-type]
    *_, (_, chat, exchanges, _) = list(cb.respond("What is CT0596?", [], []))
    assert ui.SORRY in chat[-1]["content"]
    assert "malformed" not in chat[-1]["content"] and "Traceback" not in chat[-1]["content"]
    assert exchanges == []  # nothing to rate or to follow up on
