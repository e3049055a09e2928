"""anatlearn.losses.target_check / ``anatlearn weights``: the weighted-InfoNCE target statistics against hand
computations, and the command on a generated cohort."""

import numpy as np
import pandas as pd
import pytest

from anatlearn.cli import main
from anatlearn.losses.target_check import check_weights, target_stats


def test_targets_of_identity_uniform_and_two_level_weights():
    # SimCLR: all of the target on the anchor's other view
    assert target_stats(np.eye(20), 4, 5) == pytest.approx((1.0, 1.0))
    # every pair alike: the other view is one of 2B - 1 = 7 equal targets
    assert target_stats(np.ones((20, 20)), 4, 5) == pytest.approx((1 / 7, 7.0))
    # off-diagonal 0.5, diagonal 1 (the shift map of cosines near 0): 1 / (1 + 6 * 0.5) = 1/4 on the other
    # view, 1/8 on each of the 6 others; perplexity exp(H), H = -(1/4 log 1/4 + 6/8 log 1/8)
    w = np.full((20, 20), 0.5)
    np.fill_diagonal(w, 1.0)
    own, perp = target_stats(w, 4, 5)
    assert own == pytest.approx(0.25)
    assert perp == pytest.approx(np.exp(-(0.25 * np.log(0.25) + 0.75 * np.log(0.125))))


def test_block_weights_brute_force():
    # two groups of subjects, weight 1 within a group and 0 across: against a direct loop over anchors
    groups = np.array([0, 1] * 10)
    w = (groups[:, None] == groups[None, :]).astype(float)
    own, perp = target_stats(w, 6, 50, seed=3)
    rng = np.random.default_rng(3)
    owns, perps = [], []
    for _ in range(50):
        idx = rng.choice(20, 6, replace=False)
        g = np.concatenate([groups[idx], groups[idx]])
        for a in range(12):
            same = [b for b in range(12) if b != a and g[b] == g[a]]
            owns.append(1 / len(same))
            perps.append(len(same))  # uniform over the same-group samples: perplexity = their number
    assert own == pytest.approx(np.mean(owns)) and perp == pytest.approx(np.mean(perps))


def test_command_on_a_generated_cohort(tiny_cohort, tmp_path, capsys):
    table = check_weights(tiny_cohort, batch_size=8, n_batches=20)
    rows = table.set_index("weighting")
    assert rows.loc["simclr (identity)", "perplexity"] == pytest.approx(1.0)
    shift = rows.loc["anat global, zscore, shift"]
    # the shift map of z-scored cosines: weights around 0.5, a spread-out target
    assert 0.3 < shift["mean_W_offdiag"] < 0.7 and shift["perplexity"] > 10
    # the study's bandwidth rule: the kernel map's mean weight equals the age kernel's
    kern = rows[rows.index.str.startswith("anat global, zscore, kernel")].iloc[0]
    assert kern["mean_W_offdiag"] == pytest.approx(rows.loc["age kernel (rbf, sigma 2)", "mean_W_offdiag"], rel=1e-4)
    assert rows.loc["age kernel (rbf, sigma 2)", "rho_minus_age_gap"] == pytest.approx(1.0)
    assert np.isfinite(shift["rho_true_anatomy"])  # a synthetic cohort: compared with its truth

    out = tmp_path / "w.tsv"
    assert main(["weights", "--data", str(tiny_cohort), "--batch-size", "8", "--batches", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "near-uniform targets" in printed and "anat global, zscore, shift" in printed
    pd.testing.assert_frame_equal(pd.read_csv(out, sep="\t"), table, check_exact=False, rtol=1e-5)


def test_bad_batch_size_is_one_clear_error(tiny_cohort, capsys):
    assert main(["weights", "--data", str(tiny_cohort), "--batch-size", "1000"]) == 2
    err = capsys.readouterr().err
    assert "fewer than --batch-size 1000" in err and "Traceback" not in err


def test_pretrain_takes_the_kernel_map_and_its_bandwidth_from_the_command_line(tiny_cohort, tmp_path):
    import json

    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_cohort), "--out", str(run), "--method", "anatcl-global",
                 "--width", "0.125", "--batch-size", "4", "--epochs", "1", "--workers", "0",
                 "--weight-map", "kernel", "--anat-bandwidth", "0.3", "--stop-after-steps", "1"]) == 0
    assert json.loads((run / "anat_bandwidth.json").read_text()) == {"anat_bandwidth": 0.3, "rule": "given"}
    assert "anat_bandwidth = 0.3" in (run / "config.toml").read_text()
