"""The Gradio chat page: the page shell, its endpoints and launch options.

Every answer comes from `Companion.ask`; `bot.interfaces.render` decides how a reply looks and
`bot.interfaces.feedback` keeps the ratings. The conversation itself lives in the browser
(`static/chat.js`, kept in localStorage), so a reload, a dropped connection or a restarted server
loses nothing: each question travels with the earlier turns the engine needs to resolve
follow-ups. The page talks to the server through Gradio's queue (`/gradio_api/call/<name>`), so
the concurrency limit and the queue size apply to it as to the API.

Endpoints: `/chat` is the one public API (plain text in, the whole reply as plain text out, listed
in the API docs). The page's own `/respond` (a question and its history in, the rendered reply
out) and `/rate` (a thumbs up or down) are undocumented: callable, but not offered to API clients.

With an LLM configured (README "Answers from an LLM"), `/respond` streams: while the model writes
an answer, its event stream carries `generating` updates (`"streaming": true`, the bubble as it
stands: the sentences the grounding guard kept, then the model's newest text, not checked yet),
then the final reply as always (`complete`). A sentence the guard drops disappears from the next
update. Without an LLM, `/respond` is the plain function it always was: one `complete`, no update.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import gradio as gr

from bot.interfaces import render
from bot.interfaces.feedback import FeedbackError, FeedbackLog
from bot.llm.events import Checked, Drafting, Final, Token
from bot.pipeline import Companion
from bot.reply import Generated, Reply, markdown, plain_text
from bot.settings import Settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
TITLE = "PCL companion"
# Questions the sources answer well, for a first visit (checked against the engine's replies).
EXAMPLES = (
    "What is plasma cell leukemia?",
    "What is CT0596?",
    "Can PCL patients join the CT071 trial?",
    "What side effects did the first two patients have?",
    "What is off-the-shelf CAR-T?",
)
# The page shows an answer block by block, this many milliseconds apart, so a person can start
# reading at once; emergency guidance is shown whole straight away.
REVEAL_MS = 70
CHAT_CONCURRENCY_ID = "chat"
SORRY = "Sorry, something went wrong on our side while answering. Please try again in a moment."
# Earlier turns the page may send with a question (the engine reads the last few).
MAX_HISTORY_MESSAGES = 24
# Kinds after which a multi-question message may have been answered only in part.
PARTIAL_KINDS = ("answer", "medical_advice", "not_found")
# While a model writes (LLM configured), the page gets the bubble at most this often, and at every
# sentence the guard judged: a fast endpoint's tokens are grouped, a CPU model's sent one by one.
STREAM_INTERVAL_S = 0.05


class LiveDraft:
    """The bubble while the model writes: the sentences the guard kept, then the text after them
    that it has not judged yet. A dropped sentence's text is simply gone from the next update."""

    def __init__(self, drafting: Drafting, turn: str) -> None:
        self.kind = drafting.reply.kind
        self.own = drafting.own_parts  # the care-team notice of medical advice stays first
        self.turn = turn
        self.kept: list[Generated] = []
        self.pending = ""  # the model's text not judged yet
        self.dropped = 0

    def add(self, event: Token | Checked) -> None:
        if isinstance(event, Token):
            self.pending += event.text
            return
        # The judged sentence and any fragment before it ("1.") leave the unchecked text.
        at = self.pending.find(event.draft)
        self.pending = self.pending[at + len(event.draft) :] if at >= 0 else ""
        if event.part is None:
            self.dropped += 1
        else:
            self.kept.append(event.part)

    def payload(self) -> dict:
        kept = tuple(self.kept)
        return {
            "turn": self.turn,
            "streaming": True,
            "kind": self.kind,
            "html": render.drafting_html(self.kind, self.own, kept, self.pending, self.dropped, self.turn),
            "answer": markdown((*self.own, *kept)),  # checked sentences only
            "draft": self.pending.strip(),
            "dropped": self.dropped,
        }


