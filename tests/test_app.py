"""The chat app without a browser: the `/chat` API and the page's own endpoints on a real
server, hardening, safe rendering.

The server is the real `python app.py` (real Companion, real index, real Gradio) started once per
session by `app_fixtures.app_server()`; the rendering tests feed hand-made replies whose source
text is hostile, which no real corpus sentence would let us check.
"""

from __future__ import annotations

import html
import json
import re
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

import httpx
import pytest
from app_fixtures import AppServer, app_server
from gradio_client import Client

import app as app_module
from bot.interfaces import render, ui
from bot.interfaces.feedback import FeedbackLog
from bot.reply import Action, Citation, Framing, Notice, Quote, Reply
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
    assert text.startswith("This may be an emergency. Get medical help now.")
    assert "911" in text
    assert "Sources:" not in text  # guidance first and alone, no search results
    assert Settings().disclaimer_for("emergency") in text  # worded for its kind: nothing is cited


@pytest.mark.parametrize("question", ui.EXAMPLES)
def test_every_example_question_gets_a_cited_answer(client: Client, question: str) -> None:
    text = client.predict(question, api_name="/chat")
    assert "[1]" in text.split("Sources:")[0], f"the example {question!r} is not answered: {text[:200]}"


def test_chat_is_the_only_public_endpoint(client: Client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/chat"}
    # The page's own endpoints are callable (the page calls them) but not offered to API clients.
    config = client.config
    page_deps = {d["api_name"]: d["api_visibility"] for d in config["dependencies"] if d.get("api_name")}
    assert page_deps == {"respond": "undocumented", "rate": "undocumented", "chat": "public"}


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


def test_page_is_english_and_serves_no_upload_share_link_or_api_footer(server: AppServer) -> None:
    page = httpx.get(server.url, timeout=10).text
    assert '<html\n\tlang="en"' in page or 'lang="en"' in page[:300]
    config = httpx.get(server.url + "config", timeout=10).json()
    kinds = {c.get("type") for c in config["components"]}
    assert "html" in kinds and not kinds & {"file", "uploadbutton", "image", "audio", "video"}
    assert not config.get("share_url")
    assert config["analytics_enabled"] is False
    assert config["show_error"] is False
    assert config["footer_links"] == []  # no "Use via API" for patients (the README documents /chat)
    shell = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "pcl-shell")
    assert 'id="pcl-app"' in shell["props"]["value"]


def test_first_start_prints_progress_around_the_index_build(server: AppServer) -> None:
    out = server.output()
    assert "Loading the embedding model and the local index" in out
    assert re.search(r"Engine ready in \d+\.\d s\.", out)
    assert out.index("Loading") < out.index("Engine ready") < out.index("http://127.0.0.1:")


# ------------------------------------------------------------------ the page's own endpoints


def _respond(server: AppServer, message, history=None, turn="t1") -> dict:
    call = server.url + "gradio_api/call/respond"
    posted = httpx.post(call, json={"data": [message, history or [], turn]}, timeout=60)
    assert posted.status_code == 200, posted.text
    text = httpx.get(f"{call}/{posted.json()['event_id']}", timeout=120).text
    assert "event: complete" in text, text[-500:]
    return json.loads(re.findall(r"^data: (.*)$", text, re.M)[-1])[0]


def _rate(server: AppServer, rating: dict, value: str) -> str:
    call = server.url + "gradio_api/call/rate"
    posted = httpx.post(call, json={"data": [rating, value]}, timeout=60)
    text = httpx.get(f"{call}/{posted.json()['event_id']}", timeout=60).text
    return json.loads(re.findall(r"^data: (.*)$", text, re.M)[-1])[0]


def test_respond_gives_the_bubble_and_what_the_page_needs_around_it(server: AppServer) -> None:
    out = _respond(server, "What is CT0596?", turn="t7")
    assert out["kind"] == "answer" and out["turn"] == "t7"
    assert 'href="#pcl-src-t7-1"' in out["html"] and 'id="pcl-src-t7-1"' in out["html"]
    assert "[1]" in out["answer"] and "CT0596" in out["plain"]
    assert out["sources"].startswith("[1] ") and "https://" in out["sources"]
    assert DISCLAIMER not in out["html"]  # shown once at the top of the page instead
    assert out["note"] == render.note("answer") and out["note"] in out["html"]
    assert 2 <= len(out["follow_ups"]) <= 3 and all(q.endswith("?") for q in out["follow_ups"])
    assert set(out["rating"]) == {"question", "kind", "sources", "sig"}
    _assert_inert(out["html"])


