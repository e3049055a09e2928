"""World v2 of the synthetic cohort: healthy anatomy with a realistic, full-rank covariance structure and
disease effects set as Cohen's d against that healthy variation. See docs/synthetic.md for every number's
source; the parameters below are fixed before any method comparison and must not be tuned on its results.

Per subject n and region k, on the log scale (x_ct = log CT, x_sa = log SA):

    x_ct[n,k] = log base_ct_k + log(1 + slope_k g2(age_n) + sex_ct_k male_n)
                + sigma_ct_k (sqrt(rho_g) u0_n + sum_j lambda_kj u_j,n + sqrt(psi_k) e_nk)
                - d_k sigma_ct_k s_n / E[s]                                     (patients only)
    x_sa[n,k] = log base_sa_k + h2(age_n) + 0.07 male_n
                + sigma_sa_k (sqrt(rho_g') v0_n + sum_j lambda'_kj v_j,n + sqrt(psi'_k) e'_nk)
    GMV = CT SA e^{0.02 eps}

u, v, e, e' ~ N(0, 1) independent (CT and SA are phenotypically nearly independent: Panizzon et al. 2009).
Each region's standardised residual has unit variance: rho_g + |lambda_k|^2 + psi_k = 1, so sigma_ct_k is the
regional SD (coefficient of variation) of log CT after age and sex, rho_g the share of the global factor,
|lambda_k|^2 the share of smooth "network" factors (loadings = Gaussian bumps over region centroids, mirrored
across hemispheres, with a decaying spectrum) and psi_k the region-specific share. The implied correlation of
regions k and l is rho_g + lambda_k . lambda_l. A patient's thinning at the mean severity E[s] is d_k regional
SDs: d_k = d_peak w_k with w the disease pattern (1 at the epicentre region). g2 = :func:`ct_age_change_v2`,
h2 = :func:`sa_age_change_v2`.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from anatlearn.synthetic.world import World, WorldModel, smooth_loadings
from anatlearn.synthetic.world_v1 import make_world_v1

# ---- parameters (rationale and sources: docs/synthetic.md, "World v2") --------------------------------------
CT_SD = (0.04, 0.075)          # regional SD of log CT after age/sex (true anatomy; + 3 % measurement noise)
SA_SD = (0.08, 0.14)           # regional SD of log SA after age/sex
CT_GLOBAL, SA_GLOBAL = 0.30, 0.45          # share of the global factor (mean thickness / total area)
CT_SPECIFIC, SA_SPECIFIC = (0.35, 0.60), (0.25, 0.45)   # region-specific share psi_k ~ U(lo, hi)
N_CT_NETWORKS, N_SA_NETWORKS = 6, 4
NETWORK_DECAY = 0.6            # spectrum of the network factors: variance of factor j proportional to 0.6^j
NETWORK_WIDTH_MM = 40.0
GMV_NOISE = 0.02               # GMV = CT x SA up to folding (log-SD 2 %)
SEX_SA = 0.07                  # log-area difference male - female (as v1)
DISEASE_D = {"AD-like": 1.5, "SCZ-like": 0.45}  # Cohen's d of thinning at the epicentre region, mean patient
SEVERITY_MEAN = 0.6            # E[s] for s ~ U(0.2, 1) (patients' severity, as v1)
HEALTHY_SPAN_VARIANCE = 0.90   # "healthy span" = top PCs explaining 90 % of healthy log-CT variance


def ct_age_change_v2(a):
    """Relative CT change with age: highest in childhood, steepest decline to the third decade, then a slower,
    slightly accelerating thinning (Frangou et al. 2022: age explains up to 59 % of regional CT variance over
    3-90 years); about -0.17 %/year at 50-70, half of Storsve et al. 2014's longitudinal -0.35 %/year (a larger
    amplitude would push the age share of many regions above Frangou's maximum)."""
    a = np.asarray(a, dtype=np.float64)
    x = np.clip((a - 6) / 82, 0, None)
    return -0.06 * (1 - np.exp(-(a - 6) / 10)) - 0.12 * x**1.3


