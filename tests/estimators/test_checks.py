"""scikit-learn's own estimator checks on ComBat, BrainAge and LinearProbe."""

import zlib

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.estimator_checks import parametrize_with_checks

from anatlearn.estimators import BrainAge, ComBat, LinearProbe

# Every check below fits without metadata, so ComBat, whose sites are routed metadata, refuses with its error
# ("ComBat.fit needs `sites`"); _RowSites runs the same checks with sites it makes up from each row.
NEEDS_SITES = "fits without `sites`: the checks cannot route ComBat's metadata (see _RowSites below)"
COMBAT_EXPECTED_FAILURES = {name: NEEDS_SITES for name in (
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
    "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_transformer_data_not_an_array", "check_transformer_general",
    "check_transformer_preserve_dtypes", "check_methods_sample_order_invariance", "check_methods_subset_invariance",
    "check_fit2d_1feature", "check_dict_unchanged", "check_fit_idempotent",
    "check_fit_check_is_fitted", "check_n_features_in", "check_fit2d_predict1d")}


def _row_sites(X):
    """Two sites assigned by a hash of each row: the same row always gets the same site, in any order or subset."""
    X = check_array(X, dtype=np.float64)
    return np.array([zlib.crc32(np.round(row, 3).tobytes()) % 2 for row in X])


class _RowSites(ComBat):
    """ComBat given sites made up from the rows, so that the checks exercise fit and transform themselves."""

    def fit(self, X, y=None, *, sites=None, covariates=None):
        return super().fit(X, y, sites=_row_sites(X) if sites is None else sites, covariates=covariates)

    def transform(self, X, *, sites=None, covariates=None):
        return super().transform(X, sites=_row_sites(X) if sites is None else sites, covariates=covariates)


def _expected_failures(estimator):
    return COMBAT_EXPECTED_FAILURES if type(estimator) is ComBat else {}


@parametrize_with_checks([ComBat(), _RowSites(), _RowSites(eb=False), BrainAge(), BrainAge(correction="beheshti"),
                          LinearProbe(), LinearProbe("classification"), LinearProbe("regression")],
                         expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_names_import_lazily_from_anatlearn():
    """`import anatlearn` loads none of torch, pandas, scikit-learn; `anatlearn.ComBat` is the estimator."""
    import subprocess
    import sys

    code = ("import sys, anatlearn; heavy = [m for m in ('torch', 'pandas', 'sklearn') if m in sys.modules]; "
            "from anatlearn import BrainAge, ComBat, Encoder, LinearProbe, Pretrainer; "
            "import anatlearn.estimators as e; print(heavy, ComBat is e.ComBat, Encoder.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "True", "anatlearn.estimators.encoder"]
