"""Regions to aggregate voxel attributions over: a user's label NIfTI, the synthetic cohort's own regions, or
an atlas-free grid of patches.

An :class:`Atlas` is an integer label volume on the model's input grid (value k in [0, K) for region k,
-1 outside every region), the K region names and the grid's voxel-to-mm affine (for the NIfTI outputs).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from anatlearn.errors import DataError

ATLAS_CHOICES = "auto, world, grid or a label NIfTI path"


@dataclass
class Atlas:
    labels: np.ndarray                 # (X, Y, Z) int32, -1 outside regions
    names: list[str]
    affine: np.ndarray                 # (4, 4) voxel -> mm
    source: str
    truth: dict[str, list[str]] = field(default_factory=dict)  # disease name -> its true regions (synthetic)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.labels.shape)

    def check_shape(self, shape, what: str = "the images") -> None:
        if tuple(shape) != self.shape:
            raise DataError(f"atlas {self.source} has shape {self.shape} but {what} have shape {tuple(shape)}; "
                            f"the atlas must be on the model's input grid (resample it there first)")

    def voxel_counts(self) -> np.ndarray:
        return np.bincount(self.labels[self.labels >= 0].ravel(), minlength=len(self.names))

    def aggregate(self, maps: np.ndarray) -> np.ndarray:
        """(n, K) sums of each map over each region; ``maps`` is (n, X, Y, Z) or (X, Y, Z)."""
        maps = np.asarray(maps, dtype=np.float64)
        single = maps.ndim == 3
        maps = maps[None] if single else maps
        self.check_shape(maps.shape[1:], "the attribution maps")
        inside = self.labels >= 0
        lab = self.labels[inside]
        out = np.stack([np.bincount(lab, weights=m[inside], minlength=len(self.names)) for m in maps])
        return out[0] if single else out

    def paint(self, values: np.ndarray, outside: float = 0.0) -> np.ndarray:
        """A volume holding ``values[k]`` at every voxel of region k (``outside`` elsewhere)."""
        values = np.asarray(values, dtype=np.float32)
        lut = np.append(values, np.float32(outside))  # index -1 -> outside
        return lut[self.labels]


def default_affine(shape) -> np.ndarray:
    """OpenBHB's MNI field of view (CAT12 grid 121x145x121 at 1.5 mm) spanned by ``shape`` voxels."""
    from anatlearn.synthetic import grid_affine

    return grid_affine(tuple(int(s) for s in shape))


def patch_grid(shape, n: int = 4, affine: np.ndarray | None = None) -> Atlas:
    """Atlas-free regions: the volume cut into n x n x n equal boxes, named ``patch-i-j-k``."""
    if n < 1:
        raise DataError(f"`grid` must be >= 1, got {n}")
    shape = tuple(int(s) for s in shape)
    if min(shape) < n:
        raise DataError(f"`grid` {n} is larger than the image grid {shape}")
    idx = [np.minimum(np.arange(s) * n // s, n - 1) for s in shape]
    labels = (idx[0][:, None, None] * n * n + idx[1][None, :, None] * n + idx[2][None, None, :]).astype(np.int32)
    names = [f"patch-{i}-{j}-{k}" for i in range(n) for j in range(n) for k in range(n)]
    return Atlas(labels, names, default_affine(shape) if affine is None else affine, f"grid {n}x{n}x{n}")


def nifti_atlas(path: str | os.PathLike) -> Atlas:
    """A label NIfTI (0 = background, positive integers = regions). Names come from a BIDS-style sidecar
    ``<stem>.tsv`` with columns ``index`` and ``name`` if present, otherwise ``label-<value>``."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(f"atlas file not found: {path}")
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for a bad file
        raise DataError(f"cannot read atlas {path} as NIfTI: {exc}") from None
    data = np.squeeze(data)
    if data.ndim != 3:
        raise DataError(f"atlas {path} must be a 3-D label volume, got shape {data.shape}")
    if not np.all(np.isfinite(data)) or not np.allclose(data, np.round(data)) or data.min() < 0:
        raise DataError(f"atlas {path} must hold non-negative integer labels (0 = background)")
    values = np.unique(data.astype(np.int64))
    values = values[values > 0]
    if len(values) == 0:
        raise DataError(f"atlas {path} has no region (every voxel is 0)")
    lut = np.full(int(values.max()) + 1, -1, dtype=np.int32)
    lut[values] = np.arange(len(values), dtype=np.int32)
    labels = lut[data.astype(np.int64)]
    names = {int(v): f"label-{int(v)}" for v in values}
    sidecar = path.parent / (path.name.removesuffix(".gz").removesuffix(".nii") + ".tsv")
    if sidecar.is_file():
        table = pd.read_csv(sidecar, sep="\t")
        if {"index", "name"} <= set(table.columns):
            names |= {int(i): str(nm) for i, nm in zip(table["index"], table["name"]) if int(i) in names}
    return Atlas(labels, [names[int(v)] for v in values], img.affine, str(path))


def world_atlas(data_dir: str | os.PathLike) -> Atlas:
    """The synthetic cohort's own cortical regions (rebuilt from ``truth/world.json``'s parameters) with
    each disease's true regions."""
    from anatlearn.synthetic import make_world

    path = Path(data_dir) / "truth" / "world.json"
    if not path.is_file():
        raise DataError(f"`atlas` 'world' needs a synthetic cohort: {path} not found")
    try:
        info = json.loads(path.read_text())
        params = info["params"]
        world = make_world(tuple(params["shape"]), int(params["seed"]), int(params["n_sites"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot rebuild the synthetic world from {path}: {type(exc).__name__}: {exc}") from None
    if list(world.region_names) != list(info.get("region_names", world.region_names)):
        raise DataError(f"{path}: its regions differ from the world rebuilt by this anatlearn version")
    truth = {name: list(d["regions"]) for name, d in info.get("diseases", {}).items()}
    return Atlas(world.labels.astype(np.int32), list(world.region_names), np.asarray(world.affine),
                 f"synthetic world ({path})", truth)


def resolve_atlas(spec: str | None, shape, data_dir: str | os.PathLike | None = None, grid: int = 4,
                  affine: np.ndarray | None = None) -> Atlas:
    """``auto`` (the synthetic world's regions when ``data_dir`` is a synthetic cohort, else the patch grid),
    ``world``, ``grid`` or a label NIfTI path; checked against the image ``shape`` and, when the images
    carry one (NIfTI datasets), their ``affine``."""
    spec = spec or "auto"
    if spec == "auto":
        synthetic = data_dir is not None and (Path(data_dir) / "truth" / "world.json").is_file()
        spec = "world" if synthetic else "grid"
    if spec == "world":
        if data_dir is None:
            raise DataError("`atlas` 'world' needs the synthetic cohort's directory (`data_dir`)")
        atlas = world_atlas(data_dir)
    elif spec == "grid":
        atlas = patch_grid(shape, grid, affine)
    elif spec.endswith((".nii", ".nii.gz")) or Path(spec).exists():
        atlas = nifti_atlas(spec)
    else:
        raise DataError(f"`atlas` {spec!r}: choose {ATLAS_CHOICES}")
    atlas.check_shape(shape)
    if affine is not None and not np.allclose(atlas.affine, affine, atol=1e-3):
        raise DataError(f"atlas {atlas.source} is not in the images' space: affine\n{np.round(atlas.affine, 3)}\n"
                        f"vs the images'\n{np.round(np.asarray(affine), 3)}")
    return atlas
