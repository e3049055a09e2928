"""World v1 of the synthetic cohort: healthy anatomy from a few smooth latent factors (reproduced bit-for-bit
for earlier results; world_v2.py is the default). See docs/synthetic.md.

Per subject n and region k (relative to the region's base values):

    CT_nk  = base_ct_k * (1 + slope_k g1(age_n) + 0.05 L_ct[k] . u_n + sex_ct_k male_n - 0.15 s_n d_k) * e^eps
    SA_nk  = base_sa_k * exp(0.08 L_sa[k] . v_n + 0.07 male_n + h1(age_n) + eps')
    GMV_nk = CT_nk * SA_nk * e^eps''

with latent factors u_n ~ N(0, I_4), v_n ~ N(0, I_2), g1 = :func:`ct_age_change_v1` (growth in childhood,
thinning later), h1 = :func:`sa_age_change_v1`, disease pattern d over a few regions with severity s_n (0 for
healthy subjects and controls).
"""

from __future__ import annotations

import functools

import numpy as np

from anatlearn.synthetic.world import (DISEASES, World, WorldModel, disease_pattern, smooth_loadings,
                                       template_and_labels)

N_CT_FACTORS, N_SA_FACTORS = 4, 2


@functools.lru_cache(maxsize=8)
def make_world_v1(shape: tuple[int, int, int], seed: int, n_sites: int) -> World:
    """The v1 world of (shape, seed, n_sites). Its random stream also fixes the base values, sites and disease
    patterns that world v2 keeps."""
    affine, tpl, labels, centroids, names = template_and_labels(tuple(shape))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA7]))
    k = len(names)
    return World(
        shape=tuple(shape), affine=affine, template=tpl, labels=labels, region_names=names, centroids=centroids,
        base_ct=rng.uniform(2.0, 3.4, k), base_sa=rng.uniform(400.0, 4000.0, k),
        age_slope=rng.uniform(0.6, 1.4, k), load_ct=smooth_loadings(rng, centroids, N_CT_FACTORS),
        load_sa=smooth_loadings(rng, centroids, N_SA_FACTORS), sex_ct=rng.normal(0, 0.01, k),
        # Site effects on *gray-matter maps* (tissue probabilities x Jacobian, bias-corrected by the
        # segmentation): a few percent of contrast, smoothness and residual bias, not scanner-intensity gains.
        site_gain=rng.uniform(0.95, 1.05, n_sites), site_noise=rng.uniform(0.01, 0.05, n_sites),
        site_smooth=rng.uniform(0.0, 1.2, n_sites), site_bias=rng.normal(0, 0.03, (n_sites, 3)),
        diseases={name: disease_pattern(centroids, epi) for name, epi in DISEASES.items()}, seed=seed,
    )


def ct_age_change_v1(a):
    """g1(a) = 0.06 (1 - e^{-(a-6)/5}) - 0.22 ((a-6)/82)^1.3: relative CT change with age in world v1."""
    a = np.asarray(a, dtype=np.float64)
    return 0.06 * (1 - np.exp(-(a - 6) / 5)) - 0.22 * np.clip((a - 6) / 82, 0, None) ** 1.3


def sa_age_change_v1(a):
    """h1(a) = 0.1 (1 - e^{-(a-6)/6}) - 0.06 (a-6)/82: log SA change with age in world v1."""
    a = np.asarray(a, dtype=np.float64)
    return 0.1 * (1 - np.exp(-(a - 6) / 6)) - 0.06 * (a - 6) / 82


def true_anatomy_v1(world: World, subjects) -> np.ndarray:
    """(n, K, 3) true CT (mm), GMV (mm^3), SA (mm^2) of world v1 (model in the module docstring)."""
    n, k = len(subjects), len(world.region_names)
    u = subjects[[c for c in subjects if c.startswith("u") and c[1:].isdigit()]].to_numpy()
    v = subjects[[c for c in subjects if c.startswith("v") and c[1:].isdigit()]].to_numpy()
    male = (subjects["sex"] == "M").to_numpy(float)[:, None]
    age = subjects["age"].to_numpy()[:, None]
    atrophy = np.zeros((n, k))
    for name, pattern in world.diseases.items():
        sel = (subjects["diagnosis"] == name).to_numpy()[:, None]
        atrophy += sel * subjects["severity"].to_numpy()[:, None] * pattern[None, :]
    eps = np.stack([np.random.default_rng(s).normal(0, 1, (3, k)) for s in subjects["eps_seed"]])
    ct = world.base_ct * (1 + world.age_slope * ct_age_change_v1(age) + 0.05 * u @ world.load_ct.T
                          + world.sex_ct * male - 0.15 * atrophy) * np.exp(0.01 * eps[:, 0])
    sa = world.base_sa * np.exp(0.08 * v @ world.load_sa.T + 0.07 * male + sa_age_change_v1(age) + 0.02 * eps[:, 1])
    gmv = ct * sa * np.exp(0.02 * eps[:, 2])
    return np.stack([ct, gmv, sa], axis=-1)


def span_fraction(world: World, pattern: np.ndarray) -> float:
    """Fraction of ||d||^2 inside the span of v1's healthy thickness variation (loadings and age slope)."""
    basis = np.column_stack([world.load_ct, world.age_slope * world.base_ct / world.base_ct.mean()])
    q, _ = np.linalg.qr(basis)
    proj = q @ (q.T @ pattern)
    return float(proj @ proj / (pattern @ pattern))


def disease_report_v1(world: World) -> dict:
    """Per disease: its regions, weights and the share of its pattern inside the healthy span."""
    return {name: {"regions": [world.region_names[k] for k in np.nonzero(p)[0]],
                   "weights": p[p > 0].round(3).tolist(),
                   "fraction_in_healthy_span": round(span_fraction(world, p), 3)}
            for name, p in world.diseases.items()}


def parameters_v1() -> dict:
    """World v1's parameters are the constants of the module docstring; truth/world.json lists none."""
    return {}


MODEL = WorldModel(version="v1", make=make_world_v1, true_anatomy=true_anatomy_v1,
                   disease_report=disease_report_v1, parameters=parameters_v1)
