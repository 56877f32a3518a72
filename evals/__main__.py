"""`python -m evals`: run the eval set, write the report, check the gates (exit 1 on a failed gate).

python -m evals                          # default config, all cases, gates enforced
python -m evals --config dense           # a named configuration (see --list-configs)
python -m evals --ablations              # + every ablation config, one comparison table
python -m evals --tag followup --case ct071-plain   # a subset (gates reported, not enforced)
python -m evals --compare OLD NEW        # deltas and flipped cases between two reports
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from bot.errors import CorpusError
from bot.settings import ConfigError, Settings
from evals import compare, configs, report, runner
from evals.dataset import DEFAULT_DATASET, Corpus, DatasetError, load_dataset
from evals.gates import DEFAULT_GATES, GatesError, check_gates, load_gates


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evals", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--dataset", type=Path, default=DEFAULT_DATASET, help="eval set (default: evals/cases.yaml)"
    )
    p.add_argument("--config", default="default", help="named configuration (default: settings from env)")
    p.add_argument(
        "--gates", type=Path, default=DEFAULT_GATES, help="gate thresholds (default: evals/gates.yaml)"
    )
    p.add_argument(
        "--out", type=Path, default=report.REPORTS_DIR, help="reports folder (default: evals/reports)"
    )
    p.add_argument("--ablations", action="store_true", help="also run every ablation config (a few minutes)")
    p.add_argument(
        "--case", action="append", default=[], metavar="ID", help="run only this case (repeatable)"
    )
    p.add_argument("--tag", action="append", default=[], metavar="TAG", help="run only cases with this tag")
    p.add_argument("--no-gates", action="store_true", help="report the gates but always exit 0")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--list-configs", action="store_true", help="print the named configurations and exit")
    p.add_argument(
        "--compare", nargs=2, metavar=("OLD", "NEW"), help="compare two report folders or results.json"
    )
    return p.parse_args(argv)


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
                print(f"{name:<14} {configs.describe(configs.settings_for(name, base))}")
            return 0
        settings = configs.settings_for(args.config, base)
        corpus = Corpus.load(settings.index.corpus_dir)
        dataset = load_dataset(args.dataset, corpus)
        gates = load_gates(args.gates)
    except (ConfigError, CorpusError, DatasetError, GatesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    cases = [
        c
        for c in dataset.cases
        if (not args.case or c.id in args.case) and (not args.tag or set(args.tag) & set(c.tags))
    ]
    if not cases:
        print("error: no case matches --case/--tag", file=sys.stderr)
        return 2
    subset = len(cases) != len(dataset.cases)
    progress = not args.quiet
    started = time.perf_counter()
    primary = runner.run(dataset, corpus, settings, args.config, cases, progress=progress)
    overall = primary.overall()
    gate_results = check_gates(gates, overall)

    ablations = None
    if args.ablations:
        ablations = run_ablations(dataset, corpus, base, cases, primary, progress)

    out_dir = report.new_report_dir(args.out)
    report.write_report(out_dir, primary, dataset, gate_results, ablations)
    print_summary(primary, overall, gate_results, out_dir, time.perf_counter() - started, ablations)
    failed = [g for g in gate_results if not g["passed"]]
    if subset:
        print("(subset of the cases: gates reported, not enforced)")
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
        by_tag = r.by_tag(dataset.all_tags())
        overall = r.overall() | {"followup_fact_recall": by_tag.get("followup", {}).get("fact_recall")}
        rows.append(
            {
                "config": name,
                "settings": configs.describe(s),
                "same_as": r.config if r.config != name else "",
                "overall": overall,
                "by_tag": by_tag,
                "cases": r.results,
            }
        )
    return rows


def print_summary(run, overall, gate_results, out_dir: Path, seconds: float, ablations) -> None:
    print(f"\nConfig {run.config}: {configs.describe(run.settings)}")
    print(
        f"{overall['n']} cases: startup {run.startup_seconds:.1f} s, run {run.seconds:.1f} s"
        f"{f', {seconds:.1f} s in all with ablations' if ablations else ''}\n"
    )
    for key, value in overall.items():
        print(f"  {key:<24}{report.fmt(value, key):>10}")
    print("\nGates:")
    for g in gate_results:
        print(
            f"  {'pass' if g['passed'] else 'FAIL'}  {g['metric']:<24}{report.fmt(g['value'], g['metric']):>8}  ({g['rule']})"
        )
    failing = [r for r in run.results if not r["passed"]]
    print(f"\nFailing cases: {len(failing)}")
    for r in failing:
        print(f"  - {r['case']['id']}: {r['diagnosis']}")
    if ablations:
        print("\nAblations:\n" + report.ablation_table(ablations))
    print(f"\nReport: {out_dir / 'report.md'}")


if __name__ == "__main__":
    sys.exit(main())
