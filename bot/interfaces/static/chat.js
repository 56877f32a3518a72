// The chat page of the PCL companion (bot/interfaces/ui.py runs this once the page has loaded).
//
// The conversation lives here and in localStorage: a reload, a dropped connection or a restarted
// server loses neither the answers nor a half-typed question. Questions go one at a time through
// Gradio's queue (POST gradio_api/call/respond, then its event stream); a question sent while an
// answer is on its way waits, exactly as typed, and is sent when that answer ends. A failed
// request is tried again until it gets through (or the person presses Stop). The server renders
// each answer (safe HTML); everything built here uses textContent, never HTML from text.
// With a language model configured on the server, the answer's stream also carries `generating`
// updates while the model writes: the bubble as it stands (checked sentences, then grey text not
// checked yet). They replace one another in the bubble, which is aria-busy until the final answer
// replaces them all, so a screen reader reads the answer once, whole, not each word.

const STORE = "pcl-companion:conversation:v1";
const PREFS = "pcl-companion:prefs:v1";
const SIZES = [1, 1.125, 1.25, 1.5, 1.75, 2];
const KEEP_TURNS = 60;

const boot = () => {
  const app = document.getElementById("pcl-app");
  if (!app) {
    setTimeout(boot, 30);
    return;
  }
  if (app.dataset.booted) return;
  app.dataset.booted = "1";
  start(app);
};