class ChatCallbacks:
    """The page's endpoints, bound to one Companion and one feedback log."""

    def __init__(self, companion: Companion, feedback: FeedbackLog) -> None:
        self.companion = companion
        self.feedback = feedback
        self.settings: Settings = companion.settings
        self.max_chars = companion.settings.safety.max_question_chars
        # Signs the rating data sent with each answer, so a rating names a real answer of this
        # server (the conversation lives in the browser; the server keeps no session).
        self._key = secrets.token_bytes(32)

    # ------------------------------------------------------------------ the page's endpoints

    def respond(self, message: str, history: list, turn: str) -> dict:
        """One question of the page: the reply rendered for its bubble, and what the page needs
        to copy, print, share and rate it, and to offer the next questions."""
        message = message if isinstance(message, str) else ""
        turn = render.turn_id(turn)
        turns = clean_turns(history, self.max_chars)
        try:
            reply = self.companion.ask(message, history=turns)
            unanswered = self._unanswered_parts(message, reply, turns)
        except Exception:  # the person gets a plain sentence; the trace goes to the server log
            log.exception("answering failed")
            return {"turn": turn, "kind": "error", "html": render.error_html(SORRY), "answer": ""}
        return self.payload(reply, message, turn, unanswered)

    def respond_stream(self, message: str, history: list, turn: str) -> Iterator[dict]:
        """`respond` while a language model writes (LLM configured): updates of the bubble as the
        model's text arrives and the guard judges each sentence (`"streaming": true`), then the
        same final payload `respond` gives. Replies the model does not write (emergencies,
        refusals, not found) come whole at once, as without an LLM."""
        message = message if isinstance(message, str) else ""
        turn = render.turn_id(turn)
        turns = clean_turns(history, self.max_chars)
        events = None
        try:
            events = self.companion.ask_stream(message, history=turns)
            live: LiveDraft | None = None
            last = 0.0
            reply = None
            for event in events:
                if isinstance(event, Final):
                    reply = event.reply
                    break
                if isinstance(event, Drafting):
                    live = LiveDraft(event, turn)
                    continue
                if live is None:
                    continue
                live.add(event)
                now = time.monotonic()
                if isinstance(event, Checked) or now - last >= STREAM_INTERVAL_S:
                    last = now
                    yield live.payload()
            if reply is None:
                raise RuntimeError("the answer stream ended without a reply")
            unanswered = self._unanswered_parts(message, reply, turns)
        except Exception:  # the person gets a plain sentence; the trace goes to the server log
            log.exception("answering failed")
            yield {"turn": turn, "kind": "error", "html": render.error_html(SORRY), "answer": ""}
            return
        finally:
            if events is not None:
                events.close()  # the page stopped or went away: the model stops too
        yield self.payload(reply, message, turn, unanswered)

    def payload(self, reply: Reply, message: str, turn: str, unanswered: list[str] | None = None) -> dict:
        safety = self.settings.safety
        cited = render.cited(reply.parts, reply.citations)
        question = message[: self.max_chars]
        sources = list(dict.fromkeys(c.source_id for c in reply.citations))
        return {
            "turn": turn,
            "kind": reply.kind,
            "reason": reply.reason,
            "html": render.reply_html(reply, turn, safety.emergency_number),
            "answer": reply.answer,  # Markdown: the history the next question is sent with
            "mode": reply.mode,  # generated (by the LLM, every sentence checked) or extractive
            "plain": plain_text(reply.parts),
            "sources": sources_text(cited),
            "note": render.note(reply.kind, safety.emergency_number, reply.mode),
            "follow_ups": [q for q in reply.follow_ups if isinstance(q, str) and q.strip()][:3],
            "ask_separately": unanswered or [],
            "questions": len(split_questions(message)),
            "rating": {
                "question": question,
                "kind": reply.kind,
                "sources": sources,
                "sig": self._sign(question, reply.kind, sources),
            },
        }

    def rate(self, rating: dict, value: str) -> str:
        """A thumbs up, a thumbs down, or the same thumb again (withdrawn) -> the feedback log."""
        if value not in ("up", "down", "withdrawn") or not isinstance(rating, dict):
            return "Sorry, that rating could not be read."
        question, kind, sources = rating.get("question"), rating.get("kind"), rating.get("sources")
        if not (
            isinstance(question, str)
            and isinstance(kind, str)
            and isinstance(sources, list)
            and all(isinstance(s, str) for s in sources)
            and hmac.compare_digest(str(rating.get("sig", "")), self._sign(question, kind, sources))
        ):
            return "This answer came from an earlier start of the app and can no longer be rated."
        try:
            self.feedback.record(question, kind, sources, value)
        except FeedbackError:
            log.exception("feedback not saved")
            return "Sorry, your rating could not be saved."
        if value == "withdrawn":
            return "Your rating was withdrawn."
        return "Thank you, your rating was saved."

    def api_chat(self, message: str) -> str:
        """Answer one question: the reply text, its numbered sources and the disclaimer."""
        try:
            return self.companion.ask(message if isinstance(message, str) else "").to_text()
        except Exception:
            log.exception("answering failed (API)")
            raise gr.Error(SORRY, print_exception=False) from None

    # ------------------------------------------------------------------ helpers

    def _sign(self, question: str, kind: str, sources: list[str]) -> str:
        data = json.dumps([question, kind, sources], ensure_ascii=True).encode()
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def _unanswered_parts(self, message: str, reply: Reply, turns: list[dict]) -> list[str]:
        """The questions of a several-question message that the reply leaves out.

        Each question is asked on its own; one whose own answer quotes nothing the combined
        reply quotes was not answered, so the page offers it to ask separately.
        """
        parts = split_questions(message)
        if len(parts) < 2 or reply.kind not in PARTIAL_KINDS:
            return []
        # A generated reply cites the passages its sentences come from (the supporting sentences
        # differ from the quotes an extractive reply picks): compare passages then.
        generated = reply.mode == "generated"

        def used(r: Reply) -> set[str]:
            return (
                {c.passage for c in r.citations}
                if generated
                else {s for c in r.citations for s in c.sentences}
            )

        given = used(reply) if reply.kind != "not_found" else set()
        missing = []
        for part in parts:
            alone = self.companion.ask(part, history=turns, generate=False)  # no model call
            if alone.kind not in ("answer", "medical_advice"):
                continue
            own = used(alone)
            if own and not own & given:
                missing.append(part)
        return missing


