"""Command line: `python -m bot index|ask|fetch-trials` (see README "Command line")."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bot.errors import CorpusError, IndexError_
from bot.settings import ConfigError, Settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bot", description="Cited answers about relapsed PCL and allo CAR-T."
    )
    sub = p.add_subparsers(dest="command", required=True)

    idx = sub.add_parser("index", help="build the index if it is missing or stale")
    idx.add_argument("--rebuild", action="store_true", help="rebuild even if the index is fresh")

    ask = sub.add_parser("ask", help="answer a question (or a batch of questions)")
    ask.add_argument("question", nargs="?", help="the question, in quotes")
    ask.add_argument("--json", action="store_true", help="print one JSON object per answer")
    ask.add_argument(
        "--batch", type=Path, metavar="FILE.jsonl", help='lines of {"id", "question", "history"?}'
    )

    fetch = sub.add_parser(
        "fetch-trials", help="refresh trial snapshots from ClinicalTrials.gov (needs network)"
    )
    fetch.add_argument("nct_ids", nargs="*", help="NCT ids (default: the snapshots already in corpus/trials)")
    fetch.add_argument("--base-url", default="https://clinicaltrials.gov/api/v2", help=argparse.SUPPRESS)
    fetch.add_argument("--timeout", type=float, default=20.0, help="seconds per request (default 20)")
    fetch.add_argument("--retries", type=int, default=3, help="attempts per study (default 3)")
    return p


def _print_reply(reply) -> None:
    print(reply.to_text())


def json_line(obj: dict) -> str:
    """One JSON object on one line. U+2028/U+2029 are escaped: they are valid raw in JSON, but
    readers that split lines with str.splitlines() would cut the line there."""
    return json.dumps(obj, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _batch(companion, path: Path) -> int:
    try:
        # JSON Lines end at "\n" only: str.splitlines() also breaks at U+2028 and friends, which
        # may stand raw inside a JSON string, and would cut that line and lose the rest.
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise SystemExit(f"Cannot read {path}: {exc.strerror}. Check the path.") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or not isinstance(item.get("question"), str):
                raise ValueError('each line needs a "question" string')
            history = item.get("history") or []
            if not isinstance(history, list):
                raise ValueError('"history" must be a list of {"role", "content"}')
        except (json.JSONDecodeError, ValueError) as exc:
            raise SystemExit(f"{path}:{lineno}: {exc}") from None
        reply = companion.ask(item["question"], history)
        rid = item.get("id")
        print(
            json_line(reply.to_json(id=None if rid is None else str(rid))),
            flush=True,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        # A question can hold text that is not UTF-8 (a lone surrogate from argv or a batch line):
        # print it escaped rather than stop with a UnicodeEncodeError.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        if args.command == "fetch-trials":
            from bot.ingest.fetch_trials import main as fetch_main

            return fetch_main(
                settings,
                args.nct_ids,
                base_url=args.base_url,
                timeout=args.timeout,
                retries=args.retries,
            )

        from bot.pipeline import Companion

        if args.command == "index":
            from bot.store.embed import load_embeddings
            from bot.store.index import describe, open_index

            # A maintainer asked for this build: report a failure (exit 2) instead of serving
            # the last good index as the app does.
            handle = open_index(
                settings, load_embeddings(settings), rebuild=args.rebuild, progress=True, fallback=False
            )
            print(describe(handle.manifest))
            return 0

        if not args.question and not args.batch:
            print(
                'Give a question in quotes, e.g. python -m bot ask "What is CT0596?"',
                file=sys.stderr,
            )
            return 2
        companion = Companion(settings, progress=sys.stderr.isatty())
        if args.batch:
            return _batch(companion, args.batch)
        reply = companion.ask(args.question)
        if args.json:
            print(json_line(reply.to_json()))
        else:
            _print_reply(reply)
        return 0
    except (ConfigError, CorpusError, IndexError_) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
