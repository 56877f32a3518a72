"""The chat page's streaming protocol, without a model: scripted `ask_stream` events in, the
`/respond` updates and final payload out (the real model runs in tests/llm/test_llm_page_streaming.py).

With an LLM configured, `/respond` yields an update of the bubble per token (grouped at most every
STREAM_INTERVAL_S) and per judged sentence, then the final payload `respond` gives; a sentence the
guard drops is gone from the next update. Without an LLM the page's endpoint is the plain function.
"""

from __future__ import annotations

import inspect
import re
from types import SimpleNamespace

import pytest

from bot.interfaces import render, ui
from bot.interfaces.feedback import FeedbackLog
from bot.llm.events import Checked, Drafting, Final, Token
from bot.reply import Citation, Generated, Notice, Quote, Reply
from bot.settings import Settings

PASSAGE = "CT0596 is an allo-CAR-T targeting BCMA using healthy donor derived T-cells. It is made by CARsgen."
CITATION = Citation(
    1,
    "healthtree-article",
    "An article",
    "https://example.org/article",
    "CT0596",
    "CT0596 is an allo-CAR-T targeting BCMA using healthy donor derived T-cells.",
    passage=PASSAGE,
    kind="article",
    sentences=("CT0596 is an allo-CAR-T targeting BCMA using healthy donor derived T-cells.",),
)
CARE = Notice("Your care team knows your situation best.", headline="Ask your care team.", tone="care")
KEPT = Generated("CT0596 is an allo-CAR-T that targets BCMA.", (1,), block=1)
DROPPED = "It cures 95% of patients. [1]"


def extractive(kind: str = "answer") -> Reply:
    own = (CARE,) if kind == "medical_advice" else ()
    return Reply(
        "What is CT0596?",
        (*own, Quote(CITATION.quote, 1, block=1)),
        kind,
        (CITATION,),
        "General information, not medical advice.",
        1.0,
    )


def generated(kind: str = "answer") -> Reply:
    own = (CARE,) if kind == "medical_advice" else ()
    base = extractive(kind)
    return Reply(
        base.question,
        (*own, KEPT),
        kind,
        (CITATION,),
        base.disclaimer,
        2.0,
        mode="generated",
        dropped=1,
        drafted=2,
    )


def script(kind: str = "answer") -> list:
    """The events of one generated answer: a dropped sentence, then a kept one."""
    tokens = [
        "It cures",
        " 95% of",
        " patients.",
        " [1]",
        " CT0596 is",
        " an allo-CAR-T",
        " that targets BCMA.",
        " [1]",
    ]
    return [
        Drafting(extractive(kind)),
        *[Token(t) for t in tokens[:4]],
        Token(" CT0596 is"),
        Checked(None, DROPPED, ("not in the cited passage: 95%",)),
        *[Token(t) for t in tokens[5:]],
        Checked(KEPT, "CT0596 is an allo-CAR-T that targets BCMA. [1]"),
        Final(generated(kind)),
    ]


class ScriptedCompanion:
    """`ask_stream` plays a script; `ask` gives its final reply (as the real Companion does)."""

    def __init__(self, events: list, llm: bool = True) -> None:
        self.events = events
        self.settings = Settings()
        self.pipeline = SimpleNamespace(generate=object() if llm else None)
        self.closed = False

    def ask_stream(self, question, history=None):
        try:
            yield from self.events
        finally:
            self.closed = True

    def ask(self, question, history=None, generate=True):
        final = self.events[-1].reply
        return final if generate else extractive(final.kind)


@pytest.fixture
def callbacks(tmp_path):
    def make(events: list, llm: bool = True) -> ui.ChatCallbacks:
        return ui.ChatCallbacks(ScriptedCompanion(events, llm), FeedbackLog(tmp_path / "f.jsonl"))  # type: ignore[arg-type]

    return make


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_updates_stream_then_the_final_payload_respond_gives(callbacks, monkeypatch) -> None:
    monkeypatch.setattr(ui, "STREAM_INTERVAL_S", 0.0)  # one update per token
    cb = callbacks(script())
    out = list(cb.respond_stream("What is CT0596?", [], "t3"))
    *updates, final = out
    assert len(updates) >= 5 and all(u["streaming"] and u["turn"] == "t3" for u in updates)
    assert "streaming" not in final
    assert final == cb.respond("What is CT0596?", [], "t3")
    assert (
        final["mode"] == "generated" and final["answer"] == "CT0596 is an allo-CAR-T that targets BCMA. [1]"
    )
    # The dropped sentence was shown grey while unchecked, then removed; the kept one stays.
    assert any("95%" in u["draft"] and 'class="pcl-draft"' in u["html"] for u in updates)
    after_drop = [u for u in updates if u["dropped"]]
    assert after_drop and all("95%" not in text_of(u["html"]) for u in after_drop)
    assert "Removed so far: 1 sentence" in after_drop[0]["html"]
    last = updates[-1]
    assert last["answer"] == final["answer"] and last["draft"] == ""
    assert 'class="pcl-checked"' in last["html"] and 'class="pcl-draft"' not in last["html"]
    # The final bubble: the sentence with a real [1] link and its source card, the model named.
    assert 'class="pcl-cite"' in final["html"] and 'id="pcl-src-t3-1"' in final["html"]
    assert "pcl-generated" in final["html"] and "language model" in final["note"]
    assert cb.companion.closed


