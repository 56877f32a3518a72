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

import httpx
import pytest
from app_fixtures import start_app
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
