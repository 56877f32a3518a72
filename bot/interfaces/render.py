"""Reply -> safe HTML for one answer bubble: the answer with [n] links, its source cards, a note.

Everything a person or a source wrote is escaped here, and the result goes through an nh3
allow-list, so neither a question nor a source sentence can inject markup, scripts or remote
images. The page (`bot/interfaces/static/chat.js`) inserts this HTML as it is; its own controls
(copy, print, share, rating, suggestions) are built in the browser from plain text, never HTML.

Each `[n]` is a real link to its source card in the same bubble (`#pcl-src-<turn>-<n>`), so it is
focusable and works without script; the page opens the card and moves focus to it. Only the
sources the answer cites get a card. The bubble ends with a short note whose wording fits the
reply's kind: the full disclaimer is shown once, at the top of the page.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlparse

import nh3

from bot.reply import Citation, Framing, Generated, Notice, Part, Quote, Reply, quote_text

EMERGENCY = "emergency"
# Kinds whose sentences come from the sources (the others are the bot's own fixed texts).
QUOTING = ("answer", "medical_advice")

_ALLOWED_TAGS = {
    "div", "p", "span", "strong", "em", "ul", "ol", "li", "a", "mark", "h4",
    "details", "summary", "blockquote", "br", "cite",
}  # fmt: skip
_ALLOWED_ATTRS = {
    "*": {"class", "id"},
    "a": {"href", "target", "aria-label", "data-n"},
    "div": {"role", "aria-label"},
    "details": {"open"},
    "span": {"aria-hidden"},
    "li": {"data-kind"},
}
# Where a link may point: the web, a phone call or a text, or a card of the same bubble.
_URL_SCHEMES = {"https", "http", "tel", "sms"}
_TURN = re.compile(r"[a-z][a-z0-9]{0,15}")

# One inline token of source or answer text: a Markdown image or link, a bare URL, or **bold**.
_INLINE = re.compile(
    r"(?P<img>!)?\[(?P<ltext>[^\]\n]+)\]\((?P<lurl>https?://[^)\s]+)\)"
    r"|(?P<url>https?://[^\s<>\"]*[^\s<>\".,;:!?)\]’”])"
    r"|\*\*(?P<bold>.+?)\*\*"
)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(fragment: str) -> str:
    fragment = _LONE_SURROGATE.sub("\ufffd", fragment)  # not text; the sanitizer cannot encode it
    return nh3.clean(
        fragment,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRS,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
    )


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _link(url: str, text: str, new_tab_hint: bool = False) -> str:
    hint = ' <span class="pcl-new-tab">(opens a new tab)</span>' if new_tab_hint else ""
    return f'<a href="{_esc(url)}" target="_blank">{_esc(text)}{hint}</a>'


def inline(text: str) -> str:
    """Escape `text`, keeping only web links and bold (a Markdown image becomes its description)."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(_esc(text[pos : m.start()]))
        if m.group("img"):  # never load a remote image: its description stands in
            out.append(_esc(m.group("ltext")))
        elif m.group("lurl"):
            out.append(_link(m.group("lurl"), m.group("ltext")))
        elif m.group("url"):
            out.append(_link(m.group("url"), m.group("url")))
        else:
            out.append(f"<strong>{inline(m.group('bold'))}</strong>")
        pos = m.end()
    out.append(_esc(text[pos:]))
    return "".join(out)


def turn_id(turn: object) -> str:
    """The bubble's id as the page numbers it ("t3"); anything else becomes "t0"."""
    return turn if isinstance(turn, str) and _TURN.fullmatch(turn) else "t0"


def card_id(turn: str, n: int) -> str:
    return f"pcl-src-{turn}-{n}"


def source_kind(c: Citation) -> str:
    """What a source is, in a few words a patient knows (the article, a trial record, the glossary)."""
    if c.kind == "glossary":
        return "the app's glossary"
    if c.kind == "trial":
        return "a trial record"
    return "the article"


def _cite(n: int, turn: str, by_n: dict[int, Citation]) -> str:
    c = by_n.get(n)
    if c is None:
        return ""
    label = f"Source {n}, {source_kind(c)}"
    return (
        f' <a class="pcl-cite" href="#{card_id(turn, n)}" data-n="{n}" aria-label="{_esc(label)}">[{n}]</a>'
    )


def _notice_html(n: Notice) -> str:
    head = f"<strong>{_esc(n.headline)}</strong> " if n.headline else ""
    return f'<p class="pcl-notice pcl-tone-{_esc(n.tone)}">{head}{_esc(n.text)}</p>'


