"""Each loss against an independent per-anchor brute-force loop (float64), plus gradients, invariances,
AMP and errors."""

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from anatlearn.errors import ConfigError, DataError
from anatlearn.losses.kernels import age_kernel
from anatlearn.losses import (AnatCLLoss, ExpWLoss, L1AgeLoss, SimCLRLoss, ThresholdLoss, YAwareLoss,
                              build_loss, method_needs, weighted_infonce)
from anatlearn.losses.methods import METHODS


def rows(features):
    """(B, V, d) -> list of (subject, vector) in view-major order."""
    b, v, _ = features.shape
    return [(i % b, features[i % b, i // b]) for i in range(v * b)]


def brute(features, weights, tau, method, base=None):
    items = rows(features)
    n = len(items)
    total = 0.0
    for a in range(n):
        sa, za = items[a]
        sim = {c: float(za @ items[c][1]) / tau for c in range(n) if c != a}
        wts = {c: float(weights[sa, items[c][0]]) for c in sim}
        wsum = sum(wts.values())
        la = 0.0
        for b in sim:
            if method == "yaware":
                den = math.log(sum(math.exp(sim[c]) for c in sim))
                la += wts[b] / wsum * (sim[b] - den)
            elif method == "expw":
                mx = max([sim[c] for c in sim] + [float(za @ za) / tau])
                den = math.log(sum(math.exp((sim[c] - mx) * (1 - wts[c])) for c in sim))
                la += wts[b] / wsum * ((sim[b] - mx) - den)
            else:
                den = math.exp(sim[b]) + sum(math.exp(sim[c]) for c in sim if wts[c] < wts[b])
                la += wts[b] / wsum * (sim[b] - math.log(den))
        total += -(tau / (base or tau)) * la
    return total / n


def sample(b=6, v=2, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = F.normalize(torch.randn(b, v, d, generator=g, dtype=torch.float64), dim=-1)
    ages = torch.rand(b, generator=g, dtype=torch.float64) * 60 + 10
    return f, ages


@pytest.mark.parametrize("method", ["yaware", "expw", "threshold"])
@pytest.mark.parametrize("v", [2, 3])
def test_weighted_infonce_matches_brute_force(method, v):
    f, ages = sample(v=v)
    w = age_kernel(ages, "rbf", 10.0)
    got = weighted_infonce(f, w, temperature=0.2, method=method).item()
    assert got == pytest.approx(brute(f, w, 0.2, method), rel=1e-9)


def test_threshold_with_ties_matches_brute_force():
    f, _ = sample(b=7)
    ages = torch.tensor([20.0, 20.0, 30.0, 30.0, 30.0, 50.0, 20.0], dtype=torch.float64)
    w = age_kernel(ages, "rbf", 8.0)
    got = weighted_infonce(f, w, temperature=0.5, method="threshold").item()
    assert got == pytest.approx(brute(f, w, 0.5, "threshold"), rel=1e-9)


def test_base_temperature_scales_loss():
    f, ages = sample()
    w = age_kernel(ages)
    a = weighted_infonce(f, w, temperature=0.1)
    b = weighted_infonce(f, w, temperature=0.1, base_temperature=0.07)
    assert b.item() == pytest.approx(a.item() * 0.1 / 0.07)


def nt_xent_reference(f, tau):
    """Hand-written NT-Xent (SimCLR) for two views: -log softmax of the other view among the 2B-1 others."""
    b = f.shape[0]
    z = torch.cat([f[:, 0], f[:, 1]])
    total = 0.0
    for i in range(2 * b):
        j = (i + b) % (2 * b)
        logits = [float(z[i] @ z[k]) / tau for k in range(2 * b) if k != i]
        total += -(float(z[i] @ z[j]) / tau - math.log(sum(math.exp(x) for x in logits)))
    return total / (2 * b)


def test_identity_weights_equal_simclr_nt_xent():
    f, _ = sample(b=5)
    eye = torch.eye(5, dtype=torch.float64)
    ref = nt_xent_reference(f, 0.1)
    assert weighted_infonce(f, eye, 0.1).item() == pytest.approx(ref, rel=1e-9)
    assert SimCLRLoss(0.1)(f)["loss"].item() == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("method", ["yaware", "expw", "threshold"])
def test_gradcheck(method):
    f, ages = sample(b=4, d=3)
    w = age_kernel(ages, "rbf", 10.0)

    def fn(x):
        return weighted_infonce(F.normalize(x, dim=-1), w, 0.5, method=method)

    assert torch.autograd.gradcheck(fn, (f.clone().requires_grad_(True),), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["simclr", "yaware", "expw", "threshold", "anatcl-local", "anatcl-global"])
def test_permutation_invariance(method):
    f, ages = sample(b=8)
    desc = torch.rand(8, 10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    loss = build_loss(method, sigma=10.0)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(4))
    a = loss(f, ages, desc)["loss"].item()
    b = loss(f[perm], ages[perm], desc[perm])["loss"].item()
    assert a == pytest.approx(b, rel=1e-9)


def test_anatcl_is_sum_of_weighted_terms():
    from anatlearn.losses.anatomy import anatomical_similarity

    f, ages = sample(b=6)
    desc = torch.rand(6, 12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    out = AnatCLLoss(lambda_age=0.5, lambda_anat=2.0, mode="local")(f, ages, desc)
    age_term = brute(f, age_kernel(ages), 0.1, "yaware")
    anat_term = brute(f, anatomical_similarity(desc, "local", "zscore"), 0.1, "yaware")
    assert out["age"].item() == pytest.approx(age_term, rel=1e-9)
    assert out["anat"].item() == pytest.approx(anat_term, rel=1e-9)
    assert out["loss"].item() == pytest.approx(0.5 * age_term + 2.0 * anat_term, rel=1e-9)
    only = build_loss("anat-only")(f, None, desc)
    assert "age" not in only and only["loss"].item() == pytest.approx(
        brute(f, anatomical_similarity(desc, "global", "zscore"), 0.1, "yaware"), rel=1e-9)


def test_module_wrappers_equal_functional():
    f, ages = sample()
    w = age_kernel(ages, "cauchy", 1.0)
    for cls, m in ((YAwareLoss, "yaware"), (ExpWLoss, "expw"), (ThresholdLoss, "threshold")):
        got = cls(kernel="cauchy", sigma=1.0)(f, ages)["loss"]
        assert got.item() == pytest.approx(weighted_infonce(f, w, method=m).item(), rel=1e-12)


def test_l1_age_loss():
    out = L1AgeLoss()(torch.tensor([10.0, 20.0, 33.0]), torch.tensor([12.0, 20.0, 30.0]))
    assert out["loss"].item() == pytest.approx(5.0 / 3.0)
    # the training call: head outputs (B, V, 1), the first view predicts the standardised age (y - 20) / 4
    outputs = torch.tensor([[[-2.0], [9.0]], [[0.5], [9.0]], [[3.0], [9.0]]])
    out = L1AgeLoss(age_mean=20.0, age_std=4.0)(outputs, torch.tensor([12.0, 20.0, 30.0]))
    assert out["loss"].item() == pytest.approx((0.0 + 0.5 + 0.5) / 3)


def test_every_loss_takes_the_same_call():
    """loss(outputs, ages, descriptors) for every method: the training step never branches on a method."""
    g = torch.Generator().manual_seed(0)
    ages, desc = torch.rand(6, generator=g) * 60 + 20, torch.randn(6, 68, 1, generator=g)
    for method in METHODS:
        width = {"gmv-regression": 68, "l1-age": 1, "descriptor-regression": 69, "anatcl-regression": 128 + 69}
        outputs = torch.nn.functional.normalize(torch.randn(6, 2, width.get(method, 8), generator=g), dim=-1)
        terms = build_loss(method)(outputs, ages, desc)
        assert torch.isfinite(terms["loss"]), method


@pytest.mark.parametrize("method", ["yaware", "threshold"])
def test_bf16_autocast_matches_fp32(method):
    g = torch.Generator().manual_seed(0)
    proj = torch.nn.Linear(16, 8)
    x = torch.randn(32, 2, 16, generator=g)
    ages = torch.rand(32, generator=g) * 70
    w = age_kernel(ages)
    ref = weighted_infonce(F.normalize(proj(x), dim=-1), w, method=method)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = F.normalize(proj(x), dim=-1)
        assert z.dtype == torch.bfloat16
        amp = weighted_infonce(z, w, method=method)
    assert amp.dtype == torch.float32
    assert amp.item() == pytest.approx(ref.item(), rel=2e-2)


def test_threshold_memory_is_quadratic():
    """N = 2 x 1024, d = 128: an N^3 mask would need 8 GiB (bool) — ours must stay well under 1 GiB."""
    code = (
        "import resource, torch, torch.nn.functional as F\n"
        "from anatlearn.losses import weighted_infonce\nfrom anatlearn.losses.kernels import age_kernel\n"
        "torch.set_num_threads(2); g = torch.Generator().manual_seed(0)\n"
        "f = F.normalize(torch.randn(1024, 2, 128, generator=g), dim=-1).requires_grad_(True)\n"
        "w = age_kernel(torch.rand(1024, generator=g) * 80, 'rbf', 2.0)\n"
        "hwm = lambda: int([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
        "base = hwm()  # VmHWM is this process's own peak (ru_maxrss would include the parent's)\n"
        "loss = weighted_infonce(f, w, method='threshold'); loss.backward()\n"
        "assert torch.isfinite(f.grad).all()\n"
        "print((hwm() - base) / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    growth_mib = float(out.stdout.strip().splitlines()[-1])
    # it did allocate its O(N^2) buffers (one N x N float: 16 MiB), but no N^3 tensor
    assert 8 < growth_mib < 1024, growth_mib


def test_errors():
    f, ages = sample()
    w = age_kernel(ages)
    with pytest.raises(DataError, match="at least 2 subjects"):
        weighted_infonce(f[:1], w[:1, :1])
    with pytest.raises(DataError, match=r"\(B subjects, V views, d\)"):
        weighted_infonce(f[:, 0], w)
    with pytest.raises(DataError, match=r"weights must have shape \(B, B\) = \(6, 6\)"):
        weighted_infonce(f, w[:5, :5])
    with pytest.raises(DataError, match="non-negative"):
        weighted_infonce(f, w - 0.5)
    bad = f.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        weighted_infonce(bad, w)
    with pytest.raises(ConfigError, match="unknown method 'moco'"):
        build_loss("moco")
    with pytest.raises(ConfigError, match="unknown weighted InfoNCE method"):
        weighted_infonce(f, w, method="foo")
    with pytest.raises(DataError, match="descriptors"):
        build_loss("anatcl-global")(f, ages, None)
    with pytest.raises(DataError, match="ages"):
        build_loss("yaware")(f, None)
    assert method_needs("anatcl-local") == (True, True)
    assert method_needs("simclr") == (False, False)
    assert method_needs("anat-only") == (False, True)