def test_respond_resolves_a_follow_up_with_the_history_the_page_sends(server: AppServer) -> None:
    first = _respond(server, "What happened to patient 1?")
    history = [
        {"role": "user", "content": "What happened to patient 1?"},
        {"role": "assistant", "content": first["answer"]},
        {"role": "x", "content": 3},  # malformed turns are ignored
    ]
    follow = _respond(server, "What about the second one?", history)
    alone = _respond(server, "What about the second one?")
    assert "Patient 2" in follow["plain"] and follow["plain"] != alone["plain"]


def test_respond_offers_the_parts_a_several_question_message_left_out(server: AppServer) -> None:
    asked = [
        "What is CT0596?",
        "Who makes CT071?",
        "What is median overall survival?",
        "Who wrote the article?",
    ]
    out = _respond(server, " ".join(asked))  # more parts than one reply answers
    assert out["questions"] == 4
    assert out["ask_separately"] and set(out["ask_separately"]) <= set(asked)
    assert _respond(server, "What is CT0596?")["ask_separately"] == []


def test_respond_refuses_a_too_long_message_and_odd_input_plainly(server: AppServer) -> None:
    limit = Settings().safety.max_question_chars
    out = _respond(server, "What is PCL? " * (limit // 10))
    assert out["kind"] == "invalid" and f"the limit is {limit:,}" in out["html"]
    odd = _respond(server, {"not": "text"}, history="nonsense", turn="<script>")
    assert odd["kind"] == "invalid" and odd["turn"] == "t0"
    _assert_inert(odd["html"])


def test_a_rating_needs_an_answer_this_server_gave(server: AppServer) -> None:
    log = FeedbackLog(server.feedback_log)
    before = len(log.read())
    rating = _respond(server, "What is plasma cell leukemia?")["rating"]
    assert _rate(server, rating, "up") == "Thank you, your rating was saved."
    assert log.read()[-1]["question"] == "What is plasma cell leukemia?" and log.read()[-1]["rating"] == "up"
    forged = rating | {"kind": "emergency"}
    assert "can no longer be rated" in _rate(server, forged, "down")
    assert "could not be read" in _rate(server, rating, "love it")
    assert len(log.read()) == before + 1


def test_the_page_shell_holds_the_disclaimer_once_and_valid_settings() -> None:
    settings = Settings()
    shell = ui.shell_html(settings)
    body = re.sub(r'data-config="[^"]*"', "", shell)
    assert body.count(html.escape(settings.disclaimer)) == 2  # the banner, and the printed page's header
    assert "{{" not in shell and "${" not in shell  # Gradio's HTML templating must leave it alone
    config = json.loads(html.unescape(re.search(r'data-config="([^"]+)"', shell).group(1)))
    assert config["maxChars"] == settings.safety.max_question_chars
    assert config["examples"] == list(ui.EXAMPLES)
    assert "maxlength" not in shell  # long input is counted and warned, never cut


def test_split_questions_and_clean_turns() -> None:
    assert ui.split_questions("What is CT0596? Who can join CT071?") == [
        "What is CT0596?",
        "Who can join CT071?",
    ]
    assert ui.split_questions("What is CT0596?") == ["What is CT0596?"]
    assert ui.split_questions("Is it safe? ok? What is CT071?") == ["Is it safe?", "What is CT071?"]
    turns = ui.clean_turns(
        [{"role": "user", "content": "x" * 9000}, "junk", {"role": "system", "content": "y"}], 1000
    )
    assert turns == [{"role": "user", "content": "x" * 4000}]
    assert ui.clean_turns("nonsense", 1000) == []
    assert len(ui.clean_turns([{"role": "user", "content": "q"}] * 100, 1000)) == ui.MAX_HISTORY_MESSAGES


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
    assert opts["footer_links"] == []
    assert opts["js"].startswith("() => {") and "pclReady" in opts["js"]
    assert opts["head"].startswith("<style>") and "#pcl-app" in opts["head"]


# ------------------------------------------------------------------ rendering

HOSTILE = (
    'Intro <script>alert("x")</script> <img src=x onerror=alert(1)> ![pixel](https://evil.example/p.png) '
    "Cited sentence with [a link](javascript:alert(1)) and <b>tags</b>. Tail."
)
CITED = "Cited sentence with [a link](javascript:alert(1)) and <b>tags</b>."


def _citation(n: int = 1, kind: str = "article", **extra) -> Citation:
    return Citation(
        n=n,
        source_id="glossary" if kind == "glossary" else "healthtree-allo-car-t-pcl",
        title=extra.get("title", 'Title <i onmouseover="x">'),
        url=extra.get("url", "https://healthtree.org/myeloma/community/articles/25-allo-car-t-for-pcl"),
        section=extra.get("section", "Section & more"),
        quote=CITED,
        passage=HOSTILE,
        kind=kind,
        sentences=(CITED,),
    )


def _reply(kind: str = "answer", parts=None, citations=None, **cite) -> Reply:
    parts = parts if parts is not None else (Quote(CITED, 1),)
    citations = citations if citations is not None else (_citation(**cite),)
    return Reply("q", tuple(parts), kind, tuple(citations), DISCLAIMER, 1.0)


class _Tags(HTMLParser):
    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))


