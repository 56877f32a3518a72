"""Where the time goes inside one process, with the standard library's cProfile.

    python -m bench.profile                 # warm answers over the eval questions
    python -m bench.profile --build 10      # plus an index build of a 10x synthetic corpus

Prints the functions that cost the most (our code in bot/ first) and writes the full listing to
bench/results/profile-<timestamp>.txt. cProfile adds overhead to every Python call, so compare
the shares, not the absolute times, with the benchmark's numbers.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bot.settings import REPO_ROOT, Settings


def _table(prof: cProfile.Profile, title: str, wall_s: float, calls: int, top: int = 25) -> str:
    stats = pstats.Stats(prof)
    rows = []
    for (path, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        rows.append((ct, tt, nc, f"{Path(path).as_posix().split('site-packages/')[-1]}:{line}({func})"))
    ours = [r for r in rows if "/bot/" in r[3] or r[3].startswith("bot/")]
    out = io.StringIO()
    out.write(f"\n== {title}: {wall_s:.2f} s wall for {calls} call(s) ==\n")
    out.write("-- our code (bot/), by cumulative time; ms per call of the profiled unit --\n")
    out.write(f"{'cum ms':>10} {'own ms':>10} {'calls':>8}  function\n")
    for ct, tt, nc, name in sorted(ours, key=lambda r: -r[0])[:top]:
        out.write(f"{ct * 1000 / calls:10.2f} {tt * 1000 / calls:10.2f} {nc:8d}  {name}\n")
    out.write("-- everything, by own time --\n")
    for ct, tt, nc, name in sorted(rows, key=lambda r: -r[1])[:top]:
        out.write(f"{ct * 1000 / calls:10.2f} {tt * 1000 / calls:10.2f} {nc:8d}  {name}\n")
    return out.getvalue()


def profile_answers(rounds: int) -> str:
    from bench.questions import load_questions
    from bot.pipeline import Companion

    companion = Companion(Settings.from_env(), progress=False)
    questions = load_questions()[0]
    for q in questions:
        companion.ask(q.text, q.history)
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for _ in range(rounds):
        for q in questions:
            companion.ask(q.text, q.history)
    prof.disable()
    return _table(prof, "warm Companion.ask", time.perf_counter() - t, rounds * len(questions))


def profile_build(scale: int) -> str:
    from bench.synth import build_corpus
    from bot.store.embed import load_embeddings
    from bot.store.index import build_index

    settings = Settings.from_env()
    work = Path(tempfile.mkdtemp(prefix="pcl-profile-"))
    try:
        real_chunks = 62
        corpus = work / "corpus"
        build_corpus(settings.index.corpus_dir, real_chunks * scale, corpus)
        s = settings.with_overrides(corpus_dir=corpus, index_dir=work / "index")
        embeddings = load_embeddings(s)
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        build_index(s, embeddings, progress=False)
        prof.disable()
        return _table(prof, f"build_index at {scale}x", time.perf_counter() - t, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--build", type=int, metavar="SCALE", help="also profile an index build at this scale")
    args = p.parse_args()
    text = profile_answers(args.rounds)
    if args.build:
        text += profile_build(args.build)
    out = REPO_ROOT / "bench" / "results" / f"profile-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    print(f"written to {out.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