def sources_text(citations) -> str:
    """The cited sources as plain text, for copying and sharing (the page prints its cards)."""
    lines = []
    for c in citations:
        section = f" — {c.section}" if c.section else ""
        own = " (this app's plain-language glossary; public reference)" if c.kind == "glossary" else ""
        lines.append(f"[{c.n}] {c.title}{section}{own}: {c.url}\n    “{c.quote}”")
    return "\n".join(lines)


_QUESTION_END = re.compile(r"(?<=\?)\s+")


def split_questions(message: str) -> list[str]:
    """The separate questions of a message ("What is CT0596? Who can join CT071?"), or [message]."""
    pieces = [p.strip() for p in _QUESTION_END.split(message.strip()) if p.strip()]
    asked = [p for p in pieces if p.endswith("?") and len(p.split()) >= 2]
    return asked[:4] if len(asked) >= 2 else [message.strip()]


def clean_turns(history: object, max_chars: int) -> list[dict]:
    """The earlier turns the page sent, as the engine reads them: well-formed and bounded."""
    if not isinstance(history, list):
        return []
    turns = [
        {"role": t["role"], "content": t["content"][: max_chars * 4]}
        for t in history
        if isinstance(t, dict)
        and t.get("role") in ("user", "assistant")
        and isinstance(t.get("content"), str)
    ]
    return turns[-MAX_HISTORY_MESSAGES:]


# ---------------------------------------------------------------------- the page


