"""Reply -> safe HTML for one chat bubble: answer with [n] markers, a Sources block, the disclaimer.

Everything a person or a source wrote is escaped here, and the result goes through an nh3
allow-list, so neither a question nor a source sentence can inject markup, scripts or remote
images. The HTML is one line with no blank lines: the chat's Markdown renderer then treats it as
a raw HTML block and never re-reads the text as Markdown (so `![x](http://...)` stays text).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from urllib.parse import urlparse

import nh3

from bot.reply import Citation, Notice, Part, Quote, Reply, quote_text

EMERGENCY = "emergency"

_ALLOWED_TAGS = {
    "div", "p", "span", "strong", "em", "ul", "ol", "li", "a", "mark",
    "details", "summary", "blockquote", "br", "cite",
}  # fmt: skip
_ALLOWED_ATTRS = {
    "*": {"class"},
    "a": {"href", "target"},
    "div": {"role", "aria-label"},
    "details": {"open"},
    "span": {"aria-hidden"},
}

# One inline token of source or answer text: a Markdown image or link, a bare URL, **bold**, or [n].
_INLINE = re.compile(
    r"(?P<img>!)?\[(?P<ltext>[^\]\n]+)\]\((?P<lurl>https?://[^)\s]+)\)"
    r"|(?P<url>https?://[^\s<>\"]*[^\s<>\".,;:!?)\]’”])"
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|\[(?P<cite>\d{1,2})\]"
)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRS,
        url_schemes={"https", "http", "tel", "sms"},
        link_rel="noopener noreferrer",
    )


def _link(url: str, text: str) -> str:
    return f'<a href="{html.escape(url, quote=True)}" target="_blank">{html.escape(text)}</a>'


def inline(text: str, cites: frozenset[int] = frozenset()) -> str:
    """Escape `text`, keeping only links, bold and the citation markers of this reply."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        if m.group("img"):  # never load a remote image: its description stands in
            out.append(html.escape(m.group("ltext")))
        elif m.group("lurl"):
            out.append(_link(m.group("lurl"), m.group("ltext")))
        elif m.group("url"):
            out.append(_link(m.group("url"), m.group("url")))
        elif m.group("bold"):
            out.append(f"<strong>{inline(m.group('bold'), cites)}</strong>")
        elif int(m.group("cite")) in cites:
            n = m.group("cite")
            out.append(f'<span class="pcl-cite">[{n}]</span>')
        else:
            out.append(html.escape(m.group(0)))
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _notice_html(n: Notice) -> str:
    head = f"<strong>{html.escape(n.headline)}</strong> " if n.headline else ""
    return f'<p class="pcl-notice pcl-tone-{n.tone}">{head}{html.escape(n.text)}</p>'


def _quote_html(q: Quote, cites: frozenset[int]) -> str:
    cite = f' <span class="pcl-cite">[{q.n}]</span>' if q.n in cites else ""
    return inline(quote_text(q)) + cite


def parts_html(parts: tuple[Part, ...], cites: frozenset[int] = frozenset()) -> str:
    """Notices, framing and quotes as HTML: a block's quotes form one paragraph, list items a list."""
    blocks: list[str] = []
    text: list[str] = []
    items: list[str] = []
    current = None

    def flush() -> None:
        if text:
            blocks.append(f"<p>{' '.join(text)}</p>")
            text.clear()
        if items:
            blocks.append(f"<ul>{''.join(items)}</ul>")
            items.clear()

    for p in parts:
        if isinstance(p, Quote):
            if current is not None and p.block != current:
                flush()
            current = p.block
            if p.list_item:
                if text:
                    blocks.append(f"<p>{' '.join(text)}</p>")
                    text.clear()
                items.append(f"<li>{_quote_html(p, cites)}</li>")
            else:
                if items:
                    blocks.append(f"<ul>{''.join(items)}</ul>")
                    items.clear()
                text.append(_quote_html(p, cites))
            continue
        flush()
        current = None
        blocks.append(
            _notice_html(p) if isinstance(p, Notice) else f'<p class="pcl-framing">{html.escape(p.text)}</p>'
        )
    flush()
    return "".join(blocks)


def _highlight_spans(passage: str, sentences: tuple[str, ...]) -> list[tuple[int, int]]:
    spans = []
    for s in sentences:
        s = s.strip()
        i = passage.find(s) if s else -1
        if i >= 0 and not any(a < i + len(s) and i < b for a, b in spans):
            spans.append((i, i + len(s)))
    return sorted(spans)


def _passage_text(text: str) -> str:
    """Passage text as HTML: its own list lines become bullets, other line breaks stay breaks."""
    body = inline(text)
    body = re.sub(r"(^|\n)- ", r"\1• ", body)
    return body.replace("\n", "<br>")


