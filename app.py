"""Start the chat app: `python app.py [--host H] [--port P]` (see README "Chat app").

Loads the engine once (building the local index on the first start), then serves the page on
127.0.0.1:7860 unless GRADIO_SERVER_NAME / GRADIO_SERVER_PORT or --host / --port say otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import bot  # noqa: F401  (first: pins the process offline before gradio is imported)
from bot.errors import CorpusError, IndexError_
from bot.settings import ConfigError, Settings


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number; use 1..65535") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range; use 1..65535")
    return port


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(description="Chat with cited answers about relapsed PCL and allo CAR-T.")
    p.add_argument(
        "--host",
        default=env.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1, this machine only)",
    )
    p.add_argument(
        "--port",
        type=_port,
        default=env.get("GRADIO_SERVER_PORT") or "7860",
        help="port to listen on (default: $GRADIO_SERVER_PORT or 7860)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2

    # Say something at once: the imports below (torch, Chroma, Gradio) take seconds on their own.
    print("Loading the embedding model and the local index (the first start builds it)…", flush=True)
    started = time.perf_counter()
    from bot.interfaces.ui import build, launch_options
    from bot.pipeline import Companion

    try:
        companion = Companion(settings, progress=True)
    except (CorpusError, IndexError_, ConfigError) as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"Engine ready in {time.perf_counter() - started:.1f} s. Starting the web page…", flush=True)

    demo = build(companion)
    demo.queue(default_concurrency_limit=settings.app.concurrency_limit, max_size=settings.app.max_queue)
    try:
        demo.launch(server_name=args.host, server_port=args.port, **launch_options())
    except OSError as exc:
        print(
            f"Cannot listen on {args.host}:{args.port} ({exc}). Is another app using the port? "
            "Pass --port or set GRADIO_SERVER_PORT to a free one.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