@cache
def _static(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


PRIVACY_NOTE = (
    "Please do not type names, dates of birth, record numbers or other personal health "
    "information. This conversation is kept only in this browser, on this device, until you "
    "delete it. Answers you rate are saved on the server, without anything else about you, to "
    "improve the answers."
)


def page_config(settings: Settings) -> dict[str, Any]:
    """What the page script needs to know (read from the shell's data-config attribute)."""
    s = settings.safety
    return {
        "maxChars": s.max_question_chars,
        "emergency": s.emergency_number,
        "disclaimer": settings.disclaimer,
        "examples": list(EXAMPLES),
        "revealMs": REVEAL_MS,
        "title": TITLE,
    }


SOURCES = "one HealthTree article on relapsed plasma cell leukemia (PCL) and two clinical-trial records"


def subtitle(settings: Settings) -> str:
    """What the answers are: quotes, or (LLM configured) the model's sentences, each checked."""
    if settings.llm.enabled:
        return (
            f"Answers with their sources, from {SOURCES}: written by a language model, each sentence "
            "checked against the passage it cites, or quoted word for word."
        )
    return f"Answers quoted word for word, with their sources, from {SOURCES}."


def shell_html(settings: Settings) -> str:
    """The page itself: header, conversation, composer, dialogs. The script fills it in."""
    esc = html.escape
    config = esc(json.dumps(page_config(settings)), quote=True)
    limit = f"{settings.safety.max_question_chars:,}"
    examples = "".join(
        f'<li><button type="button" class="pcl-chip pcl-example">{esc(q)}</button></li>' for q in EXAMPLES
    )
    return f"""<div id="pcl-app" data-config="{config}">
<div class="pcl-print-head"><p class="pcl-print-title">{TITLE}: questions and quoted answers</p>
<p class="pcl-print-date"></p><p class="pcl-print-disclaimer">{esc(settings.disclaimer)}</p></div>
<header class="pcl-header">
<div class="pcl-title-row"><h1>{TITLE}</h1>
<div class="pcl-size" role="group" aria-label="Text size">
<button type="button" id="pcl-smaller" class="pcl-btn pcl-size-btn" aria-label="A− (smaller text)">A−</button>
<button type="button" id="pcl-larger" class="pcl-btn pcl-size-btn" aria-label="A+ (larger text)">A+</button>
</div></div>
<p class="pcl-subtitle">{subtitle(settings)}</p>
<p class="pcl-banner" id="pcl-disclaimer"><strong>Not medical advice.</strong> {esc(settings.disclaimer)}</p>
</header>
<section class="pcl-conversation" aria-labelledby="pcl-conversation-h">
<h2 id="pcl-conversation-h" class="pcl-sr">Conversation</h2>
<div id="pcl-empty" class="pcl-empty">
<p class="pcl-empty-lead"><strong>Ask about relapsed plasma cell leukemia, CT0596 or CT071.</strong>
Type below, or tap an example:</p>
<ul class="pcl-chips" aria-label="Example questions">{examples}</ul>
</div>
<ol id="pcl-log" class="pcl-log"></ol>
<div id="pcl-conv-tools" class="pcl-conv-tools" hidden>
<p class="pcl-conv-tools-h" id="pcl-conv-tools-h">Take this conversation to your doctor:</p>
<div class="pcl-row" role="group" aria-labelledby="pcl-conv-tools-h">
<button type="button" class="pcl-btn" data-all="copy">Copy all</button>
<button type="button" class="pcl-btn" data-all="print">Print all</button>
<button type="button" class="pcl-btn" data-all="share">Share all</button>
<button type="button" class="pcl-btn pcl-danger" id="pcl-delete">Delete this conversation</button>
</div></div>
</section>
<p class="pcl-privacy">{esc(PRIVACY_NOTE)}</p>
<div id="pcl-live" class="pcl-sr" role="status" aria-live="polite" aria-atomic="true"></div>
<button type="button" id="pcl-jump" class="pcl-btn pcl-primary pcl-jump" hidden>New answer below</button>
<div id="pcl-undo" class="pcl-undo" role="status" hidden>
<span id="pcl-undo-text">Conversation deleted.</span>
<button type="button" class="pcl-btn" id="pcl-undo-btn">Undo</button>
<button type="button" class="pcl-btn" id="pcl-undo-close">Dismiss</button>
</div>
<form id="pcl-composer" class="pcl-composer" aria-label="Ask a question" novalidate>
<div class="pcl-composer-in">
<label for="pcl-q" class="pcl-q-label">Your question</label>
<div class="pcl-q-row">
<textarea id="pcl-q" name="question" rows="1" placeholder="Type your question"
 autocomplete="off" enterkeyhint="send" aria-describedby="pcl-count pcl-help"></textarea>
<button type="submit" id="pcl-send" class="pcl-btn pcl-primary">Send</button>
<button type="button" id="pcl-stop" class="pcl-btn pcl-stop" hidden>Stop</button>
</div>
<div class="pcl-q-info"><p id="pcl-help" class="pcl-help">Enter sends; Shift+Enter starts a new line.</p>
<p id="pcl-count" class="pcl-count" data-limit="{limit}">0 / {limit} characters</p></div>
</div>
</form>
<dialog id="pcl-confirm" class="pcl-dialog" aria-labelledby="pcl-confirm-h" aria-describedby="pcl-confirm-p">
<h2 id="pcl-confirm-h">Delete this conversation?</h2>
<p id="pcl-confirm-p">It is removed from this browser. You can undo this right after.</p>
<div class="pcl-row"><button type="button" class="pcl-btn pcl-danger" id="pcl-confirm-yes">Delete</button>
<button type="button" class="pcl-btn" id="pcl-confirm-no">Keep it</button></div>
</dialog>
</div>"""


def build(companion: Companion) -> gr.Blocks:
    """The chat page. Launch it with `launch_options()` (Gradio 6 takes css, js and theme there)."""
    settings = companion.settings
    cb = ChatCallbacks(companion, FeedbackLog(settings.app.feedback_log))
    with gr.Blocks(title=f"{TITLE}: cited answers on relapsed PCL", fill_width=False) as demo:
        gr.HTML(shell_html(settings), elem_id="pcl-shell", apply_default_css=False, js_on_load=None)
        gr.api(
            # With an LLM the page's answers stream (`respond_stream`); without, nothing changes.
            cb.respond_stream if companion.pipeline.generate is not None else cb.respond,
            api_name="respond",
            api_visibility="undocumented",
            concurrency_id=CHAT_CONCURRENCY_ID,
        )
        gr.api(cb.rate, api_name="rate", api_visibility="undocumented", concurrency_limit=None)
        gr.api(cb.api_chat, api_name="chat", concurrency_id=CHAT_CONCURRENCY_ID)
    # Read by Gradio when the page is mounted (`launch` would set it; `mount_gradio_app` does not).
    demo.state_session_capacity = settings.app.session_capacity
    return demo


def launch_options() -> dict[str, Any]:
    """What `Blocks.launch` needs besides host and port: look, behaviour, the hardening switches."""
    return {
        "theme": THEME,
        "share": False,
        "show_error": False,  # people see our sentences, never a stack trace
        "ssr_mode": False,  # no Node server
        "mcp_server": False,
        "pwa": False,
        "footer_links": [],  # no "Use via API" for patients; /chat is documented in the README
        "allowed_paths": None,
        "max_file_size": "1kb",  # the page takes no uploads
        "js": page_script(),
        "head": page_head(),
    }


def page_script() -> str:
    """static/chat.js as the function Gradio runs once the page has loaded."""
    return "() => {\n" + _static("chat.js") + "\n}"


def page_head() -> str:
    """static/chat.css, unscoped (Gradio scopes `css`; the page frame needs plain rules)."""
    return f"<style>\n{_static('chat.css')}\n</style>"


THEME = gr.themes.Default(
    primary_hue="blue",
    neutral_hue="slate",
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
).set(
    body_text_color="#1f2937",
    body_text_color_subdued="#4b5563",
    button_primary_background_fill="#1d4ed8",
    button_primary_background_fill_hover="#1e40af",
    button_primary_text_color="#ffffff",
    input_placeholder_color="#6b7280",
)