def passage_html(c: Citation) -> str:
    """The retrieved passage with the cited sentences highlighted (or just the quote)."""
    passage = c.passage or c.quote
    sentences = c.sentences or (c.quote,)
    spans = _highlight_spans(passage, sentences)
    parts, pos = [], 0
    for a, b in spans:
        parts.append(_passage_text(passage[pos:a]))
        parts.append(f"<mark>{_passage_text(passage[a:b])}</mark>")
        pos = b
    parts.append(_passage_text(passage[pos:]))
    found = {passage[a:b] for a, b in spans}
    missing = [s for s in sentences if s.strip() and s.strip() not in found]
    if missing:  # the passage was reflowed; still show exactly what was quoted
        parts.append("<br>Quoted: " + " ".join(f"<mark>{inline(s)}</mark>" for s in missing))
    return "".join(parts)


def _source_label(c: Citation) -> str:
    """Say what the link opens: the article, the trial record, or a glossary entry's reference."""
    host = (urlparse(c.url).hostname or "").removeprefix("www.")
    where = f" on {host}" if host else ""
    if c.kind == "trial":
        return f"See the trial record{where}"
    if c.kind == "glossary":
        return f"Reference for this glossary entry{where}"
    return f"Read the original{where}"


def source_html(c: Citation) -> str:
    head = f'<span class="pcl-cite">[{c.n}]</span> <strong>{html.escape(c.title)}</strong>'
    if c.section:
        head += f' <span class="pcl-section">— section “{html.escape(c.section)}”</span>'
    link = ""
    if urlparse(c.url).scheme in ("https", "http"):
        link = f'<p class="pcl-link">{_link(c.url, _source_label(c))} <span class="pcl-new-tab">(opens a new tab)</span></p>'
    return (
        f'<li class="pcl-source"><p class="pcl-source-head">{head}</p>'
        f'<blockquote class="pcl-passage">{passage_html(c)}</blockquote>{link}</li>'
    )


def sources_html(citations: tuple[Citation, ...]) -> str:
    if not citations:
        return ""
    label = f"Sources ({len(citations)})"
    items = "".join(source_html(c) for c in citations)
    return (
        f'<details class="pcl-sources"><summary>{label} <span class="pcl-hint">quotes and links</span></summary>'
        f'<ol class="pcl-source-list">{items}</ol></details>'
    )


def _actions_html(parts: tuple[Part, ...]) -> str:
    """Tap-to-call and tap-to-text buttons for the numbers a notice offers (from Settings)."""
    actions = [a for p in parts if isinstance(p, Notice) for a in p.actions]
    links = "".join(
        f'<a class="pcl-call pcl-action-{a.kind}" href="{html.escape(a.href, quote=True)}">{html.escape(a.label)}</a>'
        for a in dict.fromkeys(actions)
    )
    return f'<p class="pcl-calls">{links}</p>' if links else ""


def reply_html(reply: Reply, shown: int | None = None, final: bool = True) -> str:
    """One assistant bubble. `shown` is how many parts to show while streaming."""
    cites = frozenset(c.n for c in reply.citations)
    parts = reply.parts if shown is None else reply.parts[:shown]
    body = parts_html(parts, cites)
    classes = f"pcl-reply pcl-kind-{reply.kind}"
    if reply.kind == EMERGENCY:
        body = f'<p class="pcl-alert-label"><span aria-hidden="true">⚠</span> Urgent</p>{body}{_actions_html(reply.parts)}'
        opening = f'<div class="{classes} pcl-emergency" role="alert">'
    else:
        opening = f'<div class="{classes}">'
    tail = ""
    if final:
        tail = (
            sources_html(reply.citations) + f'<p class="pcl-disclaimer">{html.escape(reply.disclaimer)}</p>'
        )
    return _clean(opening + body + tail + "</div>")


def stream_html(reply: Reply) -> Iterator[str]:
    """The bubble part by part, then whole with Sources and disclaimer.

    The engine composes the answer at once; showing it progressively lets a person start reading
    while the rest appears, like any chat. Emergency guidance is shown whole, straight away.
    """
    if reply.kind != EMERGENCY:
        for shown in range(1, len(reply.parts)):
            yield reply_html(reply, shown, final=False)
    yield reply_html(reply)


def user_html(text: str, limit: int) -> str:
    """A person's message, escaped; very long input is shown cut (the engine refuses it anyway)."""
    shown = text if len(text) <= limit else text[:limit] + "…"
    shown = _LONE_SURROGATE.sub("\ufffd", shown)  # not text; the sanitizer cannot encode it
    body = html.escape(shown).replace("\r\n", "\n").replace("\n", "<br>")
    return _clean(f'<div class="pcl-user">{body}</div>')


def pending_html() -> str:
    return '<div class="pcl-reply pcl-pending"><p>Looking in the article and trial records…</p></div>'


def error_html(text: str) -> str:
    return _clean(f'<div class="pcl-reply pcl-kind-error"><p>{html.escape(text)}</p></div>')
