"""Run every benchmark and write benchmarks/RESULTS.md (``make bench``).

Usage: python benchmarks/run_all.py [--out benchmarks/RESULTS.md] [--only losses,data,...] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, machine  # noqa: E402

SUITES = ("losses", "train_step", "embed", "data", "memory")


def render(rows: list[Row], sections: dict[str, str], command: str) -> str:
    lines = [
        "# anatlearn benchmarks",
        "",
        f"Machine: {machine()}. Date: {date.today().isoformat()}. Command: `{command}`.",
        "",
        "Each ratio compares ours with a baseline run side by side in the same process (median of several "
        "repeats, interleaved). Ratios > 1 mean ours is faster (or smaller) unless the measure says otherwise.",
        "",
        "| measure | ours | baseline | ratio | target | note |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r.measure} | {r.ours} | {r.baseline} | {r.ratio} | {r.target} | {r.note} |" for r in rows]
    for title, body in sections.items():
        lines += ["", f"## {title}", "", body]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "RESULTS.md"))
    parser.add_argument("--only", default=",".join(SUITES))
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the scripts run")
    args = parser.parse_args()
    rows: list[Row] = []
    sections: dict[str, str] = {}
    for name in [s for s in args.only.split(",") if s]:
        if name not in SUITES:
            parser.error(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
        mod = importlib.import_module(f"bench_{name}")
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        suite_rows, suite_sections = mod.run(quick=args.quick)
        rows += suite_rows
        sections.update(suite_sections)
        print(f"[bench] {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
    command = "make bench" if not args.quick else "python benchmarks/run_all.py --quick"
    from anatlearn.io import atomic_write_text

    atomic_write_text(args.out, render(rows, sections, command))
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
