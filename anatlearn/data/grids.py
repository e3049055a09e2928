"""The voxel grids of the models' inputs in MNI space (the spaces of the released weights' inputs, OpenBHB,
Dufumier et al. 2022). Readers check images against them; prep resamples onto them.

* ``vbm``: 121 x 145 x 121 at 1.5 mm, the SPM12/CAT12 tissue-probability-map grid. Affine
  ``[[-1.5, 0, 0, 90], [0, 1.5, 0, -126], [0, 0, 1.5, -72]]`` (0-based voxel indices, RAS mm): x is stored
  right-to-left like SPM/CAT12 output, and the box spans x -90..90, y -126..90, z -72..108 mm.
* ``quasiraw``: 182 x 218 x 182 at 1 mm, FSL's MNI152 1 mm grid, the same origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A voxel grid in MNI space: shape and 4 x 4 voxel-to-mm affine (RAS)."""

    shape: tuple[int, int, int]
    affine: tuple[tuple[float, ...], ...]

    @property
    def matrix(self) -> np.ndarray:
        return np.array(self.affine, dtype=float)

    @property
    def voxel_volume(self) -> float:
        return float(abs(np.linalg.det(self.matrix[:3, :3])))

    @classmethod
    def make(cls, shape, affine) -> "Grid":
        return cls(tuple(int(s) for s in shape), tuple(tuple(float(v) for v in row) for row in np.asarray(affine)))

    @classmethod
    def covering_box(cls, voxel_mm: float, flip_x: bool = True) -> "Grid":
        """A grid of ``voxel_mm`` voxels covering the CAT12/FSL MNI box (x -90..90, y -126..90, z -72..108)."""
        n = [int(round(extent / voxel_mm)) + 1 for extent in (180.0, 216.0, 180.0)]
        aff = np.diag([-voxel_mm if flip_x else voxel_mm, voxel_mm, voxel_mm, 1.0])
        aff[:3, 3] = (90.0 if flip_x else -90.0, -126.0, -72.0)
        return cls.make(n, aff)


def _flipped_x(shape, voxel_mm: float) -> Grid:
    aff = np.diag([-voxel_mm, voxel_mm, voxel_mm, 1.0])
    aff[:3, 3] = (90.0, -126.0, -72.0)
    return Grid.make(shape, aff)


TARGETS = {"vbm": _flipped_x((121, 145, 121), 1.5), "quasiraw": _flipped_x((182, 218, 182), 1.0)}

SUFFIXES = {"vbm": "_preproc-cat12vbm_desc-gm_T1w", "quasiraw": "_preproc-quasiraw_T1w"}
