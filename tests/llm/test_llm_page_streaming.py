"""The chat page with an LLM: the real `python app.py` started with PCL_LLM_GGUF=SmolLM2, asked
through the page's own protocol (tests/page_session.py: POST gradio_api/call/respond, then its
event stream), never a mock.

The answer streams into the bubble (`generating` updates: the sentences the guard kept, then the
model's unchecked text), a sentence the guard drops disappears before the answer is final, and
the final bubble is exactly the guard's kept sentences: the reply `ask` gives (here through the
same server's JSON API).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from app_fixtures import start_app
from browser_fixtures import (
    VIEWS,
    answer_words,
    launch_chromium,
    open_page,
    wait_turn,
)
from page_session import PageSession

pytestmark = pytest.mark.llm

# Questions SmolLM2 writes for (greedy decoding: the same text every run); the test needs one
# generated answer and looks at every one it gets.
QUESTIONS = ("What is plasma cell leukemia?", "What is CT0596?", "Who sponsors NCT06333509?")


@pytest.fixture(scope="module")
def llm_app(smollm2_path: str):
    server = start_app({"PCL_LLM_GGUF": smollm2_path})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def asked(llm_app):
    """Each question once through the page's protocol: (question, updates, times, final payload)."""
    out = []
    with httpx.Client(timeout=300) as client:
        page = PageSession(llm_app.url, client)
        for question in QUESTIONS:
            done = page.ask(question)
            assert done.get("success"), (done, llm_app.output()[-3000:])
            out.append((question, page.updates, page.update_times, done["output"]["data"][0]))
    return out


