"""Helpers for the browser tests: Debian's Chromium, axe-core, the four views, asking on the page.

Chromium is /usr/bin/chromium driven by Playwright (never `playwright install`); axe-core comes
from npm into a git-ignored folder (.venv/axe, or $PCL_AXE_DIR), installed on first use. Without
either the browser tests skip with the reason, except on CI (CI=true), where they fail.

The views are the ones the page is built for: a 390x844 touch phone and a 1280x800 desktop,
each in the light and the dark colour scheme. Every test gets a fresh browser context, so a
fresh localStorage: nothing one test keeps in the browser leaks into the next.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from app_fixtures import ARTIFACTS, AppServer

from bot.settings import REPO_ROOT, Settings

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # chromium_or_skip reports it
    PlaywrightTimeout = TimeoutError

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
AXE_VERSION = "4.14.1"
AXE_DIR = Path(os.environ.get("PCL_AXE_DIR") or REPO_ROOT / ".venv" / "axe")
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.2 AA and axe's best practices; "serious" and "critical" violations fail a test.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SETTINGS = Settings()
DISCLAIMER = SETTINGS.disclaimer
MAX_CHARS = SETTINGS.safety.max_question_chars
ANSWER_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class View:
    name: str
    viewport: dict
    touch: bool
    scheme: str

    @property
    def phone(self) -> bool:
        return self.touch


VIEWS = [
    View("phone-light", PHONE, True, "light"),
    View("phone-dark", PHONE, True, "dark"),
    View("desktop-light", DESKTOP, False, "light"),
    View("desktop-dark", DESKTOP, False, "dark"),
]
BY_NAME = {v.name: v for v in VIEWS}
ALL_VIEWS = pytest.mark.parametrize("page", VIEWS, indirect=True, ids=[v.name for v in VIEWS])


def views(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("page", [BY_NAME[n] for n in names], indirect=True, ids=list(names))


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run on CI: {reason}")
    pytest.skip(reason)


def chromium_or_skip(chromium: str = CHROMIUM) -> None:
    reason = None
    if not Path(chromium).exists():
        reason = f"{chromium} not found; install Debian's chromium (scripts/install-test-deps.sh)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = 'playwright is not installed; run pip install -e ".[dev]"'
    if reason:
        _skip_or_fail(reason)


def launch_chromium() -> Iterator[object]:
    """Debian's Chromium, headless, for a module's tests (skips or fails when it is missing)."""
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def axe_source() -> str:
    """axe-core's script, installed from npm into AXE_DIR on first use (never from a CDN)."""
    if not AXE_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            _skip_or_fail("npm is needed once to install axe-core (apt-get install npm)")
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund", f"axe-core@{AXE_VERSION}"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0 or not AXE_JS.exists():
            _skip_or_fail(f"npm could not install axe-core@{AXE_VERSION}: {done.stderr[-500:]}")
    return AXE_JS.read_text(encoding="utf-8")