def sa_age_change_v2(a):
    """Log SA change with age: growth to a peak in early adolescence, then about -0.15 %/year in adults
    (Storsve et al. 2014: -0.19 %/year)."""
    a = np.asarray(a, dtype=np.float64)
    x = np.clip((a - 6) / 82, 0, None)
    return 0.08 * (1 - np.exp(-(a - 6) / 3)) - 0.12 * x**1.2


def _network_loadings(rng, centroids, n_factors, global_share, specific_range):
    """(K, n_factors) loadings lambda with row norms^2 = 1 - global - psi_k, and psi (K,)."""
    raw = smooth_loadings(rng, centroids, n_factors, NETWORK_WIDTH_MM)
    raw *= np.sqrt(NETWORK_DECAY ** np.arange(n_factors))
    psi = rng.uniform(*specific_range, len(centroids))
    target = np.sqrt(1.0 - global_share - psi)
    norm = np.linalg.norm(raw, axis=1)
    return raw * (target / np.maximum(norm, 1e-6))[:, None], psi


@functools.lru_cache(maxsize=8)
def make_world_v2(shape: tuple[int, int, int], seed: int, n_sites: int) -> World:
    """World v2 from the v1 world of the same (shape, seed, n_sites): same grid, regions, base values, age-slope
    multipliers, sex effects, sites and disease patterns (so site effects are v1's); new healthy covariance
    structure drawn from its own random stream."""
    base = make_world_v1(tuple(shape), seed, n_sites)
    rng = np.random.default_rng(np.random.SeedSequence([base.seed, 0xA7, 2]))
    k = len(base.region_names)
    sd_ct, sd_sa = rng.uniform(*CT_SD, k), rng.uniform(*SA_SD, k)
    lam_ct, psi_ct = _network_loadings(rng, base.centroids, N_CT_NETWORKS, CT_GLOBAL, CT_SPECIFIC)
    lam_sa, psi_sa = _network_loadings(rng, base.centroids, N_SA_NETWORKS, SA_GLOBAL, SA_SPECIFIC)
    # load_* are in log units: column 0 the global factor, then the networks (latents u0.., v0..)
    load_ct = sd_ct[:, None] * np.column_stack([np.full(k, np.sqrt(CT_GLOBAL)), lam_ct])
    load_sa = sd_sa[:, None] * np.column_stack([np.full(k, np.sqrt(SA_GLOBAL)), lam_sa])
    return dataclasses.replace(base, version="v2", load_ct=load_ct, load_sa=load_sa,
                               spec_ct=sd_ct * np.sqrt(psi_ct), spec_sa=sd_sa * np.sqrt(psi_sa))


def disease_shift(world, name: str) -> np.ndarray:
    """(K,) log-CT change of a patient at the mean severity: -d_peak w_k sigma_ct_k."""
    return -DISEASE_D[name] * world.diseases[name] * regional_sd_ct(world)


def true_anatomy_v2(world: World, subjects) -> np.ndarray:
    """(n, K, 3) true CT (mm), GMV (mm^3), SA (mm^2) of world v2 (model in the module docstring)."""
    n, k = len(subjects), len(world.region_names)
    u = subjects[[c for c in subjects if c.startswith("u") and c[1:].isdigit()]].to_numpy()
    v = subjects[[c for c in subjects if c.startswith("v") and c[1:].isdigit()]].to_numpy()
    male = (subjects["sex"] == "M").to_numpy(float)[:, None]
    age = subjects["age"].to_numpy()[:, None]
    sev = subjects["severity"].to_numpy()[:, None] / SEVERITY_MEAN
    disease = np.zeros((n, k))
    for name in world.diseases:
        sel = (subjects["diagnosis"] == name).to_numpy()[:, None]
        disease += sel * sev * disease_shift(world, name)[None, :]
    eps = np.stack([np.random.default_rng(s).normal(0, 1, (3, k)) for s in subjects["eps_seed"]])
    log_ct = (np.log(world.base_ct) + np.log1p(world.age_slope * ct_age_change_v2(age) + world.sex_ct * male)
              + u @ world.load_ct.T + world.spec_ct * eps[:, 0] + disease)
    log_sa = (np.log(world.base_sa) + sa_age_change_v2(age) + SEX_SA * male + v @ world.load_sa.T + world.spec_sa * eps[:, 1])
    ct, sa = np.exp(log_ct), np.exp(log_sa)
    gmv = ct * sa * np.exp(GMV_NOISE * eps[:, 2])
    return np.stack([ct, gmv, sa], axis=-1)


