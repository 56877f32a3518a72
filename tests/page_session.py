"""One browser tab's traffic without a browser: what the chat page sends, for load and leak tests.

The page keeps the conversation itself and asks through Gradio's queue with the documented HTTP
calls: `POST gradio_api/call/respond` with [question, earlier turns, turn id], then the event
stream of that call; a rating is `POST gradio_api/call/rate` with the rating data the answer
came with. `PageSession` does the same with an httpx client and keeps the same results as the
older helper of that name (`ask`, `bubbles`, `rate_last`), so tests written for it keep working.
With an LLM configured the answer streams: the `generating` updates the page would show before
the final reply are kept in `updates` (the last call's, in order, with their arrival times).
"""

from __future__ import annotations

import json
import time

from bot.interfaces import render
from bot.settings import Settings


class PageSession:
    def __init__(self, url: str, client, config: dict | None = None) -> None:
        self.url, self.client = url, client
        self.max_chars = Settings().safety.max_question_chars
        self.turns: list[dict] = []  # question, payload: what the page keeps in localStorage
        self.updates: list[dict] = []  # the last call's streamed updates ("streaming": true)
        self.update_times: list[float] = []  # seconds from the POST to each update, then the end

    def _call(self, name: str, data: list) -> dict:
        """POST call/<name> (ASCII-escaped JSON, as a browser sends it), then read its stream."""
        call = self.url + "gradio_api/call/" + name
        self.updates, self.update_times = [], []
        started = time.perf_counter()
        posted = self.client.post(
            call, content=json.dumps({"data": data}).encode(), headers={"Content-Type": "application/json"}
        )
        if posted.status_code != 200:
            return {"msg": "rejected", "status": posted.status_code, "text": posted.text}
        event, payload = None, None
        with self.client.stream("GET", f"{call}/{posted.json()['event_id']}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "generating":
                    update = (json.loads(line[5:]) or [None])[0]
                    if isinstance(update, dict) and update.get("streaming"):
                        self.updates.append(update)
                        self.update_times.append(time.perf_counter() - started)
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = json.loads(line[5:])
                    self.update_times.append(time.perf_counter() - started)
                    break
        if event == "complete":
            return {"msg": "process_completed", "success": True, "output": {"data": payload}}
        return {"msg": "process_completed", "success": False, "output": {"error": payload}}

    def history(self) -> list[dict]:
        turns = []
        for t in self.turns:
            if t["payload"].get("answer"):
                turns += [
                    {"role": "user", "content": t["question"]},
                    {"role": "assistant", "content": t["payload"]["answer"]},
                ]
        return turns

    def ask(self, question: str) -> dict:
        done = self._call("respond", [question, self.history(), f"t{len(self.turns) + 1}"])
        if done.get("success"):
            self.turns.append({"question": question, "payload": done["output"]["data"][0]})
        return done

    def bubbles(self) -> list[str]:
        """The page's bubbles as HTML: each question (escaped) and its reply, in order."""
        out = []
        for t in self.turns:
            out += [render.user_html(t["question"], self.max_chars), t["payload"]["html"]]
        return out

    def rate_last(self, liked: bool = True) -> dict:
        rating = self.turns[-1]["payload"].get("rating") if self.turns else None
        return self._call("rate", [rating, "up" if liked else "down"])
