"""FreeSurfer ``stats/?h.aparc.stats`` (Desikan-Killiany, 34 regions per hemisphere) and
``?h.aparc.a2009s.stats`` (Destrieux, 74 per hemisphere) parsed into (K, 3) descriptor arrays.

Columns (``# ColHeaders``): StructName NumVert SurfArea GrayVol ThickAvg ThickStd MeanCurv GausCurv FoldInd
CurvInd. Mapping: ThickAvg -> CT, GrayVol -> GMV, SurfArea -> SA. Regions are named ``lh-<name>`` /
``rh-<name>``, left hemisphere first, in the file's order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from anatlearn.data.regions import APARC_COLUMNS
from anatlearn.errors import DataError

ATLAS_FILES = {"desikan": "aparc", "destrieux": "aparc.a2009s"}


def parse_aparc_stats(path: str | Path) -> dict[str, dict[str, float]]:
    """{region: {column: value}} of one hemisphere's stats file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"FreeSurfer stats file not found: {path}")
    header: list[str] | None = None
    rows: dict[str, dict[str, float]] = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("# ColHeaders"):
            header = line.split()[2:]
        elif line.strip() and not line.startswith("#"):
            if header is None:
                raise DataError(f"{path} has no '# ColHeaders' line: is it an aparc.stats file?")
            parts = line.split()
            if len(parts) != len(header):
                raise DataError(f"{path}: row {parts[0]!r} has {len(parts)} fields, header has {len(header)}")
            try:
                rows[parts[0]] = {h: float(v) for h, v in zip(header[1:], parts[1:])}
            except ValueError:
                raise DataError(f"{path}: non-numeric value in row {parts[0]!r}") from None
    if not rows:
        raise DataError(f"{path} lists no regions")
    return rows


def subject_descriptors(stats_dir: str | Path, atlas: str = "desikan",
                        names: Sequence[str] = ("CT", "GMV", "SA")) -> tuple[np.ndarray, list[str]]:
    """(K, D) descriptors and region names of one subject's ``stats`` directory (both hemispheres)."""
    if atlas not in ATLAS_FILES:
        raise DataError(f"unknown atlas {atlas!r}; choose one of {', '.join(ATLAS_FILES)}")
    unknown = [n for n in names if n not in APARC_COLUMNS]
    if unknown:
        raise DataError(f"unknown descriptor {unknown[0]!r}; choose from {', '.join(APARC_COLUMNS)}")
    stats_dir = Path(stats_dir)
    values, regions = [], []
    for hemi in ("lh", "rh"):
        table = parse_aparc_stats(stats_dir / f"{hemi}.{ATLAS_FILES[atlas]}.stats")
        for region, cols in table.items():
            missing = [APARC_COLUMNS[n] for n in names if APARC_COLUMNS[n] not in cols]
            if missing:
                raise DataError(f"{stats_dir / f'{hemi}.{ATLAS_FILES[atlas]}.stats'} lacks column {missing[0]}")
            values.append([cols[APARC_COLUMNS[n]] for n in names])
            regions.append(f"{hemi}-{region}")
    return np.asarray(values, dtype=np.float32), regions


def cohort_descriptors(stats_dirs: dict[str, Path], atlas: str = "desikan",
                       names: Sequence[str] = ("CT", "GMV", "SA")) -> tuple[np.ndarray, list[str]]:
    """(n, K, D) for subjects {id: stats dir}; every subject must list the same regions as the first."""
    arrays, reference = [], None
    for pid, d in stats_dirs.items():
        x, regions = subject_descriptors(d, atlas, names)
        if reference is None:
            reference = (pid, regions)
        elif regions != reference[1]:
            miss = sorted(set(reference[1]) - set(regions)) or sorted(set(regions) - set(reference[1])) or ["(order)"]
            raise DataError(f"subject {pid} ({d}) lists {len(regions)} regions but subject {reference[0]} lists "
                            f"{len(reference[1])}; differing: {', '.join(miss[:3])}")
        arrays.append(x)
    return np.stack(arrays), reference[1] if reference else []