# ---- the world's own statistics (analytic, from its parameters) --------------------------------------------
def residual_cov(world, channel: str = "ct") -> np.ndarray:
    """(K, K) covariance of log CT (or SA) after age and sex: L L^T + diag(spec^2)."""
    load, spec = (world.load_ct, world.spec_ct) if channel == "ct" else (world.load_sa, world.spec_sa)
    return load @ load.T + np.diag(spec**2)


def regional_sd_ct(world) -> np.ndarray:
    return np.sqrt(np.diag(residual_cov(world, "ct")))


def healthy_cov_ct(world) -> np.ndarray:
    """(K, K) covariance of log CT over the healthy cohort: the age curve over the healthy age distribution
    (6 + 82 Beta(1.2, 1.8), by quadrature) plus the residual covariance (sex, a negligible share, is left out)."""
    from scipy.stats import beta

    x = (np.arange(2000) + 0.5) / 2000
    w = beta.pdf(x, 1.2, 1.8)
    w /= w.sum()
    traj = np.log1p(world.age_slope[None, :] * ct_age_change_v2(6 + 82 * x)[:, None])  # (ages, K)
    centred = traj - w @ traj
    return (centred * w[:, None]).T @ centred + residual_cov(world, "ct")


def healthy_span(world, share: float = HEALTHY_SPAN_VARIANCE) -> np.ndarray:
    """(K, m) orthonormal basis: the top principal directions of healthy log-CT variation holding ``share``."""
    val, vec = np.linalg.eigh(healthy_cov_ct(world))
    val, vec = val[::-1], vec[:, ::-1]
    m = int(np.searchsorted(np.cumsum(val) / val.sum(), share) + 1)
    return vec[:, :m]


def disease_report(world) -> dict:
    """Per disease: where its pattern lies relative to healthy variation and how large it is against it."""
    span = healthy_span(world)
    factors = np.column_stack([world.load_ct, world.age_slope])  # shared factors + age (v1's definition)
    qf, _ = np.linalg.qr(factors)
    cov = residual_cov(world, "ct")
    sd = np.sqrt(np.diag(cov))
    out = {}
    for name, pattern in world.diseases.items():
        delta = disease_shift(world, name)
        unit = delta / np.linalg.norm(delta)
        in_span = span.T @ unit
        in_factors = qf.T @ unit
        sd_along = float(np.sqrt(unit @ cov @ unit))
        out[name] = {
            "regions": [world.region_names[k] for k in np.nonzero(pattern)[0]],
            "weights": pattern[pattern > 0].round(3).tolist(),
            "d_peak": DISEASE_D[name],
            "d_regional": (-delta / sd)[pattern > 0].round(3).tolist(),
            "fraction_in_healthy_span": round(float(in_span @ in_span), 3),
            "healthy_span_pcs": int(span.shape[1]),
            "fraction_in_factor_span": round(float(in_factors @ in_factors), 3),
            "d_along_pattern": round(float(np.linalg.norm(delta)) / sd_along, 3),
            "d_mahalanobis": round(float(np.sqrt(delta @ np.linalg.solve(cov, delta))), 3),
        }
    return out


def parameters() -> dict:
    """The v2 parameters, for truth/world.json."""
    return {"ct_regional_sd": CT_SD, "sa_regional_sd": SA_SD, "ct_global_share": CT_GLOBAL,
            "sa_global_share": SA_GLOBAL, "ct_specific_share": CT_SPECIFIC, "sa_specific_share": SA_SPECIFIC,
            "n_ct_networks": N_CT_NETWORKS, "n_sa_networks": N_SA_NETWORKS, "network_decay": NETWORK_DECAY,
            "network_width_mm": NETWORK_WIDTH_MM, "gmv_noise": GMV_NOISE, "sex_sa": SEX_SA,
            "disease_d_peak": DISEASE_D, "severity_mean": SEVERITY_MEAN,
            "healthy_span_variance": HEALTHY_SPAN_VARIANCE}


MODEL = WorldModel(version="v2", make=make_world_v2, true_anatomy=true_anatomy_v2, disease_report=disease_report,
                   parameters=parameters)
