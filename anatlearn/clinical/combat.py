"""ComBat harmonisation of feature tables across sites (``anatlearn harmonize``).

Model (Johnson, Li & Rabinovic 2007, Biostatistics 8:118; for neuroimaging Fortin et al. 2017 NeuroImage
161:149 and 2018 NeuroImage 167:104), for feature v of subject j at site i:

    y_ijv = alpha_v + x_ij . beta_v + gamma_iv + delta_iv eps_ijv

with x_ij the covariates to preserve (age, sex, diagnosis... continuous columns enter linearly,
categorical ones as indicator columns minus their first level). Fit, on a reference table:
1. OLS of y on [site indicators | covariates]; alpha_v = sum_i (n_i / n) B_site,iv (grand mean),
   sigma_v^2 = mean_j (y - D B)^2 (pooled residual variance, divisor n as in neuroCombat);
2. standardise z = (y - alpha - x B_cov) / sigma;
3. per site, gamma_hat = mean(z), delta_hat = var(z, ddof 1); empirical-Bayes priors across features
   (gamma ~ N(gamma_bar, tau^2), delta ~ InverseGamma(a, b) by the method of moments) and the parametric
   posterior means gamma*, delta* by Johnson's fixed-point iteration (``eb=False``: gamma_hat, delta_hat);
4. harmonised y* = sigma (z - gamma*_i) / sqrt(delta*_i) + alpha + x B_cov.
``transform`` applies step 2 and 4 with the fitted alpha, B_cov, sigma, gamma*, delta* to subjects of the
fitted sites, with their own covariates (as neuroHarmonize's ``harmonizationApply``); a site unseen at fit
time has no gamma*/delta* and is refused. Features constant within a site are left unadjusted (as in sva's
ComBat): shrinking their zero site effect would give them a per-site offset, i.e. site information.

Why our own implementation: neuroHarmonize 2.5.2 (the maintained package) requires numpy<2 and pandas<3,
which conflicts with anatlearn's pinned numpy 2.3 / pandas 3; neuroCombat 0.2.12 (2021) is unmaintained and
its apply-to-new-data function (``neuroCombatFromTraining``, "under development") ignores the new subjects'
covariates. The test suite checks this implementation against neuroCombat's fit to ~1e-6.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from anatlearn.clinical.brain_age import as_matrix
from anatlearn.clinical.storage import load_model, save_model
from anatlearn.errors import ConfigError, DataError, listed
from anatlearn.data.lineage import identity_of
from anatlearn.provenance import provenance

KIND = "combat"
EB_TOLERANCE = 1e-8  # relative change of gamma*, delta* (neuroCombat stops at 1e-4; we go to the fixed point)
EB_MAX_ITER = 1000


def _eb_posteriors(z_site: np.ndarray, gamma_hat, delta_hat, gamma_bar, tau2, a, b):
    """Johnson et al. (2007) parametric EB: iterate gamma* = (n tau^2 gamma_hat + delta* gamma_bar) /
    (n tau^2 + delta*), delta* = (sum_j (z - gamma*)^2 / 2 + b) / (n / 2 + a - 1) to a fixed point."""
    n = z_site.shape[0]
    g_old, d_old = gamma_hat.copy(), delta_hat.copy()
    for _ in range(EB_MAX_ITER):
        g_new = (tau2 * n * gamma_hat + d_old * gamma_bar) / (tau2 * n + d_old)
        d_new = (0.5 * ((z_site - g_new) ** 2).sum(axis=0) + b) / (n / 2.0 + a - 1.0)
        change = max(np.max(np.abs(g_new - g_old) / np.maximum(np.abs(g_old), 1e-300)),
                     np.max(np.abs(d_new - d_old) / d_old))
        g_old, d_old = g_new, d_new
        if change <= EB_TOLERANCE:
            break
    return g_old, d_old


class ComBatHarmonizer:
    """ComBat (parametric empirical Bayes) fitted on a reference and applied to subjects of known sites.

    ``covariates``: columns of the covariates table whose effects are preserved; numeric columns are
    continuous unless listed in ``categorical``. ``site_column``: the batch variable.

    >>> h = ComBatHarmonizer(["age", "sex"]).fit(features, participants)   # doctest: +SKIP
    >>> harmonised = h.transform(new_features, new_participants)
    """

    def __init__(self, covariates: Sequence[str] = (), site_column: str = "site",
                 categorical: Sequence[str] | None = None, eb: bool = True):
        self.covariates, self.site_column = list(covariates), site_column
        self.categorical = list(categorical) if categorical is not None else None
        self.eb = eb
        if site_column in self.covariates:
            raise ConfigError(f"the site column {site_column!r} cannot also be a covariate to preserve")

    # -- design ------------------------------------------------------------------------------------------
    def _covariate_table(self, covars: pd.DataFrame, n: int, source: str) -> pd.DataFrame:
        if not isinstance(covars, pd.DataFrame):
            raise DataError(f"{source}: covariates must be a DataFrame with column {self.site_column!r}")
        if len(covars) != n:
            raise DataError(f"{source}: {len(covars)} rows of covariates for {n} subjects")
        missing = [c for c in [self.site_column, *self.covariates] if c not in covars.columns]
        if missing:
            raise DataError(f"{source}: column(s) {', '.join(missing)} not found "
                            f"(columns: {listed(covars.columns)})")
        table = covars[[self.site_column, *self.covariates]]
        bad = table.isna().any(axis=1)
        if bad.any():
            col = table.columns[table[bad].isna().any()].tolist()
            raise DataError(f"{source}: missing {', '.join(col)} for {int(bad.sum())} subject(s) "
                            f"(e.g. {table.index[bad][0]})")
        return table

    def _covariate_design(self, table: pd.DataFrame, source: str) -> np.ndarray:
        cols = []
        for c in self.covariates:
            if c in self.levels_:
                values = table[c].astype(str).to_numpy()
                unseen = sorted(set(values) - set(self.levels_[c]))
                if unseen:
                    raise DataError(f"{source}: covariate {c!r} has value(s) {unseen} unseen when the harmoniser was "
                                    f"fitted (known: {self.levels_[c]})")
                cols += [(values == level).astype(float) for level in self.levels_[c][1:]]
            else:
                values = pd.to_numeric(table[c], errors="coerce").to_numpy(float)
                if not np.isfinite(values).all():
                    raise DataError(f"{source}: covariate {c!r} is continuous but has non-numeric values")
                cols.append(values)
        return np.column_stack(cols) if cols else np.zeros((len(table), 0))

    # -- fit / transform ---------------------------------------------------------------------------------
    def fit(self, X, covars: pd.DataFrame, source: str = "reference") -> "ComBatHarmonizer":
        """Estimate alpha, B_cov, sigma and the per-site gamma*, delta* on the reference."""
        Y, self.feature_names_ = as_matrix(X, source=f"{source} features")
        self.encoder_identity_ = identity_of(X) if isinstance(X, pd.DataFrame) else None  # checked on re-use
        table = self._covariate_table(covars, len(Y), source)
        categorical = self.categorical if self.categorical is not None else [
            c for c in self.covariates if not pd.api.types.is_numeric_dtype(table[c])]
        self.levels_ = {c: sorted(table[c].astype(str).unique()) for c in self.covariates if c in categorical}
        sites = table[self.site_column].astype(str).to_numpy()
        self.sites_, counts = np.unique(sites, return_counts=True)
        if len(self.sites_) < 2:
            raise DataError(f"{source}: a single site ({self.sites_[0]}); harmonisation needs at least two")
        if counts.min() < 2:
            raise DataError(f"{source}: site {self.sites_[counts.argmin()]!r} has {counts.min()} subject; ComBat "
                            f"needs at least 2 per site to estimate its variance")
        site_onehot = (sites[:, None] == self.sites_[None, :]).astype(float)
        cov = self._covariate_design(table, source)
        design = np.column_stack([site_onehot, cov])
        if np.linalg.matrix_rank(design) < design.shape[1]:
            raise DataError(f"{source}: the covariates {self.covariates} are confounded with site (design matrix "
                            f"rank deficient); drop a covariate or add subjects")
        B, *_ = np.linalg.lstsq(design, Y, rcond=None)
        n_sites = len(self.sites_)
        self.alpha_ = (counts / counts.sum()) @ B[:n_sites]
        self.beta_ = B[n_sites:]
        var = ((Y - design @ B) ** 2).mean(axis=0)
        var[var == 0] = np.median(var[var != 0]) if (var != 0).any() else 1.0
        self.sigma_ = np.sqrt(var)
        # A feature constant within a site (e.g. a dead ReLU unit) has no site effect to estimate and is left as
        # it is, as sva's ComBat does: shrinking its zero effect towards the prior mean would add a per-site
        # constant, i.e. perfect site information in a feature that had none (seen on random-init encoders).
        within = np.stack([Y[sites == s].var(axis=0) for s in self.sites_])
        keep = (within > 1e-14 * np.maximum((Y**2).mean(axis=0), 1e-300)).all(axis=0)
        if not keep.any():
            raise DataError(f"{source}: every feature is constant within some site; nothing to harmonise")
        z = (Y - self.alpha_ - cov @ self.beta_) / self.sigma_
        zk = z[:, keep]
        gamma_hat = np.stack([zk[sites == s].mean(axis=0) for s in self.sites_])
        delta_hat = np.stack([zk[sites == s].var(axis=0, ddof=1) for s in self.sites_])
        if self.eb and keep.sum() > 1:
            gamma_bar, tau2 = gamma_hat.mean(axis=1), gamma_hat.var(axis=1, ddof=1)
            m, s2 = delta_hat.mean(axis=1), delta_hat.var(axis=1, ddof=1)
            a, b = (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2  # inverse-gamma prior by moments
            post = [_eb_posteriors(zk[sites == s], gamma_hat[i], delta_hat[i], gamma_bar[i], tau2[i], a[i], b[i])
                    for i, s in enumerate(self.sites_)]
            gamma_hat, delta_hat = np.stack([p[0] for p in post]), np.stack([p[1] for p in post])
        # unadjusted features: gamma = 0, delta = 1, so transform returns them unchanged
        self.gamma_, self.delta_ = np.zeros((n_sites, Y.shape[1])), np.ones((n_sites, Y.shape[1]))
        self.gamma_[:, keep], self.delta_[:, keep] = gamma_hat, delta_hat
        self.site_counts_ = counts
        return self

    def _check_fitted(self):
        if not hasattr(self, "gamma_"):
            raise ConfigError("this ComBatHarmonizer is not fitted yet; call fit() or ComBatHarmonizer.load()")

    def transform(self, X, covars: pd.DataFrame, source: str = "features"):
        """Harmonised features (same type, index and columns as ``X``). Sites unseen at fit time are refused."""
        self._check_fitted()
        Y, _ = as_matrix(X, self.feature_names_, source=source)
        table = self._covariate_table(covars, len(Y), source)
        sites = table[self.site_column].astype(str).to_numpy()
        unseen = sorted(set(sites) - set(self.sites_))
        if unseen:
            n_unseen = int(np.isin(sites, unseen).sum())
            raise DataError(f"{source}: site(s) {', '.join(unseen)} ({n_unseen} subjects) were not in the reference the "
                            f"harmoniser was fitted on (known sites: {', '.join(self.sites_)}); ComBat cannot "
                            f"estimate an unseen site's effect from the reference: refit including that site")
        cov = self._covariate_design(table, source)
        mod = self.alpha_ + cov @ self.beta_
        idx = np.searchsorted(self.sites_, sites)
        z = (Y - mod) / self.sigma_
        out = self.sigma_ * (z - self.gamma_[idx]) / np.sqrt(self.delta_[idx]) + mod
        if isinstance(X, pd.DataFrame):
            df = pd.DataFrame(out, index=X.index, columns=X.columns)
            df.attrs["metadata"] = {**X.attrs.get("metadata", {}), "harmonisation": self.describe()}
            return df
        return out

    def fit_transform(self, X, covars: pd.DataFrame, source: str = "reference"):
        return self.fit(X, covars, source).transform(X, covars, source)

    def describe(self) -> dict:
        self._check_fitted()
        return {"method": "ComBat (parametric EB)" if self.eb else "ComBat (L/S, no EB)",
                "site_column": self.site_column, "covariates": self.covariates,
                "categorical_levels": self.levels_,
                "features_left_unadjusted": int(((self.gamma_ == 0) & (self.delta_ == 1)).all(axis=0).sum()),
                "sites": {str(s): int(n) for s, n in zip(self.sites_, self.site_counts_)}}

    # -- storage -------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted harmoniser as plain arrays (``.npz``, no pickle); reload with :meth:`load`."""
        self._check_fitted()
        arrays = {"alpha": self.alpha_, "beta": self.beta_, "sigma": self.sigma_, "gamma": self.gamma_,
                  "delta": self.delta_, "sites": self.sites_.astype(str), "site_counts": self.site_counts_,
                  "feature_names": np.asarray(self.feature_names_)}
        meta = {"covariates": self.covariates, "site_column": self.site_column, "levels": self.levels_,
                "eb": self.eb, "provenance": provenance(None),
                "encoder_identity": getattr(self, "encoder_identity_", None)}
        return save_model(path, KIND, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ComBatHarmonizer":
        arrays, meta = load_model(path, KIND)
        try:
            h = cls(meta["covariates"], meta["site_column"], list(meta["levels"]), meta["eb"])
            h.levels_ = {k: list(v) for k, v in meta["levels"].items()}
            h.alpha_, h.beta_, h.sigma_ = arrays["alpha"], arrays["beta"], arrays["sigma"]
            h.gamma_, h.delta_ = arrays["gamma"], arrays["delta"]
            h.sites_, h.site_counts_ = arrays["sites"].astype(str), arrays["site_counts"]
            h.feature_names_ = [str(c) for c in arrays["feature_names"]]
            h.encoder_identity_ = meta.get("encoder_identity")  # absent in models of older versions
        except KeyError as exc:
            raise DataError(f"harmoniser model file {path} lacks {exc}") from None
        return h


def _covariate_frame(covariates, n: int) -> pd.DataFrame:
    """The routed ``covariates`` (DataFrame, Series, dict of columns or 2-D array) as a DataFrame of n rows."""
    if covariates is None:
        return pd.DataFrame(index=range(n))
    if isinstance(covariates, pd.Series):
        covariates = covariates.to_frame(covariates.name if covariates.name is not None else "covariate0")
    if not isinstance(covariates, pd.DataFrame):
        values = covariates if isinstance(covariates, dict) else np.asarray(covariates)
        if not isinstance(values, dict):
            values = values.reshape(len(values), -1)
            values = {f"covariate{i}": values[:, i] for i in range(values.shape[1])}
        covariates = pd.DataFrame(values)
    if len(covariates) != n:
        raise DataError(f"`covariates`: {len(covariates)} rows for {n} subjects")
    return covariates.rename(columns=str)


class ComBat(TransformerMixin, BaseEstimator):
    """ComBat as a scikit-learn transformer: :class:`ComBatHarmonizer` (the implementation ``anatlearn
    harmonize`` runs) with the sites and covariates passed as metadata.

    ``sites`` (one label per row) and ``covariates`` (the columns whose effects are preserved: a DataFrame,
    or a 2-D array) are requested by ``fit`` and ``transform`` by default, so with
    ``sklearn.set_config(enable_metadata_routing=True)``, ``cross_val_score(make_pipeline(..., ComBat(),
    RidgeCV()), X, y, params={"sites": sites})`` fits ComBat on each training fold only and harmonises the
    test fold with the sites of its subjects (routed to ``transform`` through the pipeline's ``score``; a
    ``scoring=`` string scores through ``predict``, which receives no metadata, and is refused with an error
    saying so). ``categorical``: numeric covariate columns to treat as categorical; ``eb``: empirical-Bayes
    shrinkage (Johnson et al. 2007).
    """

    __metadata_request__fit = {"sites": True, "covariates": True}
    __metadata_request__transform = {"sites": True, "covariates": True}

    def __init__(self, categorical=None, eb: bool = True):
        self.categorical = categorical
        self.eb = eb

    def _table(self, X, sites, covariates, what: str):
        if sites is None:
            raise DataError(f"ComBat.{what} needs `sites` (one site label per row): pass sites=..., or in a pipeline "
                            f"enable metadata routing (sklearn.set_config(enable_metadata_routing=True)) and give "
                            f"params={{'sites': sites}}; scoring strings call predict, which receives no sites, so "
                            f"score with the pipeline's own score (scoring=None)")
        site_col = getattr(sites, "name", None) or "site"
        labels = np.asarray(sites).astype(str).ravel()
        if len(labels) != X.shape[0]:
            raise DataError(f"`sites`: {len(labels)} labels for {X.shape[0]} rows of X")
        table = _covariate_frame(covariates, X.shape[0])
        if site_col in table.columns:
            raise DataError(f"`covariates` has a column {site_col!r}, the name of `sites`")
        table.insert(0, site_col, labels)
        return table, site_col

    def fit(self, X, y=None, *, sites=None, covariates=None) -> "ComBat":
        """Estimate ComBat on ``X`` (rows = subjects) with their ``sites`` and ``covariates``."""
        return self._fit(X, sites, covariates, "X")

    def _fit(self, X, sites, covariates, source: str) -> "ComBat":
        """:meth:`fit`, with errors naming ``source`` (``anatlearn harmonize`` names the reference file)."""
        values = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        table, site_col = self._table(values, sites, covariates, "fit")
        names = [c for c in table.columns if c != site_col]
        if self.categorical is not None and not set(self.categorical) <= set(names):
            raise ConfigError(f"`categorical` {sorted(set(self.categorical) - set(names))} are not covariate columns")
        if isinstance(X, pd.DataFrame):  # the harmoniser records (and saves) the feature columns by name
            values = pd.DataFrame(values, index=X.index, columns=X.columns)
        self.harmonizer_ = ComBatHarmonizer(names, site_col, self.categorical, self.eb).fit(values, table, source=source)
        self.sites_ = self.harmonizer_.sites_
        return self

    def transform(self, X, *, sites=None, covariates=None):
        """Harmonised ``X``; every row's site must be one of :attr:`sites_`."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        table, _ = self._table(X, sites, covariates, "transform")
        table = table.rename(columns={table.columns[0]: self.harmonizer_.site_column})
        return self.harmonizer_.transform(X, table, source="X")

    def fit_transform(self, X, y=None, *, sites=None, covariates=None):
        return self.fit(X, y, sites=sites, covariates=covariates).transform(X, sites=sites, covariates=covariates)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self)
        return _check_feature_names_in(self, input_features)
