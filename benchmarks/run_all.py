"""Run every benchmark and write benchmarks/RESULTS.md (``make bench``).

Usage: python benchmarks/run_all.py [--out benchmarks/RESULTS.md] [--only losses,data,...] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, machine  # noqa: E402

SUITES = ("losses", "train_step", "embed", "data", "memory", "scale", "startup")


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
    names = [s for s in args.only.split(",") if s]
    for name in names:
        if name not in SUITES:
            parser.error(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    # The machine is shared: record its load around each suite, so noisy numbers can be read as such.
    load_lines = ["| suite | wall time | load average (1 min) at start | at end |", "|---|---|---|---|"]
    for name in names:
        mod = importlib.import_module(f"bench_{name}")
        t0, load0 = time.perf_counter(), os.getloadavg()[0]
        print(f"[bench] {name} ... (load {load0:.1f})", flush=True)
        suite_rows, suite_sections = mod.run(quick=args.quick)
        rows += suite_rows
        sections.update(suite_sections)
        took, load1 = time.perf_counter() - t0, os.getloadavg()[0]
        load_lines.append(f"| {name} | {took:.0f} s | {load0:.1f} | {load1:.1f} |")
        print(f"[bench] {name} done in {took:.0f} s (load {load1:.1f})", flush=True)
    sections["Machine load during the run"] = (
        "\n".join(load_lines) + f"\n\n{os.cpu_count()} CPU cores; a load average above that means other processes "
        "were competing for the CPU while these numbers were taken (ratios are measured side by side, interleaved, "
        "so they suffer less than absolute times).")
    command = "make bench" if not args.quick else "python benchmarks/run_all.py --quick"
    from anatlearn.io import atomic_write_text

    atomic_write_text(args.out, render(rows, sections, command))
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
