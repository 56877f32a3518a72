"""The JSON API for integrators, beside the chat page: `POST /api/ask`, `GET /api/health`.

`python app.py` serves this FastAPI app with the Gradio page mounted on it (`serve`), so one
process and one port hold the page, Gradio's `/chat` endpoint and this API. The contract is the
one `python -m bot ask --json` prints (README "JSON contract"): send
`{"question": "...", "history": [{"role": "user", "content": "..."}], "id": "..."}` (history and
id optional), get the same object the CLI prints. OpenAPI docs: `/api/docs`.

Limits, checked before the engine sees a request: bodies over `PCL_API_MAX_BODY_BYTES` get 413;
more than `PCL_API_RATE_PER_MINUTE` requests from one address (after a burst of
`PCL_API_RATE_BURST`) get 429 with `Retry-After`. A malformed body gets 400 or 422 with a
sentence saying what to send instead; an engine failure a plain 500 sentence (the trace goes to
the server log, never to the client).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.settings import ApiSettings

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
UNLIMITED = ("/api/health", "/api/docs", "/api/openapi.json")  # cheap reads: no rate limit
EXAMPLE = {"question": "What is CT0596?"}
SORRY = "Something went wrong on our side while answering. Please try again in a moment."


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"] = Field(description="who said it")
    content: str = Field(description="what was said (the assistant's answer text as it was shown)")


class AskRequest(BaseModel):
    """One question, with the conversation so far when it is a follow-up."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                EXAMPLE,
                {
                    "id": "q-2",
                    "question": "Who can enroll in it?",
                    "history": [{"role": "user", "content": "Tell me about CT071"}],
                },
            ]
        },
    )
    question: str = Field(description="the question as the person typed it")
    history: list[Turn] = Field(
        default_factory=list, max_length=100, description="earlier turns, oldest first (optional)"
    )
    id: str | int | None = Field(default=None, description="echoed back as a string (optional)")


class CitationOut(BaseModel):
    n: int
    source_id: str
    title: str
    url: str
    section: str
    quote: str = Field(description="the exact cited text")


class AskResponse(BaseModel):
    """The same object `python -m bot ask --json` prints (README "JSON contract")."""

    id: str | None = Field(default=None, description="present when the request had one")
    question: str
    answer: str = Field(description="Markdown with [n] markers")
    kind: Literal["answer", "not_found", "out_of_scope", "medical_advice", "emergency", "invalid", "support"]
    reason: str
    citations: list[CitationOut]
    follow_ups: list[str]
    disclaimer: str
    latency_ms: float


class Problem(BaseModel):
    error: str = Field(description="what went wrong and what to do, in a sentence")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("pcl-companion")
    except Exception:  # noqa: BLE001 - running from a source tree that was never installed
        return "0.0.0"


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _explain(errors: list[dict[str, Any]]) -> str:
    """The first validation error as a sentence a person can act on."""
    if not errors:
        return 'Send a JSON object such as {"question": "What is CT0596?"}.'
    e = errors[0]
    where = [str(p) for p in e.get("loc", ()) if p != "body"]
    field = ".".join(where)
    kind = e.get("type", "")
    if kind == "json_invalid":
        detail = e.get("ctx", {}).get("error", "")
        return (
            f"The body is not valid JSON ({detail or 'could not be parsed'}). Send a JSON object such as "
            '{"question": "What is CT0596?"} with Content-Type: application/json.'
        )
    if not where or kind in ("model_attributes_type", "dict_type"):
        return 'The body must be a JSON object such as {"question": "What is CT0596?"}.'
    if kind == "missing":
        if field == "question":
            return 'The field "question" is missing. Send {"question": "What is CT0596?"}.'
        return f'The field "{field}" is missing.'
    if kind == "extra_forbidden":
        allowed = "role and content" if where[0] == "history" else "question, history and id"
        return f'The field "{field}" is not part of the request; the allowed fields are {allowed}.'
    if where[0] == "history":
        if kind == "too_long":
            return "The history is too long: send at most the last 100 turns."
        return (
            f'"{field}" is not right: history must be a list of turns like '
            '{"role": "user", "content": "What is CT0596?"} (role "user" or "assistant").'
        )
    if where[0] == "question":
        return 'The field "question" must be a string, e.g. {"question": "What is CT0596?"}.'
    if where[0] == "id":
        return 'The field "id" must be a string or a number.'
    return f'The field "{field}" is not right: {e.get("msg", "invalid value")}.'


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens, self.at = tokens, at