def _assert_inert(markup: str) -> None:
    """Only our small set of tags; no event handlers; links to the web, a phone, or a card here."""
    ids = {attrs["id"] for _, attrs in _Tags(markup).tags if "id" in attrs}
    for tag, attrs in _Tags(markup).tags:
        assert tag not in {"script", "img", "iframe", "style", "b", "i", "svg", "object"}, tag
        assert not any(a.startswith("on") or a in {"src", "style"} for a in attrs), (tag, attrs)
        href = attrs.get("href")
        if href is None:
            continue
        if href.startswith("#"):
            assert href[1:] in ids, f"{href} points to no card of this bubble"
        else:
            assert href.startswith("https://") or re.fullmatch(r"(tel|sms):\d{3,15}", href), attrs


def test_source_text_cannot_inject_markup_scripts_or_remote_images() -> None:
    out = render.reply_html(_reply())
    _assert_inert(out)
    assert "evil.example" not in out  # an image becomes its description, never a request
    assert "&lt;script&gt;" in out  # shown as the text it is


def test_each_marker_is_a_link_to_its_compact_card_with_title_section_quote_and_link() -> None:
    out = render.reply_html(_reply(), turn="t4")
    assert (
        '<a class="pcl-cite" href="#pcl-src-t4-1" data-n="1" aria-label="Source 1, the article"' in out
        and ">[1]</a>" in out
    )
    card = re.search(r'<li class="pcl-card pcl-card-article" id="pcl-src-t4-1".*?</li>', out).group(0)
    assert "<summary>" in card and "Article · section “Section &amp; more”" in card
    assert 'Title &lt;i onmouseover="x"&gt;' in card or "Title &lt;i onmouseover=&quot;x&quot;&gt;" in card
    mark = re.search(r'<blockquote class="pcl-card-quote"><mark>(.*?)</mark>', card)
    assert mark and mark.group(1).startswith("Cited sentence with")
    assert "Read the original article on healthtree.org" in card and 'target="_blank"' in card
    assert 'rel="noopener noreferrer"' in card
    assert "Show the passage around it" in card  # the whole passage is one tap further
    passage = re.search(r'<blockquote class="pcl-passage">(.*?)</blockquote>', card).group(1)
    assert passage.index("Intro") < passage.index("<mark>") < passage.index("Tail.")


def test_only_the_cited_sources_get_a_card() -> None:
    cited, unused = _citation(1), _citation(2, title="Unused")
    out = render.reply_html(_reply(citations=(cited, unused)))
    assert 'id="pcl-src-t0-1"' in out and 'id="pcl-src-t0-2"' not in out and "Unused" not in out