def test_updates_are_grouped_for_a_fast_model(callbacks) -> None:
    out = list(callbacks(script()).respond_stream("What is CT0596?", [], "t1"))
    # Tokens arriving together are one update; every judged sentence is one more.
    assert 2 <= len(out) - 1 < 8


def test_medical_advice_keeps_its_care_notice_first_while_streaming(callbacks, monkeypatch) -> None:
    monkeypatch.setattr(ui, "STREAM_INTERVAL_S", 0.0)
    *updates, final = callbacks(script("medical_advice")).respond_stream("Should I join CT0596?", [], "t1")
    for u in updates:
        assert text_of(u["html"]).startswith("Ask your care team.")
    assert text_of(final["html"]).startswith("Ask your care team.")


def test_a_reply_the_model_does_not_write_comes_whole_at_once(callbacks) -> None:
    emergency = Reply("I can't breathe", (Notice("Call 911 now.", tone="urgent"),), "emergency", (), "d", 1.0)
    out = list(callbacks([Final(emergency)]).respond_stream("I can't breathe", [], "t1"))
    assert len(out) == 1 and out[0]["kind"] == "emergency" and "streaming" not in out[0]


def test_a_failure_mid_stream_is_a_plain_sentence(callbacks) -> None:
    def broken():
        yield Drafting(extractive())
        yield Token("CT0596 is")
        raise RuntimeError("model crashed")

    cb = callbacks([])
    cb.companion.ask_stream = lambda q, history=None: broken()
    out = list(cb.respond_stream("What is CT0596?", [], "t1"))
    assert out[-1]["kind"] == "error" and ui.SORRY in out[-1]["html"] and "crashed" not in str(out)


def test_closing_the_page_stream_closes_the_answer_stream(callbacks) -> None:
    cb = callbacks(script())
    stream = cb.respond_stream("What is CT0596?", [], "t1")
    next(stream)
    stream.close()  # Gradio closes the generator when the page stops or goes away
    assert cb.companion.closed


def test_the_page_endpoint_streams_only_with_an_llm(callbacks) -> None:
    def respond_fn(llm: bool):
        companion = ScriptedCompanion(script(), llm=llm)
        demo = ui.build(companion)  # type: ignore[arg-type]
        (fn,) = [f.fn for f in demo.fns.values() if f.api_name == "respond"]
        return fn

    assert not inspect.isgeneratorfunction(respond_fn(llm=False))
    assert inspect.isgeneratorfunction(respond_fn(llm=True))


def test_the_subtitle_says_how_answers_are_made() -> None:
    s = Settings()
    assert "quoted word for word" in ui.subtitle(s) and "language model" not in ui.subtitle(s)
    with_llm = s.with_overrides(llm_base_url="http://127.0.0.1:9/v1", llm_model="m")
    assert "written by a language model" in ui.subtitle(with_llm)


def test_a_generated_sentence_is_escaped_never_a_link() -> None:
    sneaky = Generated("See https://evil.example and <b>[click](https://evil.example)</b>", (1,), block=1)
    reply = Reply("q", (sneaky,), "answer", (CITATION,), "d", 1.0, mode="generated")
    html = render.reply_html(reply, "t1")
    assert "evil.example" in html and 'href="https://evil.example' not in html and "<b>" not in html
    assert 'href="#pcl-src-t1-1"' in html  # its own [1] is still a link to its card
    assert render.cited(reply.parts, reply.citations) == (CITATION,)
    draft = render.drafting_html("answer", (), (sneaky,), "<script>alert(1)</script>", 0, "t1")
    assert "<script" not in draft and "<b>" not in draft and "href" not in draft
