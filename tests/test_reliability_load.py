"""Bounded load on the real app: 32 concurrent people for 40 s (PCL_LOAD_CLIENTS, PCL_LOAD_SECONDS).

Each simulated person loops: three questions on `/chat` (the public API), then one in a page tab
(the page's own send event) followed by a thumbs-up on that answer. Nothing may fail except the
documented busy answer (HTTP 503 "Queue is full" when more than PCL_MAX_QUEUE wait); every rating
the page confirmed is in the feedback log exactly once; memory stays flat once warm.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from reliability_fixtures import TRACE_MARKERS, VALID_KINDS, PageSession, guarded_app

from bot.interfaces import render
from bot.settings import REPO_ROOT, Settings

CLIENTS = int(os.environ.get("PCL_LOAD_CLIENTS", "32"))
SECONDS = float(os.environ.get("PCL_LOAD_SECONDS", "40"))
WARMUP_SECONDS = 8.0
DISCLAIMERS = {Settings().disclaimer_for(kind) for kind in VALID_KINDS}  # worded per kind
QUESTIONS = [
    "What is CT0596?",
    "What is plasma cell leukemia?",
    "What happened to the first two patients?",
    "Who can enroll in NCT05838131?",
    "What is the median overall survival for pPCL?",
    "Who wrote the article?",
    "Should I join the CT071 trial?",
    "I have a fever after CAR-T",
    "What is the weather tomorrow?",
    "What is GPRC5D?",
]


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    confirmed_ratings: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: str, seconds: float, detail: str = "") -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            if outcome == "ok":
                self.latencies.append(seconds)
            if outcome == "failed":
                self.failures.append(detail[:300])


def _api_question(http: httpx.Client, url: str, question: str, tally: Tally) -> None:
    call = url + "gradio_api/call/chat"
    started = time.perf_counter()
    try:
        posted = http.post(call, json={"data": [question]})
        if posted.status_code == 503 and "Queue is full" in posted.text:
            return tally.add("busy", 0.0)
        if posted.status_code != 200:
            return tally.add("failed", 0.0, f"POST {posted.status_code} {posted.text}")
        result = http.get(f"{call}/{posted.json()['event_id']}").text
    except httpx.HTTPError as exc:
        return tally.add("failed", 0.0, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    if (
        "event: complete" in result
        and any(d in result for d in DISCLAIMERS)
        and not any(m in result for m in TRACE_MARKERS)
    ):
        return tally.add("ok", seconds)
    if "Queue is full" in result:
        return tally.add("busy", 0.0)
    tally.add("failed", seconds, result)


def _page_question_and_rating(
    http: httpx.Client, url: str, config: dict, question: str, tag: str, tally: Tally
) -> None:
    tab = PageSession(url, http, config)
    started = time.perf_counter()
    try:
        done = tab.ask(f"{question} ({tag})")
    except httpx.HTTPError as exc:
        return tally.add("failed", 0.0, f"page: {type(exc).__name__}: {exc}")
    if done.get("msg") == "rejected" and done.get("status") == 503 or done.get("msg") == "queue_full":
        return tally.add("busy", 0.0)
    if not (done.get("msg") == "process_completed" and done.get("success")):
        return tally.add("failed", 0.0, f"page ask: {done}")
    bubbles = tab.bubbles()
    if not (len(bubbles) == 2 and render.note(tab.turns[-1]["payload"]["kind"]) in bubbles[1]):
        return tally.add("failed", 0.0, f"page bubbles: {bubbles}")
    tally.add("ok", time.perf_counter() - started)
    try:
        rated = tab.rate_last(liked=True)
    except httpx.HTTPError as exc:
        return tally.add("failed", 0.0, f"rate: {type(exc).__name__}: {exc}")
    if rated.get("msg") == "rejected" and rated.get("status") == 503:
        return tally.add("busy", 0.0)
    status = json.dumps(rated.get("output", {}))
    if "your rating was saved" in status:
        with tally.lock:
            tally.confirmed_ratings.append(tag)
    else:
        tally.add("failed", 0.0, f"rating not confirmed: {rated}")


def _person(n: int, url: str, config: dict, deadline: float, tally: Tally) -> None:
    with httpx.Client(timeout=120) as http:
        i = 0
        while time.monotonic() < deadline:
            question = QUESTIONS[(n + i) % len(QUESTIONS)]
            if i % 4 == 3:
                _page_question_and_rating(http, url, config, question, f"load-{n}-{i}", tally)
            else:
                _api_question(http, url, question, tally)
            i += 1


@pytest.fixture(scope="module")
def app(companion, settings):
    return guarded_app(str(settings.index.index_dir))


def test_bounded_load_loses_nothing_and_memory_stays_flat(app):
    config = httpx.get(app.url + "config", timeout=30).json()
    before_ratings = _ratings(app)
    tally = Tally()
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    deadline = start + WARMUP_SECONDS + SECONDS
    people = [
        threading.Thread(target=_person, args=(n, app.url, config, deadline, tally), daemon=True)
        for n in range(CLIENTS)
    ]
    for p in people:
        p.start()
    while any(p.is_alive() for p in people):
        samples.append((time.monotonic() - start, app.rss_mb()))
        time.sleep(0.5)
        assert time.monotonic() < deadline + 300, "clients did not finish"
    for p in people:
        p.join()

    total = sum(tally.outcomes.values())
    assert tally.failures == [], tally.failures[:5]
    assert app.alive()
    assert tally.outcomes["ok"] > CLIENTS, tally.outcomes  # the load really ran

    # Every rating the page confirmed was written, once; nothing else was.
    new = [r for r in _ratings(app) if r not in before_ratings]
    tags = [r["question"].rsplit("(", 1)[-1].rstrip(")") for r in new if "(load-" in r["question"]]
    assert sorted(tags) == sorted(tally.confirmed_ratings)
    assert len(set(tags)) == len(tags)
    assert all(set(r) == {"ts", "question", "kind", "sources", "rating"} for r in new)

    # Memory: after warm-up, the last quarter of the run is not above the first quarter.
    warm = [(t, mb) for t, mb in samples if WARMUP_SECONDS <= t <= WARMUP_SECONDS + SECONDS]
    quarter = max(1, len(warm) // 4)
    first = statistics.median(mb for _, mb in warm[:quarter])
    last = statistics.median(mb for _, mb in warm[-quarter:])
    growth = last - first
    assert growth < max(40.0, 0.08 * first), f"RSS grew {growth:.0f} MB ({first:.0f} -> {last:.0f})"

    _report(
        {
            "clients": CLIENTS,
            "seconds": SECONDS,
            "requests": total,
            "outcomes": dict(tally.outcomes),
            "ratings_confirmed": len(tally.confirmed_ratings),
            "ratings_logged": len(tags),
            "latency_s": {
                "p50": round(statistics.median(tally.latencies), 3),
                "p95": round(statistics.quantiles(tally.latencies, n=20)[-1], 3),
                "max": round(max(tally.latencies), 3),
            },
            "rss_mb": {"warm_first_quarter": round(first, 1), "last_quarter": round(last, 1)},
            "rss_peak_mb": round(max(mb for _, mb in samples), 1),
        }
    )


def _ratings(app) -> list[dict]:
    if not app.feedback_log.exists():
        return []
    return [json.loads(line) for line in app.feedback_log.read_text(encoding="utf-8").splitlines() if line]


def _report(result: dict) -> None:
    """For docs/reliability.md: printed (pytest -s) and kept in test-artifacts/ (git-ignored)."""
    print("\n[load]", json.dumps(result))
    out = REPO_ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "reliability-load.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
