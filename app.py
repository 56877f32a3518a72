"""Start the chat app: `python app.py [--host H] [--port P]` (see README "Chat app").

Loads the engine once (building the local index on the first start), then serves the page on
127.0.0.1:7860 unless GRADIO_SERVER_NAME / GRADIO_SERVER_PORT or --host / --port say otherwise.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
import time
from datetime import UTC, datetime

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


def port_problem(host: str, port: int) -> str | None:
    """Why the app could not listen on host:port, or None when it can.

    Checked before the model loads, so a busy port fails in a second instead of after the
    model, the index and Gradio have started. Binds the way uvicorn does (SO_REUSEADDR), so a
    port only in TIME_WAIT after an earlier run counts as free.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        return f"{host!r} is not an address this machine can listen on ({exc})"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use (is another `python app.py` running?)"
            return f"cannot listen on {host}:{port} ({exc.strerror or exc})"
    return None


def _built_now(companion, since: float) -> dict | None:
    """The index manifest when this start built the index, else None (it was only loaded)."""
    manifest = getattr(getattr(companion, "index", None), "manifest", None) or {}
    try:
        built_at = datetime.strptime(manifest["built_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (KeyError, TypeError, ValueError):
        return None
    return manifest if built_at.timestamp() >= int(since) and "build_seconds" in manifest else None


def _serving(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::"):
        return f"Serving on every address of this machine: http://127.0.0.1:{port} here, reachable from the network."
    shown = f"[{host}]" if ":" in host else host
    local = host in ("127.0.0.1", "localhost", "::1")
    return (
        f"Serving http://{shown}:{port} ({'this machine only' if local else 'reachable from the network'})."
    )


class _Server:
    """uvicorn on a thread of its own; the main thread waits for Ctrl-C (or SIGTERM)."""

    def __init__(self, app, host: str, port: int) -> None:
        import threading

        import uvicorn

        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="uvicorn", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self.error = exc

    def start(self, timeout: float = 60.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError(str(self.error) if self.error else "the server did not start")
            time.sleep(0.01)

    def running(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _server(app, host: str, port: int) -> _Server:
    return _Server(app, host, port)


def limit_malloc_growth() -> bool:
    """glibc's malloc under many threads: at most 2 arenas, and blocks of 1 MB or more always
    mapped on their own, so they go back to the system when freed.

    The server answers on dozens of threads, and onnxruntime allocates each run's buffers with
    malloc (`bot/store/encoders.py`). By default glibc gives each thread arena its own heap and
    raises its mmap threshold as large blocks are freed, so those buffers end up kept in
    per-thread heaps: the app measured ~820 MB at its peak under 64 clients, ~530 MB with these two
    settings (start: ~490 MB). Set before any thread starts; MALLOC_ARENA_MAX or
    MALLOC_MMAP_THRESHOLD_ in the environment win. False where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_arena_max, m_mmap_threshold = -8, -3  # <malloc.h>
    done = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        done &= mallopt(m_arena_max, 2) == 1
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done &= mallopt(m_mmap_threshold, 1 << 20) == 1
    return done


def import_page_early():
    """Import the page's modules (Gradio, FastAPI, uvicorn: the slowest imports of the app) on a
    thread while the engine loads. Loading the models and the index spends most of its time in
    onnxruntime and Chroma code that releases the GIL, so the two overlap. A failure here is left
    for the main thread's own import, where its error is reported."""
    import threading

    def run() -> None:
        try:
            import uvicorn  # noqa: F401

            import bot.interfaces.api  # noqa: F401
            import bot.interfaces.ui  # noqa: F401
        except BaseException:  # noqa: BLE001, S110 - imported again on the main thread
            pass

    thread = threading.Thread(target=run, name="import-page", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_malloc_growth()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2
    problem = port_problem(args.host, args.port)
    if problem:
        print(
            f"Cannot start: {problem}. Stop the other app, or pick a free port: "
            f"python app.py --port {args.port + 1 if args.port < 65535 else 8080} "
            "(or set GRADIO_SERVER_PORT).",
            file=sys.stderr,
        )
        return 1

    # Say something at once: the imports below (torch, Chroma, Gradio) take seconds on their own.
    print("Loading the embedding model and the local index (the first start builds it)…", flush=True)
    started, started_wall = time.perf_counter(), time.time()
    try:
        import onnxruntime  # noqa: F401  (before the page's import starts: no module is imported twice at once)
        import tokenizers  # noqa: F401

        from bot.pipeline import Companion

        page = import_page_early()
        try:
            companion = Companion(settings, progress=True)
        except (CorpusError, IndexError_, ConfigError) as exc:
            print(f"Cannot start: {exc}", file=sys.stderr)
            return 1
        engine_s = time.perf_counter() - started
        page.join()
        from bot.interfaces.ui import build, launch_options
    except KeyboardInterrupt:
        print("\nStopped before the app was ready.", file=sys.stderr)
        return 130
    built = _built_now(companion, started_wall)
    if built:
        chunks = f" ({built['chunks']} passages)" if "chunks" in built else ""
        print(f"Index built in {float(built['build_seconds']):.1f} s{chunks}.", flush=True)
    print(f"Engine ready in {engine_s:.1f} s. Starting the web page…", flush=True)

    demo = build(companion)
    demo.queue(default_concurrency_limit=settings.app.concurrency_limit, max_size=settings.app.max_queue)
    # One server for the page, Gradio's /chat and the JSON API (/api/ask, /api/health, /api/docs):
    # the FastAPI app with the page mounted at / (bot/interfaces/api.py).
    from bot.interfaces.api import create_api, mount_page

    server = _server(mount_page(create_api(companion), demo, launch_options()), args.host, args.port)
    try:
        server.start()
    except OSError as exc:
        print(
            f"Cannot listen on {args.host}:{args.port} ({exc}). Is another app using the port? "
            "Pass --port or set GRADIO_SERVER_PORT to a free one.",
            file=sys.stderr,
        )
        return 1
    print(f"{_serving(args.host, args.port)} Press Ctrl-C to stop.", flush=True)
    try:
        while server.running():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        demo.close()
    print("\nStopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
