"""Start-up of the command line (issue 37): the version, the help texts and a usage error, each in a fresh
process, as ratios to ``python -c "import typer"`` (the least any typer command line can cost). What they load
is asserted by tests/test_startup.py; this only reports times."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from common import Row, fmt_s, interleaved_samples

REPO = Path(__file__).resolve().parents[1]
INVOCATIONS = {
    "anatlearn --version": ["--version"],
    "anatlearn --help": ["--help"],
    "anatlearn pretrain --help": ["pretrain", "--help"],
    "anatlearn evaluate tasks --help": ["evaluate", "tasks", "--help"],
    "anatlearn embed --bogus (usage error)": ["embed", "--bogus"],
}


def _runner(args: list[str]):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    def run() -> None:
        subprocess.run([sys.executable, *args], env=env, capture_output=True, check=False)

    return run


def run(quick: bool = False):
    import statistics

    fns = {"import typer": _runner(["-c", "import typer"]), "import torch": _runner(["-c", "import torch"])}
    fns.update({name: _runner(["-m", "anatlearn", *argv]) for name, argv in INVOCATIONS.items()})
    samples = interleaved_samples(fns, repeats=3 if quick else 5)
    t = {k: statistics.median(v) for k, v in samples.items()}
    base = t["import typer"]
    rows = [Row(f"start-up: {name}", fmt_s(t[name]), fmt_s(base), f"{t[name] / base:.2f}x (time, lower is better)",
                "", "fresh process; baseline: python -c 'import typer'") for name in INVOCATIONS]
    rows.append(Row("start-up: python -c 'import torch' (what every command paid before issue 37)",
                    fmt_s(t["import torch"]), fmt_s(base), f"{t['import torch'] / base:.2f}x (time, lower is better)",
                    "", "for scale: no help path imports torch now (tests/test_startup.py)"))
    return rows, {}


if __name__ == "__main__":
    from common import main

    main(run)
