"""What every world of the synthetic cohort shares: the template grid, the cortical regions, smooth loadings
over regions, the disease patterns, the :class:`World` record and the :class:`WorldModel` interface that
each world version (world_v1.py, world_v2.py) implements. A world depends only on (shape, seed, n_sites,
version), so healthy and downstream cohorts generated with the same seed share it. See docs/synthetic.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from anatlearn.data.regions import DK_REGIONS_PER_HEMISPHERE

# OpenBHB's CAT12 grid: 121 x 145 x 121 voxels of 1.5 mm; other grids span the same field of view.
FOV_MM = (181.5, 217.5, 181.5)
ORIGIN_MM = (-90.0, -126.0, -72.0)
# Disease epicentres (|x|, y, z in MNI mm): bilateral temporal (AD-like) and prefrontal (SCZ-like).
DISEASES = {"AD-like": (48.0, -15.0, -22.0), "SCZ-like": (30.0, 45.0, 15.0)}
REGIONS_PER_DISEASE = 8


@dataclass
class World:
    shape: tuple[int, int, int]
    affine: np.ndarray
    template: np.ndarray          # (X, Y, Z) gray-matter probability
    labels: np.ndarray            # (X, Y, Z) int16, region index in [0, 68) for cortex, -1 elsewhere
    region_names: list[str]
    centroids: np.ndarray         # (K, 3) mm
    base_ct: np.ndarray           # (K,) mm
    base_sa: np.ndarray           # (K,) mm^2
    age_slope: np.ndarray         # (K,) region-specific multiplier of the age curve
    load_ct: np.ndarray           # (K, N_CT_FACTORS) smooth loadings of the thickness factors
    load_sa: np.ndarray           # (K, N_SA_FACTORS)
    sex_ct: np.ndarray            # (K,)
    site_gain: np.ndarray         # (S,)
    site_noise: np.ndarray        # (S,)
    site_smooth: np.ndarray       # (S,) extra Gaussian smoothing (voxels)
    site_bias: np.ndarray         # (S, 3) linear log-bias-field coefficients
    diseases: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (K,) atrophy pattern in [0, 1]
    seed: int = 0
    version: str = "v1"            # the WorldModel that made it ("v1" or "v2"); v2 loadings are in log units
    spec_ct: np.ndarray | None = None  # (K,) v2: SD of the region-specific component of log CT
    spec_sa: np.ndarray | None = None  # (K,) v2: same for log SA

    @property
    def coords_unit(self) -> np.ndarray:
        """(3, X, Y, Z) voxel coordinates scaled to [-1, 1] (for bias fields)."""
        return _unit_grid(self.shape)


@dataclass(frozen=True)
class WorldModel:
    """One version of the generative model: how to build its world, draw true anatomy from it, and describe
    it in ``truth/world.json``."""

    version: str
    make: Callable[[tuple[int, int, int], int, int], World]         # (shape, seed, n_sites) -> World
    true_anatomy: Callable[..., np.ndarray]                         # (world, subjects) -> (n, K, 3) CT, GMV, SA
    disease_report: Callable[[World], dict]                         # per disease: regions, weights, sizes
    parameters: Callable[[], dict]                                  # the model's fixed parameters


@functools.lru_cache(maxsize=4)
def _unit_grid(shape: tuple[int, int, int]) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij"))


def grid_affine(shape: tuple[int, int, int]) -> np.ndarray:
    vox = [f / n for f, n in zip(FOV_MM, shape)]
    aff = np.diag([*vox, 1.0])
    aff[:3, 3] = ORIGIN_MM
    return aff


@functools.lru_cache(maxsize=4)
def template_and_labels(shape: tuple[int, int, int]):
    """The MNI152 GM template (shipped offline with nilearn) on our grid, and 34 regions per hemisphere
    obtained by k-means on the cortical voxels' coordinates (deterministic: fixed k-means seed)."""
    from nilearn import datasets, image
    from sklearn.cluster import KMeans

    affine = grid_affine(shape)
    gm = datasets.load_mni152_gm_template(resolution=2)
    tpl = image.resample_img(gm, target_affine=affine, target_shape=shape, interpolation="continuous",
                             force_resample=True, copy_header=True).get_fdata(dtype=np.float32)
    tpl = np.clip(np.nan_to_num(tpl), 0.0, 1.0)
    ijk = np.stack(np.nonzero(tpl > 0.3), axis=1)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    # Cortex: drop the cerebellum (inferior-posterior) and deep gray matter near the midline base.
    cortex = ~((xyz[:, 2] < -20) & (xyz[:, 1] < -40)) & ~((np.abs(xyz[:, 0]) < 25) & (xyz[:, 2] < 20) & (xyz[:, 2] > -15) & (np.abs(xyz[:, 1]) < 25))
    labels = np.full(shape, -1, dtype=np.int16)
    centroids, names = [], []
    n_per = len(DK_REGIONS_PER_HEMISPHERE)
    for h, (hemi, side) in enumerate((("lh", xyz[:, 0] < 0), ("rh", xyz[:, 0] >= 0))):
        sel = cortex & side
        km = KMeans(n_clusters=n_per, n_init=1, random_state=0).fit(np.abs(xyz[sel]) * [1, 1, 1])
        # order clusters posterior -> anterior so that numbering is stable and mirrored across hemispheres
        order = np.argsort(km.cluster_centers_[:, 1], kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(n_per)
        labels[tuple(ijk[sel].T)] = (h * n_per + rank[km.labels_]).astype(np.int16)
        for r in order:
            c = km.cluster_centers_[r].copy()
            c[0] = -c[0] if hemi == "lh" else c[0]
            centroids.append(c)
        names += [f"{hemi}-{n}" for n in DK_REGIONS_PER_HEMISPHERE]
    return affine, tpl, labels, np.array(centroids), names


def smooth_loadings(rng: np.random.Generator, centroids: np.ndarray, n_factors: int, width_mm: float = 40.0):
    """Loadings that vary smoothly over neighbouring regions (and bilaterally): sums of Gaussian bumps."""
    pos = np.abs(centroids) * [1, 1, 1]
    out = np.zeros((len(centroids), n_factors))
    for j in range(n_factors):
        for _ in range(3):
            mu = pos[rng.integers(len(pos))]
            out[:, j] += rng.normal() * np.exp(-((pos - mu) ** 2).sum(1) / (2 * width_mm**2))
        out[:, j] -= out[:, j].mean()
        out[:, j] /= np.sqrt((out[:, j] ** 2).mean()) + 1e-12
    return out


def disease_pattern(centroids: np.ndarray, epicentre) -> np.ndarray:
    """(K,) atrophy weights: the REGIONS_PER_DISEASE regions nearest the (bilateral) epicentre, decaying with
    distance (20 mm scale) from 1 at the nearest."""
    pos = np.abs(centroids)
    dist = np.sqrt(((pos - np.asarray(epicentre)) ** 2).sum(1))
    pattern = np.zeros(len(centroids))
    nearest = np.argsort(dist)[:REGIONS_PER_DISEASE]
    pattern[nearest] = np.exp(-(dist[nearest] - dist[nearest].min()) / 20.0)
    return pattern / pattern.max()
