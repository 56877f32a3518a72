"""The Gradio chat page: layout and callbacks. Every answer comes from `Companion.ask`.

Callbacks only move text between the page and the engine: the engine decides what to say,
`bot.interfaces.render` decides how it looks, `bot.interfaces.feedback` keeps the ratings. The only public API
endpoint is `/chat` (plain text in, the whole reply as plain text out); the page's own
callbacks are private so API clients see one clear entry point.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from bot.interfaces import render
from bot.interfaces.feedback import FeedbackError, FeedbackLog
from bot.pipeline import Companion

log = logging.getLogger(__name__)

TITLE = "PCL companion"
# Questions the sources answer well, for a first visit (checked against the engine's replies).
EXAMPLES = (
    "What is plasma cell leukemia?",
    "What is CT0596?",
    "Can PCL patients join the CT071 trial?",
    "What side effects did the first two patients have?",
    "What is off-the-shelf CAR-T?",
)
# Pause between streamed sentences: long enough to read as a stream, short enough not to stall.
STREAM_PAUSE_S = 0.06
CHAT_CONCURRENCY_ID = "chat"
SORRY = "Sorry, something went wrong on our side while answering. Please try again in a moment."

Exchange = dict[str, Any]  # question, answer, kind, sources, at (index of the answer in the chat)


def _history(exchanges: list[Exchange]) -> list[dict]:
    """Earlier turns as the engine expects them (plain text, not the rendered HTML)."""
    turns: list[dict] = []
    for ex in exchanges:
        turns.append({"role": "user", "content": ex["question"]})
        turns.append({"role": "assistant", "content": ex["answer"]})
    return turns


class ChatCallbacks:
    """The page's callbacks, bound to one Companion and one feedback log."""

    def __init__(self, companion: Companion, feedback: FeedbackLog) -> None:
        self.companion = companion
        self.feedback = feedback
        self.max_chars = companion.settings.safety.max_question_chars

    def respond(
        self, message: str | None, chat: list[dict] | None, exchanges: list[Exchange] | None
    ) -> Iterator[tuple[Any, list[dict], list[Exchange], str]]:
        """Show the question at once, then the answer sentence by sentence, then its sources."""
        message = message or ""
        chat = list(chat or [])
        exchanges = list(exchanges or [])
        if not message.strip():
            yield gr.skip(), chat, exchanges, gr.skip()
            return
        try:
            bubble = render.user_html(message, self.max_chars)
        except Exception:  # never lose the page's send event to one odd message
            log.exception("showing the question failed")
            bubble = render.error_html("(your message could not be shown)")
        chat.append({"role": "user", "content": bubble})
        chat.append({"role": "assistant", "content": render.pending_html()})
        yield "", chat, exchanges, _status("")
        try:
            reply = self.companion.ask(message, history=_history(exchanges))
        except Exception:  # the person gets a plain sentence; the trace goes to the server log
            log.exception("answering failed")
            chat[-1] = {"role": "assistant", "content": render.error_html(SORRY)}
            yield gr.skip(), chat, exchanges, gr.skip()
            return
        done = list(exchanges)
        done.append(
            {
                "question": message[: self.max_chars],
                "answer": reply.answer,
                "kind": reply.kind,
                "sources": [c.source_id for c in reply.citations],
                "at": len(chat) - 1,
            }
        )
        bubbles = list(render.stream_html(reply))
        for i, bubble in enumerate(bubbles):
            chat[-1] = {"role": "assistant", "content": bubble}
            if i == len(bubbles) - 1:  # the whole answer and the turn it adds arrive together
                yield gr.skip(), chat, done, gr.skip()
            else:
                yield gr.skip(), chat, exchanges, gr.skip()
                time.sleep(STREAM_PAUSE_S)

    def respond_example(
        self, chat: list[dict] | None, exchanges: list[Exchange] | None, picked: gr.SelectData
    ) -> Iterator[tuple[Any, list[dict], list[Exchange], str]]:
        """An example tapped in the empty chat: ask it like a typed question."""
        value = picked.value if isinstance(picked.value, dict) else {}
        yield from self.respond(str(value.get("text", "")), chat, exchanges)

    def rate(self, exchanges: list[Exchange] | None, data: gr.LikeData) -> str:
        """Thumbs up/down on an answer -> one line in the feedback log."""
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        exchange = next((ex for ex in exchanges or [] if ex["at"] == index), None)
        if exchange is None:  # an answer still being written: nothing to rate yet
            return _status("")
        # Clicking the same thumb again withdraws the rating; the log is append-only, so say so.
        rating = ("up" if data.liked else "down") if isinstance(data.liked, bool) else "withdrawn"
        try:
            self.feedback.record(exchange["question"], exchange["kind"], exchange["sources"], rating)
        except FeedbackError:
            log.exception("feedback not saved")
            return _status("Sorry, your rating could not be saved.")
        if rating == "withdrawn":
            return _status("Your rating was withdrawn.")
        return _status("Thank you, your rating was saved.")

    def api_chat(self, message: str) -> str:
        """Answer one question: the reply text, its numbered sources and the disclaimer."""
        try:
            return self.companion.ask(message if isinstance(message, str) else "").to_text()
        except Exception:
            log.exception("answering failed (API)")
            raise gr.Error(SORRY, print_exception=False) from None