def open_page(browser, server: AppServer, view: View) -> Iterator[object]:
    context = browser.new_context(
        viewport=view.viewport,
        device_scale_factor=1,
        color_scheme=view.scheme,
        has_touch=view.touch,
        is_mobile=view.touch,
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url.rstrip("/"))
    page = context.new_page()
    page.view = view
    page.requested = []  # every URL the page asks for, to prove it stays on this machine
    page.errors = []  # script errors in the page
    page.app_server = server  # its log explains a failed answer
    page.on("request", lambda r: page.requested.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(server.url)
    page.wait_for_selector("html[data-pcl-ready]")
    yield page
    assert page.errors == [], f"script errors in the page: {page.errors}"
    context.close()


# ---------------------------------------------------------------------- asking

# In-page stopwatch for the next question: from the Enter key (or the click) to the question's
# bubble, to the first answer text and to the whole answer, measured by the browser itself.
STOPWATCH = """
() => {
  const log = document.getElementById('pcl-log');
  const n = log.querySelectorAll('.pcl-turn').length + 1;
  const t = (window.__pcl_t = {n});
  const start = () => { if (t.submit === undefined) t.submit = performance.now(); };
  document.addEventListener('keydown', (e) => { if (e.key === 'Enter') start(); }, {capture: true, once: true});
  document.addEventListener('click', start, {capture: true, once: true});
  const watch = () => {
    const turn = log.querySelectorAll('.pcl-turn')[n - 1];
    const bot = turn && turn.querySelector('.pcl-msg-bot .pcl-reply:not(.pcl-pending)');
    if (t.shown === undefined && turn) t.shown = performance.now();
    if (t.first === undefined && bot && bot.innerText.trim()) t.first = performance.now();
    // (an answer a language model is still writing, .pcl-drafting, is not whole yet)
    if (t.full === undefined && bot && !turn.querySelector('.pcl-revealing, .pcl-drafting')) {
      t.full = performance.now();
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(watch);
  observer.observe(log, {subtree: true, childList: true, attributes: true, characterData: true});
}
"""

TURN_DONE = """
(n) => {
  const turn = document.querySelectorAll('#pcl-log .pcl-turn')[n - 1];
  const bot = turn && turn.querySelector('.pcl-msg-bot');
  return Boolean(bot && bot.querySelector('.pcl-reply:not(.pcl-pending):not(.pcl-drafting)') && !bot.classList.contains('pcl-revealing'));
}
"""


def turns(page) -> int:
    return page.locator("#pcl-log .pcl-turn").count()


def wait_turn(page, n: int, timeout: float = ANSWER_TIMEOUT_MS) -> None:
    try:
        page.wait_for_function(TURN_DONE, arg=n, timeout=timeout)
    except PlaywrightTimeout:
        shot = ARTIFACTS / f"failed-turn-{n}-{page.view.name}.png"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        pytest.fail(
            f"turn {n} got no whole answer within {timeout / 1000:.0f} s; the log ends "
            f"{page.locator('#pcl-log').inner_text()[-400:]!r}; see {shot}\n"
            f"app log (end):\n{page.app_server.output()[-3000:]}"
        )


def ask(page, question: str, via: str = "enter") -> dict:
    """Type and send a question; wait for its whole answer; return the in-page timings (s)."""
    page.evaluate(STOPWATCH)
    box = page.get_by_label("Your question")
    box.fill(question)
    if via == "enter":
        box.press("Enter")
    else:
        page.locator("#pcl-send").click()
    n = page.evaluate("window.__pcl_t.n")
    wait_turn(page, n)
    t = page.evaluate("window.__pcl_t")
    return {
        "question_shown_s": (t["shown"] - t["submit"]) / 1000,
        "first_text_s": (t["first"] - t["submit"]) / 1000,
        "full_answer_s": (t["full"] - t["submit"]) / 1000,
    }


def last_turn(page):
    return page.locator("#pcl-log .pcl-turn").last


def last_reply(page):
    return page.locator("#pcl-log .pcl-turn").last.locator(".pcl-reply")


def answer_words(text: str) -> str:
    """An answer's words without Markdown, markers' spacing or layout, to compare page and API."""
    text = re.sub(r"(^|\n)\s*- ", r"\1", text.replace("**", ""))
    return " ".join(text.split())


def page_answer(page, turn=None) -> str:
    turn = turn or last_turn(page)
    return answer_words(turn.locator(".pcl-answer").inner_text())


class Hold:
    """Holds the page's answer streams until released: a slow network, not a slow engine.

    The question reaches the real server and is answered there; only its delivery to the page
    waits, which keeps the page busy for as long as a test needs.
    """

    PATTERN = "**/gradio_api/call/respond/*"

    def __init__(self, page) -> None:
        self.page = page
        self.held: list = []
        self.holding = True
        page.route(self.PATTERN, self._route)

    def _route(self, route) -> None:
        if self.holding:
            self.held.append(route)
        else:
            route.continue_()

    def wait_held(self, count: int = 1, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.held) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"the page did not ask for an answer ({len(self.held)} of {count} held)")
            self.page.wait_for_timeout(50)

    def release(self, keep_holding: bool = False) -> None:
        self.holding = keep_holding
        held, self.held = self.held, []
        for route in held:
            with contextlib.suppress(Exception):  # the page gave up on it (Stop): nothing to deliver
                route.continue_()

    def stop(self) -> None:
        self.release()
        self.page.unroute(self.PATTERN, self._route)


# ---------------------------------------------------------------------- the server, directly


def respond_api(server: AppServer, question: str, history: list | None = None, turn: str = "t1") -> dict:
    """What the page's /respond endpoint returns for a question (the page's own call)."""
    call = server.url + "gradio_api/call/respond"
    posted = httpx.post(call, json={"data": [question, history or [], turn]}, timeout=60)
    posted.raise_for_status()
    text = httpx.get(f"{call}/{posted.json()['event_id']}", timeout=120).text
    data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    return json.loads(data[-1])[0]


# ---------------------------------------------------------------------- measurements in the page

CONTRAST = """
(el) => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || [0, 0, 0, 0]).map(Number);
  let bg = null;
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length < 4 || c[3] > 0.99) { bg = c; break; }
  }
  bg = bg || (document.body.classList.contains('dark') ? [11, 15, 25] : [255, 255, 255]);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(bg)];
  return {ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), background: lum(bg)};
}
"""


def contrast(locator) -> dict:
    return locator.evaluate(CONTRAST)


IN_VIEW = """
(el) => {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return false;
  if (r.top < 0 || r.left < 0 || r.bottom > window.innerHeight + 0.5 || r.right > window.innerWidth + 0.5) return false;
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + Math.min(r.height / 2, 20));
  return Boolean(hit && (hit === el || el.contains(hit)));
}
"""


def fully_in_view(locator) -> bool:
    """On screen, whole, and not covered by anything (the element at its centre is itself)."""
    return locator.evaluate(IN_VIEW)


SCROLLERS = """
() => [...document.querySelectorAll('body *')]
  .filter((e) => e.tagName !== 'TEXTAREA')
  .filter((e) => { const s = getComputedStyle(e); return /(auto|scroll)/.test(s.overflowY) && e.scrollHeight > e.clientHeight + 1; })
  .map((e) => e.tagName + '#' + e.id + '.' + String(e.className).slice(0, 40))
"""


def fits_width(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