def test_a_glossary_card_says_it_is_the_apps_own_glossary() -> None:
    gloss = _citation(1, kind="glossary", section="Off-the-shelf CAR-T", url="https://www.cancer.gov/x")
    out = render.reply_html(_reply(citations=(gloss,)))
    assert 'aria-label="Source 1, the app&#x27;s glossary"' in out or "Source 1, the app's glossary" in out
    assert "Glossary · Off-the-shelf CAR-T" in out
    assert "this app’s own plain-language glossary" in out and "not part of the article" in out
    assert "Public reference for this term on cancer.gov" in out


def test_a_source_link_that_is_not_web_is_dropped() -> None:
    out = render.reply_html(_reply(url="javascript:alert(1)"))
    _assert_inert(out)
    assert "Read the original" not in out


def test_markers_without_a_citation_are_not_links() -> None:
    out = render.reply_html(_reply(parts=(Quote("Fact.", 1), Quote("Other.", 7))))
    assert out.count('class="pcl-cite"') == 1
    assert "#pcl-src-t0-7" not in out


def test_reply_html_has_no_newlines_and_keeps_lists() -> None:
    parts = (Quote("One.", 1), Framing("Also:"), Quote("item", 1, block=1, list_item=True))
    out = render.reply_html(_reply(parts=parts))
    assert "\n" not in out
    assert '<ul><li>item <a class="pcl-cite"' in out


def test_emergency_guidance_is_an_alert_with_call_and_text_buttons_and_its_own_note() -> None:
    notice = Notice(
        "Please call or text 988 now.",
        headline="I'm glad you told me.",
        tone="urgent",
        actions=(
            Action("call", "988", "Call 988"),
            Action("text", "988", "Text 988"),
            Action("call", "911", "Call 911"),
        ),
    )
    out = render.reply_html(_reply("emergency", parts=(notice,), citations=()), emergency_number="911")
    _assert_inert(out)
    assert out.startswith('<div class="pcl-reply pcl-kind-emergency pcl-emergency" role="alert">')
    assert (
        "<strong>I&#x27;m glad you told me.</strong>" in out
        or "<strong>I'm glad you told me.</strong>" in out
    )
    assert 'href="tel:988"' in out and 'href="sms:988"' in out and 'href="tel:911"' in out
    assert "pcl-sources" not in out
    note = re.search(r'<p class="pcl-note">(.*?)</p>', out).group(1)
    assert "cited" not in note and "article" not in note and "911" in note


@pytest.mark.parametrize(
    "kind", ["answer", "medical_advice", "not_found", "out_of_scope", "support", "emergency"]
)
def test_the_note_under_a_reply_fits_its_kind(kind: str) -> None:
    note = render.note(kind, "112")
    assert note and len(note) < 110 and DISCLAIMER not in note
    assert ("cited" not in note) or kind == "answer"
    if kind in ("emergency", "support"):
        assert "112" in note


def test_user_text_is_escaped_and_long_text_says_it_was_cut() -> None:
    out = render.user_html("<img src=x onerror=alert(1)>\n\n![a](https://evil.example/a.png)", 1000)
    _assert_inert(out)
    assert "&lt;img" in out
    assert "<br><br>" in out and "\n" not in out
    assert render.user_html("x" * 50, 10).endswith("(… 40 more characters not shown)</em></div>")


class _BrokenCompanion:
    """Stands in for an engine that fails mid-answer (a corrupt index, a full disk)."""

    settings = Settings()

    def ask(self, question: str, history: object = None) -> Reply:
        raise RuntimeError("chroma: database disk image is malformed")


def test_engine_failure_becomes_a_plain_sentence_not_a_trace(tmp_path) -> None:
    cb = ui.ChatCallbacks(_BrokenCompanion(), FeedbackLog(tmp_path / "f.jsonl"))  # type: ignore[arg-type]
    out = cb.respond("What is CT0596?", [], "t1")
    assert out["kind"] == "error" and ui.SORRY in out["html"]
    assert "malformed" not in json.dumps(out) and "Traceback" not in json.dumps(out)
    assert not out["answer"]  # nothing to rate or to follow up on


def test_malloc_growth_is_limited_before_the_server_starts() -> None:
    """glibc: two arenas at most and large blocks mapped on their own, unless the environment
    already says otherwise (then it is left alone)."""
    import subprocess
    import sys

    code = "import app; print(app.limit_malloc_growth())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
