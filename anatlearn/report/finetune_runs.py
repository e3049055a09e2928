"""Fine-tuning runs in the report. ``anatlearn report`` given fine-tuning run directories (``anatlearn
finetune --out``), alone or beside ``evaluate tasks`` results on the same participants table and seed,
shows them side by side on their shared outer folds with the paired corrected tests: the comparison of
:func:`anatlearn.finetune.compare`, built here from the runs' own folds.

Methods are named ``finetune:<run folder>`` and ``probe:<method>`` (an ``evaluate tasks`` method, on the
tasks the runs fine-tuned; a ceiling row, ``ceiling: true anatomy``, keeps its name). Fine-tuning runs
are paired only if their outer folds hold the same subjects (``splits.json``); a tasks evaluation records
only fold sizes, so it is paired by those (same table, task and seed give the same folds:
``anatlearn.evaluate.make_splits``). Inputs that cannot be paired are shown each on its own, with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from anatlearn.errors import DataError
from anatlearn.evaluate.results import Results


def is_finetune_run(path: Path) -> bool:
    """A directory written by ``anatlearn finetune`` (its results.json is of kind ``finetune``)."""
    doc = Path(path) / "results.json"
    try:
        return doc.is_file() and json.loads(doc.read_text()).get("kind") == "finetune"
    except (OSError, ValueError):
        return False


def _names(runs: Sequence[Path]) -> list[str]:
    """``finetune:<folder>``, with as many parent folders as it takes to tell the runs apart."""
    parts = [Path(p).resolve().parts for p in runs]
    depth = [1] * len(runs)
    while True:
        names = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        clash = [i for i, n in enumerate(names) if names.count(n) > 1 and depth[i] < len(parts[i])]
        if not clash:
            return [f"finetune:{n}" for n in names]
        for i in clash:
            depth[i] += 1


def _cohort(run: Path) -> str | None:
    """The dataset a run fine-tuned on (its provenance), or None for runs that did not record it."""
    try:
        config = json.loads((run / "provenance.json").read_text()).get("config", {})
    except (OSError, ValueError):
        return None
    return config.get("participants") or config.get("cohort")


def _same_subjects(runs: Sequence[Path]) -> str:
    """"" if every run's outer folds hold the same subjects, else the reason they do not."""
    folds = {}
    for run in runs:
        try:
            folds[run] = [sorted(f) for f in json.loads((run / "splits.json").read_text())["folds"]]
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{run / 'splits.json'}: fine-tuning run without readable outer folds ({exc})") from exc
    first = runs[0]
    for run in runs[1:]:
        if folds[run] != folds[first]:
            return f"{run.name} and {first.name} were fine-tuned on different outer folds"
    return ""


def comparison(runs: Sequence[Path], tasks: Sequence[tuple[Path, Results]] = ()) -> tuple[list[Results], str]:
    """The results the report shows for fine-tuning ``runs`` (and the probes of ``tasks`` evaluations): one
    ``finetune-comparison`` of them all when they pair, else one per run; and a note ("" when paired)."""
    from anatlearn.finetune.compare import compare, comparison_results, fold_scores

    runs = [Path(r) for r in runs]
    names = _names(runs)
    sources = {name: fold_scores(run, name) for name, run in zip(names, runs)}
    covered = {t for f in sources.values() for t in f["task"].unique()}
    for _, res in tasks:
        if res.folds is None or not len(res.folds):
            continue
        probes = res.folds[res.folds["task"].isin(covered)]
        probes = probes[probes["repeat"] == 0] if "repeat" in probes else probes
        for method, g in probes.groupby("method", sort=False):
            name = method if str(method).startswith("ceiling:") else f"probe:{method}"  # a ceiling stays one
            sources[name] = g.assign(method=name)
    cohorts = {run: _cohort(run) for run in runs}
    reason = _same_subjects(runs)
    if not reason:
        try:
            result = compare(sources)
            shared = set(cohorts.values())
            return [comparison_results(result["table"], result["paired"], result["folds"],
                                       shared.pop() if len(shared) == 1 else None)], ""
        except DataError as exc:
            reason = str(exc)
    alone = []
    for name, run in zip(names, runs):
        result = compare({name: sources[name]})
        alone.append(comparison_results(result["table"], None, result["folds"], cohorts[run]))
    return alone, f"Not compared: {reason}. Each fine-tuning run is shown on its own."
