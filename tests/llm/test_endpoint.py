"""The OpenAI-compatible endpoint path (`PCL_LLM_BASE_URL`): langchain-openai's ChatOpenAI against
a small server on loopback that serves the same real model (SmolLM2) with the OpenAI chat
completions API, streaming included. (llama-cpp-python's server would need a C++ build of
llama.cpp here; this server is test code, 127.0.0.1 only, stopped at the end of the module.)
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from bot.answer.generate import Generate
from bot.llm.events import Checked, Final, Token
from evals.dataset import Corpus
from evals.metrics import check_grounding

pytestmark = pytest.mark.llm

_MESSAGES = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}


def make_handler(model, seen: list):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet test output
            return

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self.send_error(404)
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            messages = [_MESSAGES[m["role"]](content=m["content"]) for m in body["messages"]]
            limit = body.get("max_completion_tokens") or body.get("max_tokens") or 120
            cid, created = f"chatcmpl-{uuid.uuid4().hex[:8]}", int(time.time())

            def chunk(delta: dict, finish=None) -> bytes:
                data = {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                return f"data: {json.dumps(data)}\n\n".encode()

            if not body.get("stream"):
                text = "".join(c.text for c in model.stream(messages, max_new_tokens=limit))
                out = json.dumps(
                    {
                        "id": cid,
                        "object": "chat.completion",
                        "created": created,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                self.wfile.write(chunk({"role": "assistant", "content": ""}))
                stream = model.stream(messages, max_new_tokens=limit)
                for piece in stream:
                    self.wfile.write(chunk({"content": piece.text}))
                    self.wfile.flush()
                self.wfile.write(chunk({}, "stop") + b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):  # the client closed the stream early
                stream.close()
            self.close_connection = True

    return Handler


@pytest.fixture(scope="module")
def endpoint(chat_model):
    seen: list = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(chat_model, seen))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def endpoint_bot(companion, settings, endpoint):
    import copy
    import dataclasses

    url, _ = endpoint
    s = settings.with_overrides(llm_base_url=url, llm_model="SmolLM2-135M-Instruct", llm_timeout=120.0)
    bot = copy.copy(companion)
    bot.settings = s
    bot.pipeline = dataclasses.replace(companion.pipeline, generate=Generate(s.llm, companion.embedder))
    return bot


def test_an_openai_compatible_endpoint_streams_checked_sentences(endpoint_bot, endpoint, companion, settings):
    url, seen = endpoint
    corpus = Corpus.load(settings.index.corpus_dir)
    for question in ("What is CT0596?", "Who sponsors NCT06333509?"):
        started = time.perf_counter()
        first = None
        events = []
        for e in endpoint_bot.ask_stream(question):
            if first is None and isinstance(e, Token):
                first = time.perf_counter() - started
            events.append(e)
        assert isinstance(events[-1], Final)
        reply = events[-1].reply
        assert any(isinstance(e, Token) for e in events) and any(isinstance(e, Checked) for e in events)
        assert check_grounding(reply, corpus, settings).ok, reply.answer
        if reply.mode == "extractive":
            assert reply.parts == companion.ask(question).parts
        print(
            f"\nendpoint: {question!r} -> {reply.mode}, dropped {reply.dropped}/{reply.drafted}, first token {first:.2f} s"
        )
    body = seen[-1]
    assert body["stream"] is True and body["model"] == "SmolLM2-135M-Instruct"
    assert body["messages"][0]["role"] == "system" and "[1]" in body["messages"][-1]["content"]