def words(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_answer_streams_into_the_bubble_before_it_is_final(asked):
    for question, updates, times, final in asked:
        assert final["kind"] == "answer", question
        assert len(updates) > 1, f"{question!r}: {len(updates)} streamed update(s) before the final answer"
        assert all(u["streaming"] and u["turn"] == "t" + str(QUESTIONS.index(question) + 1) for u in updates)
        assert times == sorted(times) and times[0] < times[-1]
        # The model's text arrives word by word: some update shows text not checked yet.
        assert any(u["draft"] and 'class="pcl-draft"' in u["html"] for u in updates), question
        print(
            f"\n{question!r}: {len(updates)} updates, first after {times[0]:.2f} s, final after "
            f"{times[-1]:.2f} s -> {final['mode']}"
        )


def test_the_final_bubble_is_what_the_guard_kept(asked, llm_app):
    generated = [a for a in asked if a[3]["mode"] == "generated"]
    assert generated, "SmolLM2 wrote no answer the guard kept enough of: " + str(
        [a[3]["answer"] for a in asked]
    )
    for question, updates, _, final in generated:
        assert final["answer"] == updates[-1]["answer"], question  # the checked sentences, and only them
        assert updates[-1]["draft"] == "" or updates[-1]["draft"] not in final["answer"]
        assert "language model" in final["note"] and 'class="pcl-cite"' in final["html"]
        # Every sentence shown unchecked was either kept (and is in the final answer) or removed.
        for before, after in zip(updates, updates[1:], strict=False):
            if after["dropped"] > before["dropped"]:
                gone = before["draft"].split("[")[0].strip()
                if len(gone) > 25:
                    assert gone not in final["answer"] and gone not in words(after["html"]), gone


def test_the_final_bubble_is_the_reply_ask_gives(asked, llm_app):
    for question, _, _, final in asked:
        reply = httpx.post(llm_app.url + "api/ask", json={"question": question}, timeout=300).json()
        assert reply["answer"] == final["answer"] and reply["mode"] == final["mode"], question


def test_a_reply_the_model_does_not_write_comes_whole_at_once(llm_app):
    with httpx.Client(timeout=120) as client:
        page = PageSession(llm_app.url, client)
        done = page.ask("I have a fever of 39C after my CAR-T infusion")
        assert done["output"]["data"][0]["kind"] == "emergency"
        assert page.updates == []  # emergencies are fixed texts, never generated or streamed


# ---------------------------------------------------------------------- in Chromium

# Records every state of the streaming bubble: its text, whether it was aria-busy, whether it
# showed unchecked (grey) text; and every announcement of the live region.
WATCH = """
() => {
  const log = document.getElementById('pcl-log');
  const live = document.getElementById('pcl-live');
  const seen = (window.__pcl_stream = {states: [], busy: 0, notBusy: 0, drafts: 0, said: []});
  seen.watchers = [];  // kept referenced, so no garbage collection ends the watch
  const watch = () => {
    const h = log.querySelector('.pcl-stream-holder');
    if (!h) return;
    const text = h.innerText;
    if (seen.states[seen.states.length - 1] !== text) seen.states.push(text);
    if (h.getAttribute('aria-busy') === 'true') seen.busy++; else seen.notBusy++;
    if (h.querySelector('.pcl-draft')) seen.drafts++;
  };
  const say = () => { if (live.textContent) seen.said.push(live.textContent); };
  for (const [node, fn] of [[log, watch], [live, say]]) {
    const o = new MutationObserver(fn);
    o.observe(node, {subtree: true, childList: true, characterData: true});
    seen.watchers.push(o);
  }
}
"""
SLOW_ANSWER_MS = 300_000  # a 135M model on a shared CPU


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch_chromium()


@pytest.fixture
def page(browser, llm_app) -> Iterator[object]:
    yield from open_page(browser, llm_app, VIEWS[2])  # desktop, light


def test_in_the_browser_the_answer_streams_then_the_final_bubble_replaces_it(page):
    page.evaluate(WATCH)
    box = page.get_by_label("Your question")
    box.fill(QUESTIONS[0])
    box.press("Enter")
    page.locator(".pcl-stream-holder .pcl-draft").first.wait_for(timeout=SLOW_ANSWER_MS)
    assert page.locator(".pcl-stream-holder").get_attribute("aria-busy") == "true"
    assert "not checked yet" in page.locator(".pcl-stream-holder .pcl-drafting-note").inner_text()
    wait_turn(page, 1, timeout=SLOW_ANSWER_MS)
    seen = page.evaluate("(({ watchers, ...rest }) => rest)(window.__pcl_stream)")
    assert len(seen["states"]) > 1 and seen["drafts"] > 0 and seen["notBusy"] == 0, seen["states"][-3:]
    # The final bubble replaced the streaming one: no grey text, nothing busy, cards and note.
    bot = page.locator("#pcl-log .pcl-turn").last.locator(".pcl-msg-bot")
    assert bot.locator(".pcl-stream-holder, .pcl-drafting, .pcl-draft").count() == 0
    assert page.locator("[aria-busy='true']").count() == 0
    stored = page.evaluate("JSON.parse(localStorage.getItem('pcl-companion:conversation:v1')).turns[0].r")
    assert answer_words(bot.locator(".pcl-answer").inner_text()) == answer_words(stored["answer"])
    if stored["mode"] == "generated":
        assert bot.locator(".pcl-generated a.pcl-cite").count() >= 1
        assert (
            bot.locator(".pcl-card").count() >= 1
            and "language model" in bot.locator(".pcl-note").inner_text()
        )
    # Announced once, when whole: never a token at a time.
    page.locator("#pcl-live").get_by_text("PCL companion answered").wait_for(state="attached")
    seen = page.evaluate("(({ watchers, ...rest }) => rest)(window.__pcl_stream)")
    answered = [s for s in seen["said"] if s.startswith("PCL companion answered")]
    assert len(answered) == 1 and len(seen["said"]) <= 2, seen["said"]
    print(f"\nbrowser: {len(seen['states'])} bubble states before the final {stored['mode']} answer")


def test_in_the_browser_stop_ends_a_streaming_answer(page):
    box = page.get_by_label("Your question")
    box.fill(QUESTIONS[1])
    box.press("Enter")
    page.locator(".pcl-stream-holder .pcl-draft").first.wait_for(timeout=SLOW_ANSWER_MS)
    page.locator("#pcl-stop").click()
    turn = page.locator("#pcl-log .pcl-turn").last
    assert "You stopped this question before it was answered." in turn.inner_text()
    assert turn.locator(".pcl-stream-holder").count() == 0
    page.wait_for_timeout(1000)
    assert turn.locator(".pcl-stream-holder, .pcl-answer").count() == 0, "a stopped answer kept streaming in"
    assert page.locator("#pcl-log").get_attribute("aria-busy") == "false"