function start(app) {
  const cfg = JSON.parse(app.dataset.config);
  const $ = (id) => document.getElementById(id);
  const el = {
    log: $("pcl-log"), empty: $("pcl-empty"), form: $("pcl-composer"), box: $("pcl-q"),
    send: $("pcl-send"), stop: $("pcl-stop"), count: $("pcl-count"), help: $("pcl-help"),
    live: $("pcl-live"), tools: $("pcl-conv-tools"), dialog: $("pcl-confirm"), undo: $("pcl-undo"),
    undoText: $("pcl-undo-text"), smaller: $("pcl-smaller"), larger: $("pcl-larger"),
  };
  // Phones have no Shift key to speak of: the hint is for keyboards only.
  const HELP = window.matchMedia("(pointer: coarse)").matches ? "" : el.help.textContent;
  const fmt = (n) => n.toLocaleString("en-US");
  const chars = (text) => Array.from(text).length; // code points, as the server counts them

  // ------------------------------------------------------------------ storage

  const load = () => {
    try {
      const saved = JSON.parse(localStorage.getItem(STORE) || "null");
      if (saved && Array.isArray(saved.turns)) return saved;
    } catch (e) { /* unreadable: start afresh */ }
    return { seq: 0, turns: [], draft: "" };
  };
  let state = load();
  let prefs = {};
  try { prefs = JSON.parse(localStorage.getItem(PREFS) || "{}") || {}; } catch (e) { prefs = {}; }
  const save = () => {
    state.turns = state.turns.slice(-KEEP_TURNS);
    try {
      localStorage.setItem(STORE, JSON.stringify(state));
    } catch (e) {
      say("This browser could not keep the conversation: it may be lost on reload.");
    }
  };
  const savePrefs = () => {
    try { localStorage.setItem(PREFS, JSON.stringify(prefs)); } catch (e) { /* private mode */ }
  };

  // ------------------------------------------------------------------ small helpers

  const make = (tag, props = {}, children = []) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "text") node.textContent = v;
      else if (k === "className") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c) node.append(c);
    return node;
  };
  const short = (text, n = 60) => {
    const one = text.replace(/\s+/g, " ").trim();
    return one.length > n ? one.slice(0, n - 1) + "…" : one;
  };
  let liveTimer = null;
  const say = (text) => { // polite announcement for screen readers
    clearTimeout(liveTimer);
    el.live.textContent = "";
    liveTimer = setTimeout(() => { el.live.textContent = text; }, 60);
  };
  const when = (iso) => {
    const d = iso ? new Date(iso) : new Date();
    return d.toLocaleString("en-US", { dateStyle: "long", timeStyle: "short" });
  };
  const reduced = () => window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  const sleep = (ms, signal) => new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      window.removeEventListener("online", done);
      signal && signal.removeEventListener("abort", done);
      resolve();
    }
    window.addEventListener("online", done);
    signal && signal.addEventListener("abort", done);
  });
  const apiBase = () => {
    const path = location.pathname.endsWith("/") ? location.pathname : location.pathname.replace(/[^/]*$/, "");
    return location.origin + path + "gradio_api/";
  };

  class Busy extends Error {}
  class Offline extends Error {}
  class Failed extends Error {}

  // One call through Gradio's queue: POST call/<name>, then read its event stream to the end;
  // `onUpdate` gets each streamed update (`generating` with "streaming": true) before the end.
  async function call(name, data, signal, onUpdate) {
    const session = Math.random().toString(36).slice(2, 14);
    let posted, stream;
    try {
      posted = await fetch(apiBase() + "call/" + name, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ data, session_hash: session }),
        signal,
      });
    } catch (e) {
      if (signal && signal.aborted) throw e;
      throw new Offline(String(e));
    }
    if (posted.status === 503) throw new Busy("queue full");
    if (posted.status >= 500) throw new Offline("server " + posted.status);
    if (!posted.ok) throw new Failed("HTTP " + posted.status);
    const { event_id: eventId } = await posted.json();
    try {
      stream = await fetch(apiBase() + "call/" + name + "/" + eventId, { signal });
      if (!stream.ok) throw new Offline("stream " + stream.status);
      const reader = stream.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const chunk = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = (/^event: (.*)$/m.exec(chunk) || [])[1];
          const payload = (/^data: (.*)$/m.exec(chunk) || [])[1];
          if (event === "complete") return JSON.parse(payload)[0];
          if (event === "generating" && onUpdate && payload) {
            // A preview that cannot be shown is skipped: the final answer still comes.
            try {
              const update = JSON.parse(payload)[0];
              if (update && update.streaming) onUpdate(update);
            } catch (err) { /* not shown */ }
          }
          if (event === "error") {
            if (payload && payload.includes("Queue is full")) throw new Busy("queue full");
            throw new Failed(payload || "error");
          }
        }
      }
    } catch (e) {
      if (e instanceof Busy || e instanceof Failed || (signal && signal.aborted)) throw e;
      throw new Offline(String(e));
    }
    throw new Offline("the answer stream ended early");
  }

  // ------------------------------------------------------------------ the conversation's view

  const turnNode = (t) => document.getElementById("pcl-turn-" + t.id);
  const done = (t) => t.status === "done" && t.r && t.r.kind !== "error";

  function userBubble(t) {
    const h = make("h3", { className: "pcl-who", id: `pcl-${t.id}-you`, text: "You" });
    const text = make("p", { className: "pcl-user-text", text: t.q });
    const asked = make("p", { className: "pcl-when", text: "Asked " + when(t.at) });
    const node = make("article", { className: "pcl-msg pcl-msg-user", "aria-labelledby": h.id }, [h, text, asked]);
    if (t.status === "waiting") {
      const note = make("p", { className: "pcl-waiting" }, [
        document.createTextNode("Waiting: sent when the answer above ends. "),
        make("button", {
          type: "button", className: "pcl-btn pcl-link-btn", text: "Don't send",
          "aria-label": `Don't send “${short(t.q)}”`, onclick: () => dropWaiting(t),
        }),
      ]);
      node.append(note);
    }
    return node;
  }

  function botShell(t) {
    const h = make("h3", { className: "pcl-who", id: `pcl-${t.id}-bot`, text: "PCL companion" });
    return make("article", { className: "pcl-msg pcl-msg-bot", "aria-labelledby": h.id }, [h]);
  }

  function pendingBody(t, message, retry) {
    const p = make("p", { className: "pcl-pending-text" }, [
      make("span", { className: "pcl-spinner", "aria-hidden": "true" }),
      document.createTextNode(message),
    ]);
    const box = make("div", { className: "pcl-reply pcl-pending", role: "status" }, [p]);
    if (retry) {
      box.append(make("p", {}, [make("button", {
        type: "button", className: "pcl-btn", text: "Try now", onclick: () => retryNow(),
      })]));
    }
    return box;
  }

  function renderTurn(t) {
    let node = turnNode(t);
    const fresh = make("li", { className: "pcl-turn", id: "pcl-turn-" + t.id });
    fresh.append(userBubble(t));
    if (t.status !== "waiting") {
      const bot = botShell(t);
      if (t.status === "sending") bot.append(pendingBody(t, t.wait || "Looking in the article and trial records…", t.retrying));
      else if (t.status === "stopped") bot.append(stoppedBody(t));
      else if (t.r) fillBot(bot, t);
      fresh.append(bot);
    }
    if (node) node.replaceWith(fresh);
    else el.log.append(fresh);
    node = fresh;
    return node;
  }

  function stoppedBody(t) {
    const box = make("div", { className: "pcl-reply pcl-stopped" }, [
      make("p", { text: t.r ? "You stopped this answer before it was shown." : "You stopped this question before it was answered." }),
    ]);
    const row = make("p", { className: "pcl-row" });
    if (t.r) {
      row.append(make("button", { type: "button", className: "pcl-btn", text: "Show the answer",
        "aria-label": `Show the answer to “${short(t.q)}”`, onclick: () => { t.status = "done"; save(); renderTurn(t); refresh(); } }));
    }
    row.append(make("button", { type: "button", className: "pcl-btn", text: "Ask again",
      "aria-label": `Ask again: “${short(t.q)}”`, onclick: () => submit(t.q) }));
    box.append(row);
    return box;
  }

  function fillBot(bot, t) {
    const holder = make("div", { className: "pcl-reply-holder" });
    holder.innerHTML = t.r.html; // rendered and sanitised on the server (render.py)
    bot.append(holder);
    if (t.r.kind === "error") {
      bot.append(make("p", { className: "pcl-row" }, [make("button", {
        type: "button", className: "pcl-btn", text: "Try again",
        "aria-label": `Try again: “${short(t.q)}”`, onclick: () => { t.status = "waiting"; t.r = null; save(); renderTurn(t); pump(); },
      })]));
      return;
    }
    bot.append(after(t));
  }

  // What follows an answer: a prompt to ask the parts of a several-question message one at a
  // time, the suggested next questions, and the answer's own tools (copy, print, share, rate).
  function after(t) {
    const r = t.r;
    const box = make("div", { className: "pcl-after" });
    const chips = (questions, labelId, label) => {
      const list = make("ul", { className: "pcl-chips", "aria-labelledby": labelId });
      for (const q of questions) {
        list.append(make("li", {}, [make("button", {
          type: "button", className: "pcl-chip", text: q, onclick: () => submit(q),
        })]));
      }
      return [make("p", { className: "pcl-chips-h", id: labelId, text: label }), list];
    };
    if (r.ask_separately && r.ask_separately.length) {
      const all = r.ask_separately.length >= (r.questions || 0);
      const part = make("div", { className: "pcl-separately" }, chips(
        r.ask_separately, `pcl-${t.id}-sep`,
        all
          ? "Your message asked several questions at once, and this answer may not cover them. Ask them one at a time:"
          : `Your message asked several questions at once, and this answer covers only part of it. ${r.ask_separately.length === 1 ? "Ask this one on its own:" : "Ask these one at a time:"}`,
      ));
      box.append(part);
    }
    const offered = new Set([t.q.trim(), ...(r.ask_separately || [])]);
    const next = (r.follow_ups || []).filter((q) => !offered.has(q));
    if (next.length) {
      box.append(make("div", { className: "pcl-suggest" }, chips(next, `pcl-${t.id}-next`, "You could also ask:")));
    }
    const about = `the answer to “${short(t.q)}”`;
    const row = make("div", { className: "pcl-row pcl-tools-row", role: "group", "aria-label": `Tools for ${about}` });
    row.append(
      make("button", { type: "button", className: "pcl-btn", text: "Copy", "aria-label": `Copy ${about}`, onclick: () => copy([t], "answer") }),
      make("button", { type: "button", className: "pcl-btn", text: "Print", "aria-label": `Print ${about}`, onclick: () => print([t]) }),
      make("button", { type: "button", className: "pcl-btn", text: "Share", "aria-label": `Share ${about}`, onclick: () => share([t]) }),
    );
    if (r.rating) {
      for (const [value, text] of [["up", "Helpful"], ["down", "Not helpful"]]) {
        row.append(make("button", {
          type: "button", className: "pcl-btn pcl-rate", "data-rate": value,
          "aria-pressed": String(t.rated === value), "aria-label": `${text}: rate ${about}`,
          onclick: () => rate(t, value),
        }, [document.createTextNode(text)]));
      }
    }
    box.append(row);
    box.append(make("p", { className: "pcl-tool-status", role: "status", id: `pcl-${t.id}-status` }));
    return box;
  }

  function toolStatus(t, text) {
    const s = document.getElementById(`pcl-${t.id}-status`);
    if (s) s.textContent = text;
  }

  // Show a freshly arrived answer block by block; emergencies whole and at once.
  async function reveal(t, token) {
    const node = renderTurn(t);
    const bot = node.querySelector(".pcl-msg-bot");
    const blocks = [...bot.querySelectorAll(".pcl-answer > *")];
    const urgent = t.r.kind === "emergency" || reduced() || streamed.has(t); // streamed: read along
    bot.classList.add("pcl-revealing");
    if (blocks[0]) blocks[0].classList.add("pcl-shown");
    markFirstText(t);
    if (t.queued) offerJump(bot); // the person may still be reading the answer before it
    else showAnswerStart(bot);
    if (!urgent) {
      for (const b of blocks.slice(1)) {
        await sleep(cfg.revealMs);
        if (token !== runToken) return false;
        b.classList.add("pcl-shown");
      }
    }
    bot.classList.remove("pcl-revealing");
    blocks.forEach((b) => b.classList.remove("pcl-shown"));
    return true;
  }

  // An answer to a question that waited its turn arrives while the person may be reading the one
  // before: the page does not scroll away from it, it offers a button that goes to the new one.
  const jump = $("pcl-jump");
  let jumpTo = null;
  function offerJump(bot) {
    const composer = el.form.getBoundingClientRect().top;
    const top = bot.getBoundingClientRect().top;
    if (top >= 0 && top + 48 <= composer) return;
    jumpTo = bot;
    jump.hidden = false;
  }
  jump.addEventListener("click", () => {
    if (jumpTo) jumpTo.scrollIntoView({ block: "start", behavior: "auto" });
    const heading = jumpTo && jumpTo.querySelector(".pcl-who");
    jump.hidden = true;
    jumpTo = null;
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
  });
  window.addEventListener("scroll", () => {
    if (!jumpTo) return;
    const top = jumpTo.getBoundingClientRect().top;
    if (top >= 0 && top + 48 <= el.form.getBoundingClientRect().top) {
      jump.hidden = true;
      jumpTo = null;
    }
  }, { passive: true });

  // Turns whose answer streamed in this run, and whose first text was marked (not kept on reload).
  const streamed = new WeakSet();
  const marked = new WeakSet();
  function markFirstText(t) {
    if (marked.has(t)) return;
    marked.add(t);
    try { performance.mark("pcl-first-text-" + t.id); } catch (e) { /* old browser */ }
  }

  // The model's answer as it is written: each update replaces the last one in the same holder,
  // which stays aria-busy (screen readers wait for the final answer, announced once).
  function streamUpdate(t, update, token) {
    if (token !== runToken || t.status !== "sending" || !update.html) return;
    const bot = turnNode(t)?.querySelector(".pcl-msg-bot");
    if (!bot) return;
    let holder = bot.querySelector(".pcl-stream-holder");
    if (!holder) {
      bot.querySelector(".pcl-reply.pcl-pending")?.remove();
      holder = make("div", { className: "pcl-reply-holder pcl-stream-holder", "aria-busy": "true" });
      bot.append(holder);
      streamed.add(t);
      markFirstText(t);
    }
    holder.innerHTML = update.html; // rendered and sanitised on the server (render.py)
  }

  // Scroll so the answer reads from its first line: its question at the top of the screen when
  // the question is short, else the answer itself (the page keeps room for the question box).
  function showAnswerStart(bot) {
    const user = bot.previousElementSibling;
    const room = el.form.getBoundingClientRect().top;
    const target = user && user.getBoundingClientRect().height < room * 0.4 ? user : bot;
    target.scrollIntoView({ block: "start", behavior: "auto" });
  }

  function refresh() {
    const any = state.turns.length > 0;
    el.empty.hidden = any;
    el.tools.hidden = !state.turns.some(done);
    const active = current();
    const busy = Boolean(active);
    app.classList.toggle("pcl-busy", busy);
    el.log.setAttribute("aria-busy", String(busy));
    el.stop.hidden = !busy;
    el.stop.setAttribute("aria-label", busy ? `Stop the answer to “${short(active.q)}”` : "Stop");
    counter();
  }

  // ------------------------------------------------------------------ sending, one at a time

  let runToken = 0;
  let controller = null;
  let retryWake = null;
  const current = () => state.turns.find((t) => t.status === "sending" || t.status === "revealing");

  function history(upTo) {
    const turns = [];
    for (const t of state.turns) {
      if (t === upTo) break;
      if (done(t) && t.r.answer) turns.push({ role: "user", content: t.q }, { role: "assistant", content: t.r.answer });
    }
    return turns.slice(-24);
  }

  function submit(text) {
    if (!text.trim()) return false;
    if (chars(text) > cfg.maxChars) return false;
    forgetUndo();
    state.seq += 1;
    const t = { id: "t" + state.seq, q: text, at: new Date().toISOString(), status: "waiting", r: null, queued: Boolean(current()) };
    state.turns.push(t);
    save();
    renderTurn(t);
    if (current()) say("Your question is kept and will be sent when the current answer ends.");
    pump();
    refresh();
    return true;
  }

  function pump() {
    if (current()) return;
    const next = state.turns.find((t) => t.status === "waiting");
    if (next) run(next);
    refresh();
  }

  async function run(t) {
    const token = ++runToken;
    controller = new AbortController();
    const signal = controller.signal;
    t.status = "sending";
    t.wait = "";
    t.retrying = false;
    streamed.delete(t);
    marked.delete(t);
    save();
    const node = renderTurn(t);
    if (!t.queued) node.scrollIntoView({ block: "start", behavior: "auto" });
    refresh();
    try { performance.mark("pcl-sent-" + t.id); } catch (e) { /* old browser */ }
    let attempt = 0;
    let reply = null;
    while (token === runToken) {
      try {
        reply = await call("respond", [t.q, history(t), t.id], signal, (u) => streamUpdate(t, u, token));
        break;
      } catch (e) {
        if (token !== runToken || signal.aborted) return;
        if (e instanceof Failed) {
          reply = { kind: "error", html: "", answer: "" };
          break;
        }
        attempt += 1;
        const wait = e instanceof Busy ? 3000 : Math.min(8000, 1000 * 2 ** Math.min(attempt - 1, 3));
        t.retrying = true;
        t.wait = e instanceof Busy
          ? `The app is busy answering other people. Trying again in ${Math.round(wait / 1000)} s; your question is kept.`
          : `No connection to the app. Trying again in ${Math.round(wait / 1000)} s; your question is kept.`;
        renderTurn(t);
        if (attempt === 1) say(t.wait);
        const wake = new AbortController();
        retryWake = wake;
        await sleep(wait, AbortSignal.any ? AbortSignal.any([signal, wake.signal]) : signal);
        if (token !== runToken || signal.aborted) return;
        t.wait = "Trying again…";
        renderTurn(t);
      }
    }
    if (token !== runToken) return;
    if (reply.kind === "error" && !reply.html) {
      reply.html = `<div class="pcl-reply pcl-kind-error"><p>${"Sorry, something went wrong on our side while answering. Please try again in a moment."}</p></div>`;
    }
    t.r = reply;
    t.status = "revealing";
    t.wait = "";
    t.retrying = false;
    save();
    const complete = await reveal(t, token);
    if (!complete) return;
    t.status = "done";
    save();
    controller = null;
    if (reply.kind !== "emergency") say("PCL companion answered: " + (reply.plain || "").slice(0, 400));
    refresh();
    pump();
  }

  function retryNow() {
    if (retryWake) retryWake.abort();
  }

  function stop() {
    const t = current();
    if (!t) return;
    runToken += 1;
    if (controller) controller.abort();
    controller = null;
    t.status = "stopped";
    t.wait = "";
    save();
    renderTurn(t);
    say("Stopped.");
    refresh();
    el.box.focus();
    pump();
  }

  function dropWaiting(t) {
    state.turns = state.turns.filter((x) => x !== t);
    save();
    turnNode(t)?.remove();
    say("That question will not be sent.");
    refresh();
    el.box.focus();
  }

  // ------------------------------------------------------------------ the question box

  function counter() {
    const n = chars(el.box.value);
    const max = cfg.maxChars;
    el.count.textContent = `${fmt(n)} / ${fmt(max)} characters`;
    const over = n > max;
    const near = !over && n >= max * 0.9;
    el.count.classList.toggle("pcl-near", near);
    el.count.classList.toggle("pcl-over", over);
    el.box.setAttribute("aria-invalid", String(over));
    el.send.setAttribute("aria-disabled", String(over));
    let help = HELP;
    if (over) help = `Too long: ${fmt(n)} characters, and the limit is ${fmt(max)}. Please shorten it by ${fmt(n - max)} to send it (nothing is cut).`;
    else if (near) help = `${fmt(max - n)} characters left.`;
    else if (current()) help = "An answer is on its way. You can type: your next question is sent after it.";
    el.help.textContent = help;
    el.help.classList.toggle("pcl-over", over);
    const level = over ? "over" : near ? "near" : "ok";
    if (level !== counter.level && level !== "ok") say(help);
    counter.level = level;
  }

  function autosize() {
    el.box.style.height = "auto";
    el.box.style.height = Math.min(el.box.scrollHeight + 2, window.innerHeight * 0.35) + "px";
  }

  let draftTimer = null;
  el.box.addEventListener("input", () => {
    counter();
    autosize();
    clearTimeout(draftTimer);
    draftTimer = setTimeout(() => { state.draft = el.box.value; save(); }, 150);
  });
  el.box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  el.form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  function send() {
    const text = el.box.value;
    if (chars(text) > cfg.maxChars) {
      counter();
      say(el.help.textContent);
      el.box.focus();
      return;
    }
    if (!submit(text)) return;
    el.box.value = "";
    state.draft = "";
    save();
    counter();
    autosize();
    el.box.focus();
  }
  el.stop.addEventListener("click", stop);
  window.addEventListener("pagehide", () => { state.draft = el.box.value; save(); });

  // ------------------------------------------------------------------ clicks inside the log

  el.log.addEventListener("click", (e) => {
    const cite = e.target.closest("a.pcl-cite");
    if (!cite) return;
    const card = document.getElementById(cite.getAttribute("href").slice(1));
    if (!card) return;
    e.preventDefault();
    openCard(card);
  });
  function openCard(card) {
    const box = card.querySelector("details.pcl-card-box");
    if (box) box.open = true;
    card.classList.remove("pcl-flash");
    void card.offsetWidth;
    card.classList.add("pcl-flash");
    const summary = card.querySelector("summary");
    card.scrollIntoView({ block: "nearest", behavior: "auto" });
    (summary || card).focus({ preventScroll: true });
    const rect = card.getBoundingClientRect();
    if (rect.bottom > el.form.getBoundingClientRect().top || rect.top < 0) card.scrollIntoView({ block: "center" });
  }
  for (const b of el.empty.querySelectorAll("button.pcl-example")) {
    b.addEventListener("click", () => submit(b.textContent));
  }

  // ------------------------------------------------------------------ rating

  async function rate(t, value) {
    const next = t.rated === value ? "withdrawn" : value;
    const buttons = turnNode(t)?.querySelectorAll("button.pcl-rate") || [];
    toolStatus(t, "Saving your rating…");
    try {
      const message = await call("rate", [t.r.rating, next]);
      if (/saved|withdrawn/.test(message)) {
        t.rated = next === "withdrawn" ? null : next;
        save();
        buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.rate === t.rated)));
      }
      toolStatus(t, message);
    } catch (e) {
      toolStatus(t, "Sorry, your rating could not be sent. Please check the connection and try again.");
    }
  }

  // ------------------------------------------------------------------ copy, print, share

  function turnText(t) {
    const lines = [`You asked (${when(t.at)}): ${t.q}`, "", "PCL companion: " + (t.r.plain || "")];
    if (t.r.sources) lines.push("", "Sources:", t.r.sources);
    if (t.r.note) lines.push("", t.r.note);
    return lines.join("\n");
  }
  function documentText(turns) {
    const what = turns.length === 1 ? "An answer" : "A conversation";
    return [
      `${cfg.title}: ${what} from ${when()}`,
      "",
      turns.map(turnText).join("\n\n----------\n\n"),
      "",
      cfg.disclaimer,
      location.origin + location.pathname,
    ].join("\n");
  }
  async function writeClipboard(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {
      const area = make("textarea", { className: "pcl-offscreen", "aria-hidden": "true", tabindex: "-1" });
      area.value = text;
      document.body.append(area);
      area.select();
      let ok = false;
      try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
      area.remove();
      return ok;
    }
  }
  const announce = (turns, text) => {
    if (turns.length === 1) toolStatus(turns[0], text);
    else allStatus(text);
    say(text);
  };
  function allStatus(text) {
    let s = document.getElementById("pcl-all-status");
    if (!s) {
      s = make("p", { id: "pcl-all-status", className: "pcl-tool-status", role: "status" });
      el.tools.append(s);
    }
    s.textContent = text;
  }
  async function copy(turns) {
    const ok = await writeClipboard(documentText(turns));
    const what = turns.length === 1 ? "The answer" : "The conversation";
    announce(turns, ok ? `${what}, its sources and the date are copied: paste them into an email or a note.` : "Sorry, this browser did not allow copying.");
  }
  async function share(turns) {
    const text = documentText(turns);
    if (navigator.share) {
      try {
        await navigator.share({ title: cfg.title, text });
        announce(turns, "Shared.");
        return;
      } catch (e) {
        if (e && e.name === "AbortError") return;
      }
    }
    const ok = await writeClipboard(text);
    announce(turns, ok
      ? "This browser cannot share directly, so the text is copied: paste it into an email or a message."
      : "Sorry, this browser can neither share nor copy.");
  }
  function print(turns) {
    const picked = new Set(turns.map((t) => t.id));
    app.querySelector(".pcl-print-date").textContent = "Printed " + when();
    app.classList.add("pcl-printing");
    const opened = [];
    for (const t of state.turns) {
      const node = turnNode(t);
      if (!node) continue;
      node.classList.toggle("pcl-print-skip", !picked.has(t.id));
      node.querySelectorAll("details:not([open])").forEach((d) => { d.open = true; opened.push(d); });
    }
    const restore = () => {
      app.classList.remove("pcl-printing");
      opened.forEach((d) => { d.open = false; });
      app.querySelectorAll(".pcl-print-skip").forEach((n) => n.classList.remove("pcl-print-skip"));
    };
    window.addEventListener("afterprint", restore, { once: true });
    window.print();
    setTimeout(() => { if (!window.matchMedia("print").matches) restore(); }, 1000);
  }
  el.tools.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-all]");
    if (!b) return;
    const turns = state.turns.filter(done);
    if (!turns.length) return;
    if (b.dataset.all === "copy") copy(turns);
    if (b.dataset.all === "print") print(turns);
    if (b.dataset.all === "share") share(turns);
  });

  // ------------------------------------------------------------------ delete, with undo

  let undone = null;
  $("pcl-delete").addEventListener("click", () => {
    if (typeof el.dialog.showModal === "function") el.dialog.showModal();
    else if (window.confirm("Delete this conversation?")) erase();
  });
  $("pcl-confirm-no").addEventListener("click", () => {
    el.dialog.close();
    $("pcl-delete").focus();
  });
  $("pcl-confirm-yes").addEventListener("click", () => {
    el.dialog.close();
    erase();
  });
  function erase() {
    runToken += 1;
    if (controller) controller.abort();
    controller = null;
    const settle = { sending: "waiting", revealing: "done" };
    undone = state.turns.map((t) => (settle[t.status] ? { ...t, status: settle[t.status] } : t));
    state.turns = [];
    save();
    el.log.replaceChildren();
    refresh();
    el.undoText.textContent = "Conversation deleted.";
    el.undo.hidden = false;
    $("pcl-undo-btn").focus();
  }
  $("pcl-undo-btn").addEventListener("click", () => {
    if (!undone) return;
    state.turns = undone.concat(state.turns);
    undone = null;
    save();
    el.log.replaceChildren();
    state.turns.forEach(renderTurn);
    el.undo.hidden = true;
    say("The conversation is back.");
    refresh();
    el.box.focus();
    pump();
  });
  $("pcl-undo-close").addEventListener("click", () => {
    forgetUndo();
    el.box.focus();
  });
  function forgetUndo() {
    undone = null;
    el.undo.hidden = true;
  }

  // ------------------------------------------------------------------ text size

  function applySize() {
    const i = Math.max(0, Math.min(SIZES.length - 1, prefs.size || 0));
    prefs.size = i;
    document.documentElement.style.setProperty("--pcl-scale", String(SIZES[i]));
    el.smaller.setAttribute("aria-disabled", String(i === 0));
    el.larger.setAttribute("aria-disabled", String(i === SIZES.length - 1));
    autosize();
    return SIZES[i];
  }
  const resize = (step) => {
    const before = prefs.size || 0;
    prefs.size = Math.max(0, Math.min(SIZES.length - 1, before + step));
    const scale = applySize();
    savePrefs();
    say(prefs.size === before ? "The text is already at its " + (step > 0 ? "largest." : "smallest.") : `Text size ${Math.round(scale * 100)}%.`);
  };
  el.smaller.addEventListener("click", () => resize(-1));
  el.larger.addEventListener("click", () => resize(1));

  // ------------------------------------------------------------------ the box stays in reach

  // The question box is fixed at the bottom; the page keeps room for it, and scrolling to an
  // answer or a focused control leaves it uncovered. With an on-screen keyboard the browser either
  // shrinks the page (interactive-widget=resizes-content) or only the visual viewport: then the
  // box is lifted by the keyboard's height.
  const meta = document.querySelector('meta[name="viewport"]');
  if (meta && !/interactive-widget/.test(meta.content)) meta.content += ", interactive-widget=resizes-content";
  const room = () => {
    document.documentElement.style.setProperty("--pcl-composer-h", el.form.offsetHeight + "px");
  };
  new ResizeObserver(room).observe(el.form);
  const vv = window.visualViewport;
  const lift = () => {
    const hidden = vv ? Math.max(0, window.innerHeight - vv.height - vv.offsetTop) : 0;
    el.form.style.bottom = hidden > 1 ? hidden + "px" : "";
    document.documentElement.style.setProperty("--pcl-lift", hidden + "px");
  };
  if (vv) {
    vv.addEventListener("resize", lift);
    vv.addEventListener("scroll", lift);
  }
  el.box.addEventListener("focus", () => setTimeout(() => { lift(); }, 300));

  // ------------------------------------------------------------------ start

  for (const t of state.turns) {
    t.queued = false;
    if (t.status === "sending") t.status = "waiting"; // cut off by a reload: send it again
    if (t.status === "revealing") t.status = "done";
    renderTurn(t);
  }
  el.box.value = state.draft || "";
  applySize();
  counter();
  autosize();
  room();
  refresh();
  pump();
  window.addEventListener("storage", (e) => {
    if (e.key === PREFS) {
      try { prefs = JSON.parse(e.newValue || "{}") || {}; } catch (err) { prefs = {}; }
      applySize();
    }
  });
  document.documentElement.dataset.pclReady = "1"; // wired up (the tests wait for it)
}

boot();