class RateLimiter:
    """A token bucket per client address: `burst` at once, then `per_minute` spread evenly."""

    def __init__(self, per_minute: int, burst: int, max_clients: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def wait_needed(self, client: str, now: float | None = None) -> float:
        """0 when the request may go ahead (and is counted), else seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            b = self._buckets.get(client)
            if b is None:
                if len(self._buckets) >= self.max_clients:  # forget the quietest half, not everyone
                    for key in sorted(self._buckets, key=lambda k: self._buckets[k].at)[
                        : self.max_clients // 2
                    ]:
                        del self._buckets[key]
                b = self._buckets[client] = _Bucket(self.burst, now)
            b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
            b.at = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) / self.rate


class Limits:
    """ASGI middleware for /api/: request size and rate, before any parsing or engine work."""

    def __init__(self, app, settings: ApiSettings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.limiter = RateLimiter(settings.rate_per_minute, settings.rate_burst)

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIX):
            return await self.app(scope, receive, send)
        if path not in UNLIMITED:
            client = (scope.get("client") or ("unknown", 0))[0]
            wait = self.limiter.wait_needed(client)
            if wait > 0:
                retry = max(1, int(wait + 0.999))
                return await _problem(
                    429,
                    f"Too many requests from your address; try again in {retry} s "
                    "(the limit is set by PCL_API_RATE_PER_MINUTE).",
                    {"Retry-After": str(retry)},
                )(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = _problem(
            413, f"The request body is larger than {self.max_body:,} bytes; send one question at a time."
        )
        if length is not None:
            try:
                if int(length) > self.max_body:
                    return await too_big(scope, receive, send)
            except ValueError:
                return await _problem(400, "The Content-Length header is not a number.")(scope, receive, send)
            return await self.app(scope, receive, send)
        # No length given (chunked): read it here, up to the limit, then hand it on whole.
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, receive, send)  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await too_big(scope, receive, send)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def create_api(companion, settings=None) -> FastAPI:
    """The FastAPI app with /api/ask and /api/health; mount the page on it (see `serve`)."""
    settings = settings or companion.settings
    api = FastAPI(
        title="PCL companion API",
        version=_version(),
        description=(
            "Cited answers about relapsed plasma cell leukemia and allogeneic CAR-T, from one "
            "article and the clinical-trial records it links to. Not medical advice: every reply "
            "carries a disclaimer, and urgent messages get emergency guidance first."
        ),
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    api.add_middleware(Limits, settings=settings.api)
    started = time.time()

    @api.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        status = 400 if errors and errors[0].get("type") == "json_invalid" else 422
        message = _explain(errors)
        kind = request.headers.get("content-type", "")
        if "json" not in kind.lower():
            message += f" (The request was sent as {kind or 'no content type'}: send Content-Type: application/json.)"
        return _problem(status, message)

    @api.post(
        "/api/ask",
        response_model=AskResponse,
        responses={
            400: {"model": Problem, "description": "the body is not JSON"},
            413: {"model": Problem, "description": "the body is too large"},
            422: {"model": Problem, "description": "the JSON does not match the request"},
            429: {"model": Problem, "description": "too many requests from this address"},
            500: {"model": Problem, "description": "the engine failed; try again"},
        },
        summary="Answer one question (the JSON contract of `python -m bot ask --json`)",
    )
    def ask(body: AskRequest) -> JSONResponse:
        # A plain `def`: FastAPI runs it on a worker thread, so questions asked at the same time
        # meet in the engine's batcher.
        try:
            reply = companion.ask(body.question, [t.model_dump() for t in body.history])
            out = reply.to_json(id=None if body.id is None else str(body.id))
        except Exception:
            log.exception("answering an API request failed")
            return _problem(500, SORRY)
        return JSONResponse(out)

    @api.get("/api/health", summary="Index, models and version of the running engine")
    def health() -> dict:
        manifest = companion.index.manifest or {}
        classifier = getattr(companion, "classifier", None)
        embedder = companion.embedder
        encoder = getattr(companion.embeddings, "encoder", None)
        return {
            "status": "ok",
            "version": _version(),
            "uptime_s": round(time.time() - started, 1),
            "index": {
                k: manifest.get(k)
                for k in ("fingerprint", "chunks", "sentences", "built_at", "encoder", "sources")
            }
            | {"notice": companion.index.notice or None},
            "models": {
                "runtime": "onnxruntime",
                "embed": encoder.path.name if encoder is not None else None,
                "safety": classifier.encoder.path.name if classifier is not None else None,
                "safety_version": classifier.version if classifier is not None else None,
                "embed_int8": settings.models.embed_int8,
                "safety_int8": settings.models.safety_int8,
            },
            "batching": {
                "embed": embedder.batcher.stats(),
                "safety": classifier.batcher.stats() if classifier is not None else None,
            },
        }

    return api


def mount_page(api: FastAPI, demo, options: dict[str, Any]) -> FastAPI:
    """Mount the Gradio page (built by `bot.interfaces.ui.build`) at / on the API app, with the
    launch options `mount_gradio_app` understands (share/quiet belong to `launch` only)."""
    import inspect

    import gradio as gr

    accepted = set(inspect.signature(gr.mount_gradio_app).parameters)
    return gr.mount_gradio_app(api, demo, path="/", **{k: v for k, v in options.items() if k in accepted})
