"""Loss benchmarks: our vectorised losses against a straightforward per-anchor implementation.

Baseline = what a user writes from the formulas in SPEC section 2: a Python loop over the N = V*B anchors,
each computing its own numerator and denominator (for threshold, a loop over anchors and positives). Also:
threshold peak memory as N grows (must be O(N^2)), and how the loss cost grows with B.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from common import Row, fmt_s, interleaved_times, peak_rss_of

from anatlearn.losses.anatomy import anatomical_similarity
from anatlearn.losses.kernels import age_kernel
from anatlearn.losses import weighted_infonce


def per_anchor_loss(z: torch.Tensor, w: torch.Tensor, tau: float, method: str) -> torch.Tensor:
    """Straightforward per-anchor implementation (the baseline), z: (N, d), w: (N, N) tiled weights."""
    n = z.shape[0]
    total = z.new_zeros(())
    for a in range(n):
        s = (z[a] @ z.T) / tau
        mask = torch.ones(n, dtype=torch.bool)
        mask[a] = False
        wa = w[a][mask]
        wt = wa / wa.sum()
        sa = s[mask]
        if method == "yaware":
            total = total - (wt * (sa - torch.logsumexp(sa, 0))).sum()
        elif method == "expw":
            shifted = sa - 1.0 / tau
            total = total - (wt * (shifted - torch.logsumexp(shifted * (1 - wa), 0))).sum()
        elif method == "threshold":
            la = z.new_zeros(())
            for b in range(n - 1):
                rep = sa[wa < wa[b]]
                la = la + wt[b] * (sa[b] - torch.logsumexp(torch.cat([sa[b:b + 1], rep]), 0))
            total = total - la
    return total / n


def _inputs(b: int, d: int = 128, k: int = 68, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(b, 2, d, generator=g), dim=-1)
    ages = torch.rand(b, generator=g) * 80 + 6
    desc = torch.rand(b, k, 3, generator=g) + 0.5
    return feats, ages, desc


def _ours(feats, w, method):
    f = feats.clone().requires_grad_(True)
    weighted_infonce(f, w, temperature=0.1, method=method).backward()


def _baseline(feats, w, method):
    b = feats.shape[0]
    z = feats.transpose(0, 1).reshape(2 * b, -1).clone().requires_grad_(True)
    per_anchor_loss(z, w.repeat(2, 2), 0.1, method).backward()


def run(quick: bool = False):
    rows, sections = [], {}
    b = 32 if quick else 256
    feats, ages, desc = _inputs(b)
    w_age = age_kernel(ages, "rbf", 2.0)
    w_anat = anatomical_similarity(desc, mode="global", normalise="zscore")
    cases = {"y-Aware (rbf age kernel)": (w_age, "yaware"), "AnatCL anatomy term (global)": (w_anat, "yaware"),
             "ExpW": (w_age, "expw")}
    for name, (w, method) in cases.items():
        t = interleaved_times({"ours": lambda: _ours(feats, w, method), "base": lambda: _baseline(feats, w, method)},
                              repeats=3 if quick else 5)
        rows.append(Row(f"loss fwd+bwd, {name}, B={b}x2 views, d=128", fmt_s(t["ours"]), fmt_s(t["base"]),
                        f"{t['base'] / t['ours']:.1f}x", ">= 3x", "baseline: per-anchor loop"))
    # Threshold: the per-anchor-and-positive baseline is O(N^2) Python iterations; time it on a smaller B.
    bt = 16 if quick else 48
    f_t, a_t, _ = _inputs(bt)
    w_t = age_kernel(a_t, "rbf", 2.0)
    t = interleaved_times({"ours": lambda: _ours(f_t, w_t, "threshold"),
                           "base": lambda: _baseline(f_t, w_t, "threshold")}, repeats=3, warmup=1)
    rows.append(Row(f"loss fwd+bwd, threshold, B={bt}x2 views", fmt_s(t["ours"]), fmt_s(t["base"]),
                    f"{t['base'] / t['ours']:.1f}x", ">= 3x", "baseline: loop over anchors and positives"))

    # Threshold peak memory vs N, each in a fresh process (ru_maxrss is a high-water mark).
    mem_lines = ["| N = 2B | peak RSS (MiB) | increment over N/2 |", "|---|---|---|"]
    prev = None
    sizes = (256, 512, 1024) if quick else (512, 1024, 2048, 4096)
    for n in sizes:
        code = (
            "import torch, torch.nn.functional as F\n"
            "from anatlearn.losses import weighted_infonce\nfrom anatlearn.losses.kernels import age_kernel\n"
            f"g=torch.Generator().manual_seed(0); B={n // 2}\n"
            "f=F.normalize(torch.randn(B,2,128,generator=g),dim=-1).requires_grad_(True)\n"
            "w=age_kernel(torch.rand(B,generator=g)*80,'rbf',2.0)\n"
            "weighted_infonce(f,w,method='threshold').backward()\n")
        peak, _ = peak_rss_of(code)
        mem_lines.append(f"| {n} | {peak:.0f} | {'' if prev is None else f'{peak - prev:+.0f}'} |")
        prev = peak
    sections["Threshold loss peak memory (O(N^2); an N^3 tensor at N=4096 would need 256 GiB)"] = "\n".join(mem_lines)

    # Loss cost scaling with B (ours only): fwd+bwd of the full AnatCL objective (two weighted terms).
    scale_lines = ["| B (subjects) | N = 2B | AnatCL loss fwd+bwd | per N^2 (ns) |", "|---|---|---|---|"]
    for bb in ((16, 32, 64) if quick else (32, 64, 128, 256, 512, 1024)):
        fs, ag, de = _inputs(bb)
        wa, wn = age_kernel(ag, "rbf", 2.0), anatomical_similarity(de, mode="global", normalise="zscore")

        def step():
            f = fs.clone().requires_grad_(True)
            (weighted_infonce(f, wa) + weighted_infonce(f, wn)).backward()

        t = interleaved_times({"s": step}, repeats=3)["s"]
        scale_lines.append(f"| {bb} | {2 * bb} | {fmt_s(t)} | {t / (2 * bb) ** 2 * 1e9:.0f} |")
    sections["AnatCL loss cost as B grows"] = "\n".join(scale_lines)
    return rows, sections


if __name__ == "__main__":
    from common import main

    main(run)