def _status(text: str) -> str:
    """The line under the question box: the privacy note, and a rating's confirmation if any."""
    return f'<p class="pcl-status" role="status">{html.escape(text)}</p>{PRIVACY_NOTE}'


def _new_chat() -> tuple[str, list, list, str]:
    return "", [], [], _status("")


def _header_html(disclaimer: str) -> str:
    return (
        f'<header class="pcl-header"><h1>{TITLE}</h1>'
        '<p class="pcl-subtitle">Answers quoted, with their sources, from one HealthTree article on '
        "relapsed plasma cell leukemia (PCL) and two clinical-trial records.</p>"
        f'<p class="pcl-banner" role="note"><strong>Not medical advice.</strong> {html.escape(disclaimer)}</p>'
        "</header>"
    )


PRIVACY_NOTE = (
    '<p class="pcl-privacy">Please do not type names, dates of birth, record numbers or other '
    "personal health information. Questions you rate are saved, without anything else about you, "
    "to improve the answers.</p>"
)


def build(companion: Companion) -> gr.Blocks:
    """The chat page. Launch it with `launch_options()` (Gradio 6 takes css and theme there)."""
    settings = companion.settings
    cb = ChatCallbacks(companion, FeedbackLog(settings.app.feedback_log))
    chat_events = {
        "concurrency_limit": "default",
        "concurrency_id": CHAT_CONCURRENCY_ID,
        "api_visibility": "private",
        "show_progress": "hidden",
    }

    with gr.Blocks(title=f"{TITLE}: cited answers on relapsed PCL", fill_width=False) as demo:
        gr.HTML(_header_html(settings.disclaimer), elem_id="pcl-header", padding=False)
        exchanges = gr.State([])
        chatbot = gr.Chatbot(
            label="Conversation",
            elem_id="pcl-chat",
            height="min(62vh, 640px)",
            min_height=260,
            autoscroll=False,  # JS_ON_LOAD scrolls to the new question so its answer reads from the top
            sanitize_html=True,
            render_markdown=True,
            latex_delimiters=[],
            buttons=[],  # a copy button would copy our HTML, not the text
            feedback_options=("Like", "Dislike"),
            show_label=False,
            placeholder="**Ask about relapsed plasma cell leukemia, CT0596 or CT071.** Type below, or tap an example:",
            examples=[{"text": q} for q in EXAMPLES],
            group_consecutive_messages=False,
            layout="panel",
        )
        with gr.Row(elem_id="pcl-ask", equal_height=True):
            question = gr.Textbox(
                label="Your question",
                placeholder="Type your question",
                max_length=settings.safety.max_question_chars,
                lines=1,
                max_lines=4,
                scale=5,
                elem_id="pcl-question",
            )
            send = gr.Button("Send", variant="primary", scale=1, min_width=88, elem_id="pcl-send")
        status = gr.HTML(_status(""), elem_id="pcl-status", padding=False)
        new_chat = gr.Button("New chat", variant="secondary", elem_id="pcl-new-chat")

        outputs = [question, chatbot, exchanges, status]
        # One listener for Enter and Send, so a question sent while the last answer is still
        # finishing waits its turn (always_last) instead of being dropped or racing it.
        gr.on(
            [question.submit, send.click],
            cb.respond,
            [question, chatbot, exchanges],
            outputs,
            trigger_mode="always_last",
            **chat_events,
        )
        chatbot.example_select(cb.respond_example, [chatbot, exchanges], outputs, **chat_events)
        chatbot.like(cb.rate, [exchanges], [status], api_visibility="private", show_progress="hidden")
        new_chat.click(_new_chat, None, outputs, queue=False, api_visibility="private")
        # The chat's own bin icon empties the bubbles; forget the turns too, or follow-ups and
        # ratings would refer to a conversation the person no longer sees.
        chatbot.clear(_new_chat, None, outputs, queue=False, api_visibility="private")
        gr.api(cb.api_chat, api_name="chat", concurrency_id=CHAT_CONCURRENCY_ID)
    return demo


