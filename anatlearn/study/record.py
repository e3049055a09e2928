"""``study.json``: the settings a study was started with, and one record per invocation (device, workers,
commit, machine, wall time), kept current while it runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from anatlearn.errors import ConfigError, differences
from anatlearn.io import atomic_write_text
from anatlearn.study.grid import StudySettings, settings_from_dict


def git_commit() -> str | None:
    """The source tree's commit (with ``-dirty`` for uncommitted changes), when it is a git checkout."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def machine(device: str) -> str:
    import platform

    import torch

    # the CPU capability torch dispatches to: cells trained on AVX2 and AVX-512 machines differ in rounding
    text = f"{platform.machine()} {os.cpu_count()} CPU cores ({torch.backends.cpu.get_cpu_capability()})"
    if device == "cuda":
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def check_settings(out: Path, s: StudySettings, grid: str) -> dict:
    """study.json: the settings a study was started with; a re-run must use the same ones."""
    path = out / "study.json"
    if path.exists():
        doc = json.loads(path.read_text())
        # read back, a setting added later takes its default: an older study still matches its grid
        if settings_from_dict(doc["settings"]) != s:
            old = settings_from_dict(doc["settings"]).to_dict()
            diff = differences(old, s.to_dict(), "in the study")
            raise ConfigError(f"{out} holds a study started with other settings ({'; '.join(diff)}; "
                              f"grid {doc.get('grid')!r}); choose another --out to start a new study")
        return doc
    return {"grid": grid, "settings": s.to_dict(), "invocations": []}


def save_study_doc(out: Path, doc: dict) -> None:
    doc["wall_s_total"] = round(sum(i["wall_s"] for i in doc["invocations"]), 1)
    atomic_write_text(out / "study.json", json.dumps(doc, indent=1))


def start_invocation(out: Path, s: StudySettings, grid: str, device: str, workers: int) -> tuple[dict, dict]:
    """study.json (checked against the settings) with this invocation's record appended and saved."""
    doc = check_settings(out, s, grid)
    invocation = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "wall_s": 0.0, "ended": False,
                  "device": device, "workers": workers, "cells_run": 0, "commit": git_commit(),
                  "machine": machine(device)}
    doc["invocations"].append(invocation)
    save_study_doc(out, doc)
    return doc, invocation