def parts_html(parts: tuple[Part, ...], turn: str = "t0", citations: tuple[Citation, ...] = ()) -> str:
    """Notices, framing and quotes as HTML: a block's quotes form one paragraph, list items a list."""
    by_n = {c.n: c for c in citations}
    blocks: list[str] = []
    text: list[str] = []
    items: list[str] = []
    current = None

    def flush_text() -> None:
        if text:
            blocks.append(f"<p>{' '.join(text)}</p>")
            text.clear()

    def flush_items() -> None:
        if items:
            blocks.append(f"<ul>{''.join(items)}</ul>")
            items.clear()

    for p in parts:
        if isinstance(p, Generated):  # a model's sentence: plain text, never a link it wrote
            if current is not None and p.block != current:
                flush_text()
            flush_items()
            current = p.block
            text.append(_esc(p.text) + "".join(_cite(n, turn, by_n) for n in p.ns))
            continue
        if isinstance(p, Quote):
            if current is not None and p.block != current:
                flush_text()
                flush_items()
            current = p.block
            quoted = inline(quote_text(p)) + _cite(p.n, turn, by_n)
            if p.list_item:
                flush_text()
                items.append(f"<li>{quoted}</li>")
            else:
                flush_items()
                text.append(quoted)
            continue
        flush_text()
        flush_items()
        current = None
        if isinstance(p, Notice):
            blocks.append(_notice_html(p))
        elif isinstance(p, Framing):
            blocks.append(f'<p class="pcl-framing">{_esc(p.text)}</p>')
    flush_text()
    flush_items()
    return "".join(blocks)


