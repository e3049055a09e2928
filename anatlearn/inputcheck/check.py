"""Check users' maps against a fingerprint of the training maps (``anatlearn check``; docs/evaluation.md).

Each statistic of :mod:`anatlearn.inputcheck.fingerprint` has an accepted range: the training maps' 1st to
99th percentile widened by a fixed tolerance (:data:`TOLERANCES`: a factor for scale-like statistics, an
amount for the others; for the smoothness, an extra Gaussian width added in quadrature, since widths of
successive Gaussian smoothings add that way). A map outside any range is flagged, with the reason in
words. The tolerances were set once, on synthetic worlds of seeds 0 to 3, tested on seed 5, and are the same
for every fingerprint (docs/evaluation.md, section 1b).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from anatlearn.inputcheck.fingerprint import reference_of, volume_stats

# statistic -> (how the range is widened, low side, high side)
TOLERANCES = {"q99": ("factor", 3.0, 3.0), "outside": ("add", None, 0.1), "tissue_ml": ("factor", 1.5, 1.5),
              "corr": ("add", 0.1, None), "offset_mm": ("add", None, 4.0), "smooth_vox": ("width", 2.0, 1.4)}


def accepted_ranges(fp: dict) -> dict[str, tuple[float, float]]:
    """statistic -> (lowest, highest) value accepted under the fingerprint ``fp``."""
    out = {}
    for key, (kind, low, high) in TOLERANCES.items():
        lo, hi = fp["stats"][key]["q01"], fp["stats"][key]["q99"]
        if kind == "width":  # Gaussian widths add in quadrature: tolerate up to `high` voxels of extra smoothing
            out[key] = (lo / low, math.hypot(hi, high))
        elif kind == "factor":
            out[key] = (lo / low if low else -math.inf, hi * high if high else math.inf)
        else:
            out[key] = (lo - low if low is not None else -math.inf, hi + high if high is not None else math.inf)
    return out


def _reasons(s: dict, fp: dict, ranges: dict) -> list[str]:
    """The reasons, in words, why a map with statistics ``s`` is unlike the training maps (none: it is not)."""
    if not s["tissue_ml"] > 0 or not math.isfinite(s["corr"]):
        return ["an empty or constant volume (no positive intensities): a failed conversion or a wrong file?"]
    out = []
    typical = fp["stats"]["q99"]["q50"]
    ratio = s["q99"] / typical if typical > 0 else math.inf
    lo, hi = ranges["q99"]
    if s["q99"] > hi:
        out.append(f"intensities about {ratio:.0f}x the training maps': a raw T1 rather than a GM map?" if ratio >= 10
                   else f"intensities {ratio:.1f}x the training maps': rescaled, or not a modulated GM map?")
    elif s["q99"] < lo:
        out.append(f"intensities about 1/{1 / max(ratio, 1e-12):.0f} of the training maps': rescaled, or a mask?")
    if s["outside"] > ranges["outside"][1]:
        out.append(f"signal outside the brain {s['outside']:.0%} of that inside (training maps: at most "
                   f"{fp['stats']['outside']['q99']:.1%}): a T1, a head image or noise rather than a GM map?")
    lo, hi = ranges["tissue_ml"]
    if not lo <= s["tissue_ml"] <= hi:
        t = fp["stats"]["tissue_ml"]
        out.append(f"total tissue {s['tissue_ml']:.0f} mL, the training maps' {t['q01']:.0f}-{t['q99']:.0f} mL: "
                   f"not a modulated GM map, or another scaling?")
    if s["corr"] < ranges["corr"][0]:
        out.append(f"correlation with the training maps' mean image r = {s['corr']:.2f} (training maps: "
                   f"{fp['stats']['corr']['q01']:.2f} or more): another tissue, another space or noise?")
    if s["offset_mm"] > ranges["offset_mm"][1]:
        out.append(f"centre {s['offset_mm']:.0f} mm from the training maps': not registered to MNI?")
    lo, hi = ranges["smooth_vox"]
    if s["smooth_vox"] > hi:
        out.append(f"smoother than every training map (width {s['smooth_vox']:.1f} vs at most "
                   f"{fp['stats']['smooth_vox']['q99']:.1f} voxels): a smoothed (s6mwp1) map?")
    elif s["smooth_vox"] < lo:
        out.append(f"rougher than every training map (width {s['smooth_vox']:.1f} vs at least "
                   f"{fp['stats']['smooth_vox']['q01']:.1f} voxels): noise?")
    return out


def check_volume(vol: np.ndarray, fp: dict) -> tuple[dict, list[str]]:
    """(statistics, reasons) of one map against the fingerprint ``fp``; no reasons: it looks like the training maps."""
    stats = volume_stats(vol, reference_of(fp))
    return stats, _reasons(stats, fp, accepted_ranges(fp))


def grid_problem(shape, fp: dict) -> str | None:
    """Why maps of this shape cannot be checked against ``fp`` (None: they can)."""
    if tuple(int(s) for s in shape) != tuple(fp["shape"]):
        return (f"the maps are {'x'.join(map(str, shape))} voxels but the training maps were "
                f"{'x'.join(map(str, fp['shape']))}")
    return None


class InMemoryMaps:
    """Maps held in memory, read by the checks as a dataset (``len``, ``volume(i)``, ``participants``,
    ``shape``): a (n, X, Y, Z) or (n, 1, X, Y, Z) array or a sequence of 3-D arrays; ``ids`` default to the
    positions, as :class:`anatlearn.embed.AnatEncoder` names such rows."""

    def __init__(self, volumes, ids=None):
        self.volumes = list(volumes)
        ids = [str(i) for i in (range(len(self.volumes)) if ids is None else ids)]
        self.participants = pd.DataFrame({"participant_id": ids})
        self.shape = tuple(self.volume(0).shape) if self.volumes else None

    def __len__(self) -> int:
        return len(self.volumes)

    def volume(self, i: int) -> np.ndarray:
        vol = np.asarray(self.volumes[i], dtype=np.float32)
        return vol[0] if vol.ndim == 4 and vol.shape[0] == 1 else vol


def check_dataset(dataset, fp: dict) -> pd.DataFrame:
    """One row per subject of ``dataset``: participant_id, ok, reasons ("; "-joined), then the statistics."""
    rows = []
    for i, pid in enumerate(dataset.participants["participant_id"]):
        stats, reasons = check_volume(dataset.volume(i), fp)
        rows.append({"participant_id": str(pid), "ok": not reasons, "reasons": "; ".join(reasons),
                     **{k: round(v, 4) for k, v in stats.items()}})
    return pd.DataFrame(rows)
