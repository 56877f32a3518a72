"""The chat page in a real headless Chromium against the real app, at phone and desktop sizes.

Debian's /usr/bin/chromium driven by Playwright (never `playwright install`). Without it the
tests skip with the reason, except on CI (CI=true), where a missing browser is a failure.
Screenshots and the measured timings land in test-artifacts/ for a maintainer to look at.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from app_fixtures import ARTIFACTS, AppServer, app_server, record_timing
from gradio_client import Client

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # _chromium_or_skip reports it
    PlaywrightTimeout = TimeoutError

from bot.interfaces import ui
from bot.interfaces.feedback import FeedbackLog
from bot.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
DISCLAIMER = Settings().disclaimer
ANSWER_TIMEOUT_MS = 60_000

# In-page stopwatch: from the Enter key (or the click) to the first answer text and to the whole
# answer (its disclaimer line), measured by the browser itself, not by the test's round trips.
STOPWATCH = """
() => {
  const before = document.querySelectorAll('#pcl-chat .pcl-reply:not(.pcl-pending)').length;
  const t = (window.__pcl_t = {});
  const start = () => { if (t.submit === undefined) t.submit = performance.now(); };
  document.addEventListener('keydown', (e) => { if (e.key === 'Enter') start(); }, {capture: true, once: true});
  document.addEventListener('click', start, {capture: true, once: true});
  const watch = () => {
    const replies = document.querySelectorAll('#pcl-chat .pcl-reply:not(.pcl-pending)');
    if (t.first === undefined && replies.length > before && replies[replies.length - 1].innerText.trim()) {
      t.first = performance.now();
    }
    if (t.full === undefined && replies.length > before && replies[replies.length - 1].querySelector('.pcl-disclaimer')) {
      t.full = performance.now();
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(watch);
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


def _chromium_or_skip() -> None:
    reason = None
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} not found; install Debian's chromium (scripts/install-test-deps.sh)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = 'playwright is not installed; run pip install -e ".[dev]"'
    if reason and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run on CI: {reason}")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def server() -> AppServer:
    return app_server()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def phone(browser, server: AppServer) -> Iterator[object]:
    yield from _page(browser, server, PHONE)


@pytest.fixture
def desktop(browser, server: AppServer) -> Iterator[object]:
    yield from _page(browser, server, DESKTOP)


def _page(browser, server: AppServer, viewport: dict) -> Iterator[object]:
    context = browser.new_context(viewport=viewport, device_scale_factor=1, color_scheme="light")
    page = context.new_page()
    page.requested = []  # every URL the page asks for, to prove it stays on this machine
    page.app_server = server  # its log explains a failed answer
    page.on("request", lambda r: page.requested.append(r.url))
    page.goto(server.url)
    page.wait_for_selector("html[data-pcl-ready]")  # events bound: a question typed now is sent
    yield page
    context.close()


def _ask(page, question: str, via: str = "enter") -> dict:
    """Type and submit a question; wait for its whole answer; return the in-page timings (ms)."""
    page.evaluate(STOPWATCH)
    box = page.get_by_label("Your question")
    box.fill(question)
    if via == "enter":
        box.press("Enter")
    else:
        page.get_by_role("button", name="Send").click()
    try:
        page.wait_for_function(
            "() => window.__pcl_t && window.__pcl_t.full !== undefined", timeout=ANSWER_TIMEOUT_MS
        )
    except PlaywrightTimeout:
        slug = re.sub(r"\W+", "-", question)[:40]
        shot = ARTIFACTS / f"failed-{slug}.png"
        page.screenshot(path=str(shot), full_page=True)
        pytest.fail(
            f"no whole answer to {question!r} within {ANSWER_TIMEOUT_MS / 1000:.0f} s; the box holds "
            f"{box.input_value()!r}; the chat ends {page.locator('#pcl-chat').inner_text()[-300:]!r}; see {shot}\n"
            f"app log (end):\n{page.app_server.output()[-3000:]}"
        )
    t = page.evaluate("window.__pcl_t")
    return {
        "first_text_s": (t["first"] - t["submit"]) / 1000,
        "full_answer_s": (t["full"] - t["submit"]) / 1000,
    }


def _last_reply(page):
    return page.locator("#pcl-chat .pcl-reply").last


def _fits_width(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_answer_shows_citation_sources_and_disclaimer_without_sideways_scroll(
    size: str, request: pytest.FixtureRequest
) -> None:
    page = request.getfixturevalue(size)
    timings = _ask(page, "What is CT0596?")
    for name, value in timings.items():
        record_timing(f"{size}_submit_to_{name}", value)

    reply = _last_reply(page)
    assert reply.locator(".pcl-cite", has_text="[1]").first.is_visible()
    assert "CT0596" in reply.inner_text()
    summary = reply.locator(".pcl-sources summary")
    assert summary.is_visible() and summary.inner_text().startswith("Sources (")
    assert reply.locator(".pcl-disclaimer").is_visible()
    assert reply.locator(".pcl-disclaimer").inner_text() == DISCLAIMER
    assert page.locator(".pcl-banner").is_visible()  # the persistent one under the title

    summary.click()  # open Sources: passage, highlighted sentence, section, link
    source = reply.locator(".pcl-source").first
    assert source.locator("mark").first.is_visible()
    assert "section" in source.locator(".pcl-source-head").inner_text()
    link = source.locator(".pcl-link a")
    assert link.get_attribute("href").startswith("https://")
    assert link.get_attribute("target") == "_blank"

    assert _fits_width(page), "the page scrolls sideways"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"chat-{size}-{page.viewport_size['width']}.png"), full_page=True)
    foreign = {
        urlparse(u).hostname for u in page.requested if urlparse(u).scheme in ("http", "https", "ws", "wss")
    }
    assert foreign <= {"127.0.0.1"}, f"the page reached off the machine: {foreign}"


def test_emergency_reply_comes_first_in_a_red_alert_box(phone) -> None:
    _ask(phone, "I have a fever and confusion after CAR-T", via="click")
    alert = _last_reply(phone)
    assert alert.get_attribute("role") == "alert"
    assert alert.is_visible()
    first_line = alert.locator("p").first.inner_text()
    assert "URGENT" in first_line.upper()
    assert alert.locator("p").nth(1).inner_text().startswith("This may be an emergency")
    assert "911" in alert.inner_text()
    border = alert.evaluate("e => getComputedStyle(e).borderTopColor")
    assert border == "rgb(185, 28, 28)"
    assert alert.locator(".pcl-sources").count() == 0
    call = alert.get_by_role("link", name="Call 911")  # one tap dials from a phone
    assert call.get_attribute("href") == "tel:911"
    box = call.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= 44
    phone.screenshot(path=str(ARTIFACTS / "chat-phone-emergency.png"))


def test_rating_an_answer_in_the_page_lands_in_the_log(phone, server: AppServer) -> None:
    log = FeedbackLog(server.feedback_log)
    before = len(log.read())
    _ask(phone, "What is plasma cell leukemia?")
    phone.locator("#pcl-chat").get_by_role("button", name="Like", exact=True).last.click()
    phone.get_by_text("Thank you, your rating was saved.").wait_for()
    entries = log.read()
    assert len(entries) == before + 1
    entry = entries[-1]
    assert set(entry) == {"ts", "question", "kind", "sources", "rating"}
    assert entry["question"] == "What is plasma cell leukemia?"
    assert (entry["kind"], entry["rating"]) == ("answer", "up")
    assert entry["sources"] and all(isinstance(s, str) for s in entry["sources"])

    phone.locator("#pcl-chat").get_by_role("button", name="Dislike", exact=True).last.click()
    deadline = time.monotonic() + 30
    while len(log.read()) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log.read()[-1]["rating"] == "down"


def _answer_words(text: str) -> str:
    """An answer's words without Markdown or layout, to compare the page with the API."""
    text = re.sub(r"(^|\n)\s*- ", r"\1", text.replace("**", ""))
    return " ".join(text.split())


def _page_answer(page) -> str:
    return _answer_words(
        _last_reply(page).evaluate(
            "e => [...e.children].filter((c) => !c.matches('.pcl-sources, .pcl-disclaimer'))"
            ".map((c) => c.innerText).join(' ')"
        )
    )


def _api_answer(server: AppServer, question: str) -> str:
    """The same question asked on its own, with no conversation before it."""
    text = Client(server.url, verbose=False).predict(question, api_name="/chat")
    return _answer_words(text.removesuffix(DISCLAIMER).split("\n\nSources:\n")[0])


def test_follow_up_question_uses_the_conversation(phone, server: AppServer) -> None:
    _ask(phone, "What happened to patient 1?")
    _ask(phone, "What about the second one?")
    follow_up = _page_answer(phone)
    assert "Patient 2" in follow_up
    assert follow_up != _api_answer(server, "What about the second one?")  # the history made the difference


def test_examples_greet_a_first_visit_and_new_chat_forgets_the_conversation(phone, server: AppServer) -> None:
    examples = phone.locator("#pcl-chat button.example")
    assert [examples.nth(i).inner_text() for i in range(examples.count())] == list(ui.EXAMPLES)
    phone.get_by_role("button", name="Select example 2: What is CT0596?").click()
    phone.wait_for_function(
        "() => document.querySelectorAll('#pcl-chat .pcl-disclaimer').length === 1", timeout=ANSWER_TIMEOUT_MS
    )
    assert phone.locator("#pcl-chat .pcl-user").first.inner_text() == "What is CT0596?"
    assert _page_answer(phone) == _api_answer(server, "What is CT0596?")
    assert examples.count() == 0  # examples make way for the conversation

    alone = _api_answer(server, "What about the second one?")
    _ask(phone, "What happened to patient 1?")
    phone.get_by_role("button", name="New chat").click()
    phone.wait_for_function("() => document.querySelectorAll('#pcl-chat .pcl-reply').length === 0")
    assert examples.count() == len(ui.EXAMPLES)
    _ask(phone, "What about the second one?")
    assert _page_answer(phone) == alone  # as if asked first: the old history is gone

    _ask(phone, "What happened to patient 1?")  # the chat's own bin icon forgets the history too
    phone.locator("#pcl-chat").get_by_role("button", name="Clear", exact=True).click()
    phone.wait_for_function("() => document.querySelectorAll('#pcl-chat .pcl-reply').length === 0")
    _ask(phone, "What about the second one?")
    assert _page_answer(phone) == alone


def test_typed_html_and_markdown_are_shown_as_text(phone) -> None:
    hostile = '<img src=x onerror="window.__pwned=1"><b>bold</b> ![p](http://127.0.0.2:9/p.png)'
    _ask(phone, hostile)
    bubble = phone.locator("#pcl-chat .pcl-user").last
    assert bubble.inner_text() == hostile
    assert phone.locator("#pcl-chat .message-content img").count() == 0
    assert phone.locator("#pcl-chat .pcl-user b").count() == 0
    assert phone.evaluate("window.__pwned === undefined")
    assert not [u for u in phone.requested if "127.0.0.2" in u]


def test_phone_page_is_readable_and_easy_to_tap(phone) -> None:
    _ask(phone, "What is CT0596?")
    assert phone.evaluate("document.documentElement.lang") == "en"
    textbox = phone.get_by_label("Your question")
    assert textbox.evaluate("e => e.maxLength") == Settings().safety.max_question_chars
    small = phone.evaluate(
        """() => [...document.querySelectorAll(
              '#pcl-chat .pcl-reply p, #pcl-chat .pcl-user, textarea, button, summary, .pcl-banner, .pcl-privacy')]
            .filter((e) => e.offsetParent !== null)
            .map((e) => [e.tagName + '.' + e.className, parseFloat(getComputedStyle(e).fontSize)])
            .filter(([, size]) => size < 16)"""
    )
    assert small == [], f"text under 16px on a phone: {small}"
    tiny = phone.evaluate(
        """() => [...document.querySelectorAll('button, summary, textarea, a')]
            .filter((e) => e.offsetParent !== null && getComputedStyle(e).visibility !== 'hidden')
            .map((e) => [e.getAttribute('aria-label') || e.innerText.slice(0, 30), e.getBoundingClientRect()])
            .filter(([, r]) => r.width > 0 && (r.height < 44 || r.width < 44))
            .map(([name, r]) => [name, Math.round(r.width), Math.round(r.height)])"""
    )
    assert tiny == [], f"tap targets under 44px: {tiny}"
    unnamed = phone.evaluate(
        """() => [...document.querySelectorAll('button, textarea, input')]
            .filter((e) => e.offsetParent !== null)
            .filter((e) => !(e.getAttribute('aria-label') || e.innerText.trim() || e.labels?.length || e.title))
            .map((e) => e.outerHTML.slice(0, 80))"""
    )
    assert unnamed == [], f"controls without a name: {unnamed}"
    for selector in (".pcl-banner", "#pcl-send", ".pcl-sources summary", ".pcl-disclaimer", ".pcl-cite"):
        ratio = _contrast(phone, selector)
        assert ratio >= 4.5, f"{selector} contrast {ratio:.2f} < 4.5"
    assert _fits_width(phone)


def test_text_keeps_its_contrast_in_dark_mode(browser, server: AppServer) -> None:
    context = browser.new_context(viewport=PHONE, color_scheme="dark")
    page = context.new_page()
    page.app_server = server
    try:
        page.goto(server.url)
        page.wait_for_selector("html[data-pcl-ready]")
        assert _contrast(page, "#pcl-chat button.example") >= 4.5
        _ask(page, "I have chest pain")
        _ask(page, "What is CT0596?")
        _last_reply(page).locator(".pcl-sources summary").click()
        for selector in (
            ".pcl-banner",
            ".pcl-banner strong",
            ".pcl-reply p",
            ".pcl-emergency strong",
            ".pcl-sources summary",
            ".pcl-source-head strong",
            ".pcl-passage",
            ".pcl-passage mark",
            ".pcl-link a",
            ".pcl-disclaimer",
        ):
            ratio = _contrast(page, selector)
            assert ratio >= 4.5, f"dark mode: {selector} contrast {ratio:.2f} < 4.5"
    finally:
        context.close()


CONTRAST = """
(sel) => {
  const el = document.querySelector(sel);
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  let bg = null;
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length < 4 || c[3] > 0.99) { bg = c; break; }
  }
  bg = bg || [255, 255, 255];
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(bg)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}
"""


def _contrast(page, selector: str) -> float:
    return page.evaluate(CONTRAST, selector)


def test_busy_server_says_so_in_the_page(phone, server: AppServer) -> None:
    """With the queue kept full, sending a question shows Gradio's 'busy, try again' notice."""
    call = server.url + "gradio_api/call/chat"
    stop = threading.Event()

    def flood() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                http.post(call, json={"data": ["What happened to the two patients?"]})

    workers = [threading.Thread(target=flood, daemon=True) for _ in range(12)]
    for w in workers:
        w.start()
    try:
        busy = phone.get_by_text("This application is currently busy. Please try again.")
        for _ in range(5):  # a freed slot can let one question through; ask again
            phone.get_by_label("Your question").fill("What is CT0596?")
            phone.get_by_role("button", name="Send").click()
            try:
                busy.first.wait_for(timeout=5_000)
                break
            except Exception:
                continue
        assert busy.first.is_visible()
        assert phone.get_by_label("Your question").input_value() == "What is CT0596?"  # kept to resend
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)


def test_missing_browser_skips_locally_but_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install Debian's chromium"):
        _chromium_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run on CI"):
        _chromium_or_skip()
