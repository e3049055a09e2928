"""``anatlearn study --status``: where a (running or stopped) study stands, read from its directory only.

Counts the evaluation files of every (group, budget), and reads ``progress.json`` (the cells being trained,
when it was last written) and ``study.json`` (wall time over invocations). The time left is
:func:`anatlearn.study.time_left.time_left`. Starts nothing, locks nothing: safe beside a running study."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from anatlearn.errors import ConfigError
from anatlearn.study.cells import unit_path
from anatlearn.study.grid import build_cells, settings_from_dict
from anatlearn.study.selection import chosen_variants
from anatlearn.study.time_left import time_left

GROUPS = {"reference": "random init", "main": "main methods", "control": "positive control",
          "ablation": "ablations"}


def study_status(out) -> dict:
    out = Path(out)
    path = out / "study.json"
    if not path.is_file():
        raise ConfigError(f"--status: {out} holds no study (no study.json)")
    doc = json.loads(path.read_text())
    s = settings_from_dict(doc["settings"])
    done, total = Counter(), Counter()
    cells = build_cells(s)
    selection = out / "selection.json"  # written once the ablations are in: selected variants go to the full budget
    if selection.is_file():
        chosen = chosen_variants(json.loads(selection.read_text()))
        cells = [c.with_budgets((*c.budgets, max(s.budgets))) if c.name in chosen else c for c in cells]
    for c in cells:
        for b in c.budgets:
            total[c.group, b] += 1
            done[c.group, b] += unit_path(out, c, b).exists()
    progress = {}
    if (out / "progress.json").is_file():
        progress = json.loads((out / "progress.json").read_text())
    running = progress.get("running", [])
    return {"grid": doc.get("grid"), "done": dict(done), "total": dict(total),
            "units_done": sum(done.values()), "units_total": sum(total.values()),
            "running": running, "updated": progress.get("updated"),
            "wall_s_total": doc.get("wall_s_total", 0.0), "invocations": len(doc.get("invocations", [])),
            "time_left": time_left(out, cells, running, s.batch_size, sum(total.values()) - sum(done.values()))}


def status_text(out, st: dict, now: float | None = None) -> str:
    lines = [f"{out}: grid {st['grid']}, {st['units_done']}/{st['units_total']} evaluations"]
    for group, label in GROUPS.items():
        budgets = sorted(b for g, b in st["total"] if g == group)
        if budgets:
            parts = [f"{'untrained' if b == 0 else f'{b} epochs'} {st['done'][group, b]}/{st['total'][group, b]}"
                     for b in budgets]
            lines.append(f"  {label}: " + ", ".join(parts))
    if st["updated"]:
        age = (now or time.time()) - time.mktime(time.strptime(st["updated"], "%Y-%m-%dT%H:%M:%S"))
        running = ", ".join(st["running"]) or "none"
        lines.append(f"progress.json written {age / 60:.0f} min ago; cells in training then: {running}")
    lines.append(f"wall time so far: {st['wall_s_total'] / 3600:.2f} h over {st['invocations']} invocation(s)")
    left = st.get("time_left")
    if left:
        lines.append(f"left: {left['epochs']} training epochs ({left['epoch_s']:.0f} s each per worker now) and "
                     f"{left['units']} evaluations: about {left['seconds'] / 3600:.1f} h with {left['workers']} "
                     f"worker(s) at this rate")
    return "\n".join(lines)