def launch_options() -> dict[str, Any]:
    """What `Blocks.launch` needs besides host and port: look, and the hardening switches."""
    return {
        "css": CSS,
        "theme": THEME,
        "share": False,
        "show_error": False,  # people see our sentences, never a stack trace
        "ssr_mode": False,  # no Node server
        "mcp_server": False,
        "pwa": False,
        "footer_links": ["api"],
        "allowed_paths": None,
        "max_file_size": "1kb",  # the page takes no uploads
        "js": JS_ON_LOAD,
        "head": HEAD,
    }


# Runs once in the browser. Gradio labels each bubble with its raw content (our HTML) for screen
# readers; dropping that label lets them read the text itself. And a new question is scrolled to
# the top of the chat, so a long answer reads from its first sentence, not from its sources.
JS_ON_LOAD = """
() => {
  let asked = 0;
  const tidy = () => {
    const chat = document.getElementById("pcl-chat");
    if (!chat) return;
    chat.querySelectorAll('[data-testid="user"][aria-label], [data-testid="bot"][aria-label]')
      .forEach((el) => el.removeAttribute("aria-label"));
    const questions = chat.querySelectorAll('[data-testid="user"]');
    if (questions.length > asked) {
      const log = chat.querySelector('[role="log"]');
      const last = questions[questions.length - 1];
      const inner = log && log.scrollHeight > log.clientHeight + 1;
      if (inner) {  // desktop: the chat scrolls inside its box
        log.scrollTop += last.getBoundingClientRect().top - log.getBoundingClientRect().top - 8;
      } else if (last) {  // phone: the page itself scrolls
        window.scrollBy(0, last.getBoundingClientRect().top - 8);
      }
    }
    asked = questions.length;
  };
  new MutationObserver(tidy).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["aria-label"],
  });
  document.documentElement.dataset.pclReady = "1";  // the app is wired up (tests wait for it)
}
"""

# Gradio scopes `css` to the app's content box; the page frame around it needs a plain <style>.
HEAD = """<style>
@media (max-width: 640px) {
  .gradio-container .main.app { padding-left: 8px !important; padding-right: 8px !important; }
}
</style>"""

THEME = gr.themes.Default(
    primary_hue="blue",
    neutral_hue="slate",
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
).set(
    body_text_color="#1f2937",
    body_text_color_subdued="#4b5563",
    # White on the default blue is under 4.5:1; these darker blues pass WCAG AA.
    button_primary_background_fill="#1d4ed8",
    button_primary_background_fill_hover="#1e40af",
    button_primary_text_color="#ffffff",
    input_placeholder_color="#6b7280",
)

