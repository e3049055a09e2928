"""A synthetic cohort whose ground truth is known (``anatlearn synth``): see docs/synthetic.md.

A cohort is drawn from one world, picked by version from :data:`WORLDS`: ``v2`` (default; full-rank healthy
anatomy, disease sizes as Cohen's d: world_v2.py) or ``v1`` (world_v1.py). Subjects (demographics, latent
factors, disease and severity) are drawn here; the world turns them into true anatomy. The image is the
template GM map modulated region by region by GMV_nk / (base_ct_k base_sa_k), smoothed, then distorted by its
site (gain, linear bias field, smoothing, noise): site is visible in images but independent of anatomy. The
ROI tables hold noisy measurements of CT, GMV, SA (3 % multiplicative noise), as FreeSurfer's are.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from anatlearn.data.regions import ROI_CHANNELS
from anatlearn.errors import ConfigError
from anatlearn.io import make_temp_dir, replace_dir
from anatlearn.synthetic import world_v1, world_v2
from anatlearn.synthetic.world import DISEASES, World, WorldModel

WORLDS: dict[str, WorldModel] = {model.version: model for model in (world_v1.MODEL, world_v2.MODEL)}
WORLD_VERSIONS = tuple(WORLDS)
SCORES = {"AD-like": ("MMSE_like", 29.0, -10.0, 1.5), "SCZ-like": ("PANSS_like", 45.0, 50.0, 6.0)}
AGE_RANGES = {"AD-like": (55.0, 88.0), "SCZ-like": (18.0, 55.0)}
MEASUREMENT_NOISE = 0.03


@functools.lru_cache(maxsize=8)
def make_world(shape: tuple[int, int, int], seed: int, n_sites: int, version: str = "v2") -> World:
    """The world of (shape, seed, n_sites) in the given version of the model (a key of :data:`WORLDS`)."""
    if version not in WORLDS:
        raise ValueError(f"unknown world version {version!r}; choose from {', '.join(WORLD_VERSIONS)}")
    return WORLDS[version].make(tuple(shape), seed, n_sites)


def sample_subjects(world: World, n: int, seed: int, diseases=(), cohort_code: int = 0) -> pd.DataFrame:
    """Demographics, latents and disease of n subjects (depends on seed, not on the scan-noise seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B, cohort_code]))
    n_sites = len(world.site_gain)
    rows = pd.DataFrame({"participant_id": [f"{cohort_code:02d}{i:05d}" for i in range(n)]})
    rows["sex"] = np.where(rng.random(n) < 0.5, "M", "F")
    rows["site"] = [f"site{s:02d}" for s in rng.integers(0, n_sites, n)]
    if not diseases:
        rows["age"] = np.round(6 + 82 * rng.beta(1.2, 1.8, n), 2)
        rows["diagnosis"], rows["severity"], rows["cohort"] = "CN", 0.0, "healthy"
    else:
        cohort = np.array([diseases[i % len(diseases)] for i in range(n)])
        patient = (np.arange(n) // len(diseases)) % 2 == 0
        lo = np.array([AGE_RANGES[c][0] for c in cohort])
        hi = np.array([AGE_RANGES[c][1] for c in cohort])
        rows["age"] = np.round(lo + (hi - lo) * rng.random(n), 2)  # controls drawn from the patients' range
        rows["cohort"] = cohort
        rows["diagnosis"] = np.where(patient, cohort, "CN")
        rows["severity"] = np.where(patient, rng.uniform(0.2, 1.0, n), 0.0)
        for name, (col, a, b, sd) in SCORES.items():
            score = a + b * rows["severity"] + rng.normal(0, sd, n)
            rows[col] = np.where(cohort == name, np.round(score, 1), np.nan)
    for j in range(world.load_ct.shape[1]):
        rows[f"u{j}"] = rng.normal(size=n)
    for j in range(world.load_sa.shape[1]):
        rows[f"v{j}"] = rng.normal(size=n)
    rows["eps_seed"] = rng.integers(0, 2**31, n)
    return rows


def true_anatomy(world: World, subjects: pd.DataFrame) -> np.ndarray:
    """(n, K, 3) true CT (mm), GMV (mm^3), SA (mm^2), by the model of the world's version."""
    return WORLDS[world.version].true_anatomy(world, subjects)


def render_image(world: World, anatomy_n: np.ndarray, site: int, rng: np.random.Generator) -> np.ndarray:
    """A VBM-like modulated GM map of one subject on the world's grid (float32)."""
    rel = anatomy_n[:, 1] / (world.base_ct * world.base_sa)  # regional volume relative to the template
    scale = np.append(rel, rel.mean())  # index -1 (non-cortical GM) follows the global volume
    img = world.template * scale[world.labels].astype(np.float32)
    sigma = np.sqrt(0.6**2 + world.site_smooth[site] ** 2)
    img = gaussian_filter(img, sigma, mode="constant")
    bias = world.site_bias[site] + rng.normal(0, 0.02, 3)  # per-scan jitter around the site's field
    img *= world.site_gain[site] * np.exp(np.tensordot(bias.astype(np.float32), world.coords_unit, axes=1))
    img += rng.normal(0, world.site_noise[site], img.shape).astype(np.float32)
    return np.clip(img, 0.0, None).astype(np.float32)


def roi_table(world: World, subjects: pd.DataFrame, anatomy: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The OpenBHB desikan ROI table: 7 channels x K regions, channel-major, noisy measurements."""
    n, k = anatomy.shape[:2]
    meas = anatomy * np.exp(rng.normal(0, MEASUREMENT_NOISE, anatomy.shape))
    ct, gmv, sa = meas[..., 0], meas[..., 1], meas[..., 2]
    channels = {"surface_area_mm^2": sa, "gray_matter_volume_mm^3": gmv, "average_thickness_mm": ct,
                "thickness_stddev_mm": 0.25 * ct * np.exp(rng.normal(0, 0.05, (n, k))),
                "integrated_rectified_mean_curvature_mm^-1": rng.gamma(20, 0.006, (n, k)),
                "integrated_rectified_gaussian_curvature_mm^-2": rng.gamma(10, 0.002, (n, k)),
                "intrinsic_curvature_index": rng.gamma(5, 0.3, (n, k))}
    cols = {f"{c}:{r}": channels[c][:, i] for c in ROI_CHANNELS for i, r in enumerate(world.region_names)}
    return pd.concat([pd.DataFrame({"participant_id": subjects["participant_id"], "session": "V1"}),
                      pd.DataFrame(cols).round(5)], axis=1)


def assign_splits(subjects: pd.DataFrame, n_sites: int, held_out_sites: int, seed: int) -> np.ndarray:
    """external_test = held-out sites (as in OpenBHB); internal_test = 15 % of the others; train = rest."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x59]))
    site_idx = subjects["site"].str.removeprefix("site").astype(int).to_numpy()
    split = np.where(site_idx >= n_sites - held_out_sites, "external_test", "train").astype(object)
    inside = np.nonzero(split == "train")[0]
    split[rng.choice(inside, size=int(round(0.15 * len(inside))), replace=False)] = "internal_test"
    return split


def generate_cohort(out, n_subjects: int = 200, shape=(61, 73, 61), seed: int = 0, n_sites: int = 4,
                    held_out_sites: int = 1, diseases=(), noise_seed: int = 0, nifti: bool = False,
                    overwrite: bool = False, cohort_code: int | None = None, world: str = "v2") -> Path:
    """Write a synthetic cohort in the OpenBHB per-subject layout (and optionally NIfTI + aparc.stats).

    Healthy cohort (``diseases=()``): splits train / internal_test / external_test (held-out sites).
    Downstream cohort (e.g. ``diseases=("AD-like", "SCZ-like")``): per disease, alternating patients and
    age/sex-matched controls, with ``diagnosis``, ``severity`` and a clinical score. Cohorts generated with
    the same ``seed``, ``shape`` and ``n_sites`` share one world. ``noise_seed`` re-draws only scan and
    measurement noise (same subjects, same anatomy): a test-retest re-acquisition. ``world`` picks the
    generative model: "v2" (default) or "v1" (the original world, reproduced bit-for-bit).
    """
    out = Path(out)
    shape = tuple(int(s) for s in shape)
    if n_subjects < 2:
        raise ConfigError(f"--subjects must be at least 2, got {n_subjects}")
    if len(shape) != 3 or min(shape) < 32:
        raise ConfigError(f"--shape must be three sizes >= 32 (the encoders need 32^3), got {shape}")
    unknown = [d for d in diseases if d not in DISEASES]
    if unknown:
        raise ConfigError(f"unknown disease {unknown[0]!r}; choose from {', '.join(DISEASES)}")
    if not 0 <= held_out_sites < n_sites:
        raise ConfigError(f"held_out_sites must be in [0, n_sites={n_sites}), got {held_out_sites}")
    if world not in WORLD_VERSIONS:
        raise ConfigError(f"unknown --world {world!r}; choose from {', '.join(WORLD_VERSIONS)}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"output directory {out} is not empty (use --overwrite to replace it)")
    version, world = world, make_world(shape, seed, n_sites, world)
    code = cohort_code if cohort_code is not None else (1 if diseases else 0)
    subjects = sample_subjects(world, n_subjects, seed, tuple(diseases), code)
    anatomy = true_anatomy(world, subjects)
    noise_rng = np.random.default_rng(np.random.SeedSequence([seed, noise_seed, 0xE1, code]))
    tmp = make_temp_dir(out)
    try:
        (tmp / "images").mkdir()
        site_idx = subjects["site"].str.removeprefix("site").astype(int).to_numpy()
        for i, pid in enumerate(subjects["participant_id"]):
            img = render_image(world, anatomy[i], site_idx[i], noise_rng)
            np.save(tmp / "images" / f"sub-{pid}_preproc-cat12vbm_desc-gm_T1w.npy", img[None])
        table = subjects.drop(columns=[c for c in subjects if c[0] in "uv" and c[1:].isdigit()] + ["eps_seed"])
        if not diseases:
            table["split"] = assign_splits(subjects, n_sites, held_out_sites, seed)
        table["study"] = "synthetic"
        table.to_csv(tmp / "participants.tsv", sep="\t", index=False)
        (tmp / "freesurfer_roi").mkdir()
        roi_table(world, subjects, anatomy, noise_rng).to_csv(tmp / "freesurfer_roi" / "desikan_roi_features.csv", index=False)
        (tmp / "resource").mkdir()
        (tmp / "resource" / "resources.json").write_text(json.dumps(
            {"desikan_roi": {"channels": list(ROI_CHANNELS), "regions": world.region_names}}, indent=1))
        _write_truth(tmp / "truth", world, subjects, anatomy, dict(n_subjects=n_subjects, shape=shape, seed=seed,
                     n_sites=n_sites, held_out_sites=held_out_sites, diseases=list(diseases), noise_seed=noise_seed,
                     world=version))
        if nifti:
            from anatlearn.synthetic.nifti import write_nifti_layout

            write_nifti_layout(tmp / "bids", world, table, tmp / "images", anatomy, noise_rng)
        replace_dir(tmp, out)  # the old cohort or the new one, never a mix
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_truth(path: Path, world: World, subjects: pd.DataFrame, anatomy: np.ndarray, params: dict) -> None:
    from anatlearn.provenance import provenance

    path.mkdir()
    latent_cols = ["participant_id"] + [c for c in subjects if c[0] in "uv" and c[1:].isdigit()] + ["severity"]
    subjects[latent_cols].to_csv(path / "latents.tsv", sep="\t", index=False)
    np.save(path / "anatomy.npy", anatomy.astype(np.float32))  # (n, K, 3): CT, GMV, SA without measurement noise
    model = WORLDS[world.version]
    info = {"world": world.version, "params": params, "model": model.parameters(), "region_names": world.region_names,
            "diseases": model.disease_report(world),
            "sites": {"gain": world.site_gain.round(3).tolist(), "noise": world.site_noise.round(4).tolist(),
                      "smooth_vox": world.site_smooth.round(2).tolist()},
            "affine": world.affine.tolist(), "provenance": provenance(params["seed"], params)}
    (path / "world.json").write_text(json.dumps(info, indent=1))