def _highlight_spans(passage: str, sentences: tuple[str, ...]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
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


def _host(url: str) -> str:
    return (urlparse(url).hostname or "").removeprefix("www.")


def _source_label(c: Citation) -> str:
    """Say what the link opens: the article, the trial record, or a glossary entry's reference."""
    host = _host(c.url)
    where = f" on {host}" if host else ""
    if c.kind == "trial":
        return f"See the trial record{where}"
    if c.kind == "glossary":
        return f"Public reference for this term{where}"
    return f"Read the original article{where}"


def _card_label(c: Citation) -> str:
    """The card's one-line summary: what kind of source, and where in it."""
    if c.kind == "glossary":
        return f"Glossary · {c.section}" if c.section else "Glossary"
    what = "Trial record" if c.kind == "trial" else "Article"
    return f"{what} · section “{c.section}”" if c.section else what


def card_html(c: Citation, turn: str = "t0") -> str:
    """One compact source card: a one-line summary (number, kind, section), opened by its [n].

    Inside: the source's title, the quoted sentences highlighted, the link, and the whole
    passage one tap further. A glossary card says the entry was written for this app and links
    to its public reference.
    """
    summary = (
        f'<summary><span class="pcl-card-n">[{c.n}]</span> '
        f'<span class="pcl-card-label">{_esc(_card_label(c))}</span></summary>'
    )
    title = f'<p class="pcl-card-title">{_esc(c.title)}</p>'
    about = ""
    if c.kind == "glossary":
        title = f'<p class="pcl-card-title">{_esc(c.section or c.title)}</p>'
        about = (
            '<p class="pcl-card-about">From this app’s own plain-language glossary, written for '
            "the app from public references; it is not part of the article.</p>"
        )
    sentences = [s for s in (c.sentences or (c.quote,)) if s.strip()]
    quote = " ".join(f"<mark>{inline(s)}</mark>" for s in sentences)
    link = ""
    if urlparse(c.url).scheme in ("https", "http"):
        link = f'<p class="pcl-card-link">{_link(c.url, _source_label(c), new_tab_hint=True)}</p>'
    passage = ""
    if c.passage and c.passage.strip() != " ".join(sentences).strip():
        passage = (
            '<details class="pcl-passage-more"><summary>Show the passage around it</summary>'
            f'<blockquote class="pcl-passage">{passage_html(c)}</blockquote></details>'
        )
    return (
        f'<li class="pcl-card pcl-card-{_esc(c.kind or "article")}" id="{card_id(turn, c.n)}" data-kind="{_esc(c.kind)}">'
        f'<details class="pcl-card-box">{summary}<div class="pcl-card-body">{title}{about}'
        f'<blockquote class="pcl-card-quote">{quote}</blockquote>{link}{passage}</div></details></li>'
    )


def cited(parts: tuple[Part, ...], citations: tuple[Citation, ...]) -> tuple[Citation, ...]:
    """The citations the answer actually points to, in number order."""
    used = {p.n for p in parts if isinstance(p, Quote)} | {
        n for p in parts if isinstance(p, Generated) for n in p.ns
    }
    return tuple(sorted((c for c in citations if c.n in used), key=lambda c: c.n))


def sources_html(citations: tuple[Citation, ...], turn: str = "t0") -> str:
    if not citations:
        return ""
    cards = "".join(card_html(c, turn) for c in citations)
    return (
        '<div class="pcl-sources"><h4 class="pcl-sources-h">Sources<span class="pcl-screen-only">, '
        "tap to open</span>:</h4>"
        f'<ol class="pcl-cards">{cards}</ol></div>'
    )


def actions_html(parts: tuple[Part, ...]) -> str:
    """Tap-to-call and tap-to-text buttons for the numbers a notice offers (from Settings)."""
    actions = [a for p in parts if isinstance(p, Notice) for a in p.actions]
    links = "".join(
        f'<a class="pcl-call pcl-action-{_esc(a.kind)}" href="{_esc(a.href)}">{_esc(a.label)}</a>'
        for a in dict.fromkeys(actions)
    )
    return f'<p class="pcl-calls">{links}</p>' if links else ""


def note(kind: str, emergency_number: str = "911", mode: str = "extractive") -> str:
    """The short line under each reply, worded for its kind (the full disclaimer is at the top)
    and, for an answer a language model wrote (`mode` generated), saying so."""
    if mode == "generated" and kind == "answer":
        return (
            "Written by a language model from the sources, each sentence checked against the one "
            "it cites; not medical advice: ask your care team how it applies to you."
        )
    if mode == "generated" and kind == "medical_advice":
        return (
            "General information written by a language model from the sources, each sentence "
            "checked against the one it cites: your care team decides what is right for you."
        )
    if kind == "answer":
        return "The sources’ own words, not medical advice: ask your care team how they apply to you."
    if kind == "medical_advice":
        return "General information, not medical advice: your care team decides what is right for you."
    if kind == EMERGENCY:
        return f"This app cannot call for help or judge symptoms. Use the buttons above, or call {emergency_number}."
    if kind == "support":
        return f"Not medical advice. If you ever feel unsafe, call {emergency_number}."
    if kind == "invalid":
        return ""
    return "Not medical advice. Your care team is the best source for your own situation."


def reply_html(reply: Reply, turn: str = "t0", emergency_number: str = "911") -> str:
    """One assistant bubble: the answer, its call/text buttons, its source cards, its note."""
    turn = turn_id(turn)
    sources = cited(reply.parts, reply.citations)
    body = f'<div class="pcl-answer">{parts_html(reply.parts, turn, sources)}</div>'
    classes = f"pcl-reply pcl-kind-{_esc(reply.kind)}"
    if reply.mode == "generated":
        classes += " pcl-generated"
    if reply.kind == EMERGENCY:
        label = '<p class="pcl-alert-label"><span aria-hidden="true">⚠</span> Urgent</p>'
        body = label + body
        opening = f'<div class="{classes} pcl-emergency" role="alert">'
    else:
        opening = f'<div class="{classes}">'
    text = note(reply.kind, emergency_number, reply.mode)
    tail = actions_html(reply.parts) + sources_html(sources, turn)
    if text:
        tail += f'<p class="pcl-note">{_esc(text)}</p>'
    return _clean(opening + body + tail + "</div>")


DRAFTING_NOTE = (
    "Writing the answer from the sources. Grey text is not checked yet: each sentence stays only "
    "if the source it cites supports it."
)


def drafting_html(
    kind: str,
    own_parts: tuple[Part, ...],
    kept: tuple[Generated, ...],
    draft: str,
    dropped: int = 0,
    turn: str = "t0",
) -> str:
    """The bubble while a language model writes the answer: the reply's own parts first (the
    care-team notice of medical advice), the sentences the grounding guard kept so far, then the
    model's newest text, not checked yet (grey). The final bubble (`reply_html`) replaces it; its
    [n] are plain text here, since the source cards come with the final answer."""
    sentences = [
        f'<span class="pcl-checked">{_esc(g.text)}'
        + "".join(f' <span class="pcl-cite-n">[{n}]</span>' for n in g.ns)
        + "</span>"
        for g in kept
    ]
    if draft.strip():
        sentences.append(f'<span class="pcl-draft">{_esc(draft.strip())}</span>')
    text = f"<p>{' '.join(sentences)}</p>" if sentences else ""
    removed = ""
    if dropped:
        what = "sentence" if dropped == 1 else "sentences"
        removed = f" Removed so far: {dropped} {what} its source did not support."
    status = (
        f'<p class="pcl-drafting-note"><span class="pcl-spinner" aria-hidden="true"></span>'
        f"<span>{_esc(DRAFTING_NOTE + removed)}</span></p>"
    )
    body = f'<div class="pcl-answer">{parts_html(own_parts, turn)}{text}</div>'
    return _clean(f'<div class="pcl-reply pcl-kind-{_esc(kind)} pcl-drafting">{body}{status}</div>')


def user_html(text: str, limit: int) -> str:
    """A person's message, escaped; text beyond `limit` is not shown, and the bubble says so."""
    shown = text if len(text) <= limit else text[:limit]
    shown = _LONE_SURROGATE.sub("\ufffd", shown)
    body = _esc(shown).replace("\r\n", "\n").replace("\n", "<br>")
    if len(text) > limit:
        body += f' <em class="pcl-cut">(… {len(text) - limit:,} more characters not shown)</em>'
    return _clean(f'<div class="pcl-user">{body}</div>')


def pending_html() -> str:
    return '<div class="pcl-reply pcl-pending"><p>Looking in the article and trial records…</p></div>'


def error_html(text: str) -> str:
    return _clean(f'<div class="pcl-reply pcl-kind-error"><p>{_esc(text)}</p></div>')