CSS = """
.gradio-container { max-width: 860px !important; margin: 0 auto !important; }
.pcl-header h1 { font-size: 1.75rem; margin: 0.25rem 0; }
.pcl-subtitle { margin: 0 0 0.5rem; }
.pcl-banner { margin: 0; padding: 0.6rem 0.8rem; border-left: 4px solid #1d4ed8;
  background: #eff6ff; color: #1e3a8a; border-radius: 6px; }
.pcl-privacy { color: var(--body-text-color-subdued); margin: 0; }
.pcl-banner, .pcl-privacy, .pcl-subtitle, #pcl-chat .prose, #pcl-question textarea { font-size: 1rem !important; }
.pcl-status { color: var(--body-text-color); font-weight: 600; margin: 0; }
.pcl-status:empty { display: none; }
button, #pcl-send, #pcl-new-chat, #pcl-question textarea { min-height: 44px; }
#pcl-chat .placeholder { padding: 0.75rem 0.75rem 0; }
#pcl-chat .placeholder p, #pcl-chat button.example, #pcl-chat button.example * {
  font-size: 1rem !important; color: var(--body-text-color) !important; }
#pcl-chat .message-buttons button, #pcl-chat .message-buttons button * { color: var(--body-text-color) !important; }
#pcl-chat button.example { border-color: #64748b !important; }
#pcl-chat button { min-width: 44px; min-height: 44px; }
.pcl-reply p { margin: 0 0 0.6rem; }
.pcl-reply ul { margin: 0 0 0.6rem 1.2rem; }
.pcl-cite { color: var(--link-text-color); font-weight: 700; white-space: nowrap; }
.pcl-pending { color: var(--body-text-color-subdued); font-style: italic; }
.pcl-emergency { border: 3px solid #b91c1c; background: #fef2f2; color: #450a0a; border-radius: 8px;
  padding: 0.75rem; }
.pcl-emergency .pcl-disclaimer { color: #450a0a; border-top-color: #fca5a5; }
.pcl-calls { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.pcl-call { display: inline-flex; align-items: center; min-height: 44px; padding: 0 1rem; border-radius: 8px;
  background: #b91c1c; color: #ffffff !important; font-weight: 700; text-decoration: none; }
.pcl-alert-label { font-weight: 700; color: #991b1b; text-transform: uppercase; letter-spacing: 0.03em; }
.pcl-kind-medical_advice > p:first-child { border-left: 4px solid #b45309; padding-left: 0.6rem; }
.pcl-sources { margin: 0.4rem 0 0.6rem; border: 1px solid #94a3b8; border-radius: 6px;
  background: #f8fafc; color: #1f2937; }
.pcl-sources summary { cursor: pointer; padding: 0.6rem 0.75rem; min-height: 44px; box-sizing: border-box;
  font-weight: 700; color: #1e3a8a; }
.pcl-hint { font-weight: 400; color: #374151; }
.pcl-source-list { list-style: none; margin: 0; padding: 0 0.75rem 0.5rem; }
.pcl-source { margin: 0 0 0.75rem; }
.pcl-source-head { margin: 0.25rem 0; }
.pcl-source .pcl-cite { color: #1d4ed8; }
.pcl-section { color: #374151; }
.pcl-passage { margin: 0.25rem 0; padding: 0.4rem 0.6rem; border-left: 3px solid #64748b; color: #1f2937;
  background: #fff; }
.pcl-passage mark { background: #fde68a; color: #111827; padding: 0 0.1em; }
.pcl-passage a, .pcl-link a { color: #1d4ed8; text-decoration: underline; }
.pcl-link { margin: 0.25rem 0 0; }
.pcl-link a { display: inline-block; padding: 0.6rem 0; }
.pcl-new-tab { color: #374151; }
.pcl-disclaimer { color: var(--body-text-color-subdued); margin: 0.5rem 0 0 !important;
  padding-top: 0.4rem; border-top: 1px solid var(--border-color-primary); }
/* Boxes with their own light background keep dark text in the browser's dark mode too. */
.pcl-banner, .pcl-banner * { color: #1e3a8a !important; }
.pcl-banner strong { color: #111827 !important; }
.pcl-emergency, .pcl-emergency *:not(.pcl-call) { color: #450a0a !important; }
.pcl-emergency .pcl-alert-label, .pcl-emergency .pcl-alert-label * { color: #991b1b !important; }
.pcl-sources, .pcl-sources * { color: #1f2937 !important; }
.pcl-sources summary { color: #1e3a8a !important; }
.pcl-sources .pcl-hint, .pcl-sources .pcl-section, .pcl-sources .pcl-new-tab { color: #374151 !important; }
.pcl-sources .pcl-cite, .pcl-sources a, .pcl-sources a * { color: #1d4ed8 !important; }
.pcl-sources .pcl-passage { background: #ffffff !important; }
.pcl-sources mark, .pcl-sources mark * { background: #fde68a !important; color: #111827 !important; }
.pcl-reply, .pcl-user, .pcl-passage { overflow-wrap: anywhere; }
@media (max-width: 640px) {
  #pcl-chat .message-row { padding-left: 4px !important; padding-right: 4px !important; }
  body, .gradio-container, .pcl-reply, .pcl-user, textarea, input, button, summary, .prose { font-size: 16px !important; }
  .pcl-header h1 { font-size: 1.4rem; }
  #pcl-chat .message { padding: 8px !important; }
  /* One scrolling area on a phone: the chat grows with the page, the question box stays in reach. */
  #pcl-chat { height: auto !important; max-height: none !important; }
  #pcl-chat [role="log"] { height: auto !important; overflow: visible !important; }
  #pcl-ask { position: sticky; bottom: 0; z-index: 5; background: var(--background-fill-primary);
    padding: 6px 8px; margin: 0 -8px; box-shadow: 0 -2px 6px rgba(15, 23, 42, 0.12); }
}
"""
