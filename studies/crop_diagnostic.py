"""Diagnostic outside the study's protocol (docs/study.md): does the ``crop`` view cut away cortex?

The study's augmented views use ``anatlearn.data.transforms.RandomCropPad`` with a window of 90 % of each
axis (``AUGMENTATIONS["crop"]``): a start ``a`` drawn uniformly from ``{0, ..., n - s}`` per axis, the window
``[a, a + s)`` kept, everything outside it zeroed. The per-axis starts are independent, so a voxel ``(i, j, k)``
survives with probability ``p_x(i) p_y(j) p_z(k)``, where ``p(i) = #{a : a <= i < a + s} / (n - s + 1)``; the
expected share of a region's template gray-matter mass that a view loses is then exact, no sampling:

    E[lost_k] = 1 - sum_{v in k} T(v) p_x p_y p_z / sum_{v in k} T(v).

The worst case is the maximum over all ``(n_x - s_x + 1)(n_y - s_y + 1)(n_z - s_z + 1)`` windows. Reads the
world's template and regions only (no subject, model or result).

    python -m studies.crop_diagnostic [--shape 48 56 48] [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from anatlearn.data.transforms import AUGMENTATIONS


def keep_probability(n: int, s: int) -> np.ndarray:
    """P(index i of an axis of length n lies in a uniformly placed window of length s), i = 0..n-1."""
    s = min(s, n)
    starts = np.arange(n - s + 1)
    i = np.arange(n)[:, None]
    return ((starts <= i) & (i < starts + s)).mean(axis=1)


def crop_loss(template: np.ndarray, labels: np.ndarray, size) -> dict:
    """Expected and worst-case share of each region's template mass outside the crop window."""
    shape = template.shape
    px, py, pz = (keep_probability(n, s) for n, s in zip(shape, size))
    keep = px[:, None, None] * py[None, :, None] * pz[None, None, :]
    regions = np.arange(labels.max() + 1)
    mass = np.bincount(labels[labels >= 0], template[labels >= 0], minlength=len(regions))
    kept = np.bincount(labels[labels >= 0], (template * keep)[labels >= 0], minlength=len(regions))
    expected = 1 - kept / mass
    worst = np.zeros(len(regions))
    cortex_worst = 0.0
    for start in itertools.product(*(range(n - min(s, n) + 1) for n, s in zip(shape, size))):
        window = np.zeros(shape, bool)
        window[tuple(slice(a, a + min(s, n)) for a, s, n in zip(start, size, shape))] = True
        inside = np.bincount(labels[window & (labels >= 0)], template[window & (labels >= 0)], minlength=len(regions))
        worst = np.maximum(worst, 1 - inside / mass)
        cortex_worst = max(cortex_worst, 1 - inside.sum() / mass.sum())
    return {"expected": expected, "worst": worst, "cortex_expected": float(1 - kept.sum() / mass.sum()),
            "cortex_worst": float(cortex_worst)}


def main(argv=None) -> None:
    from anatlearn.synthetic import make_world

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(48, 56, 48))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    world = make_world(tuple(a.shape), a.seed, 5, "v2")
    size = AUGMENTATIONS["crop"](tuple(a.shape)).size
    r = crop_loss(world.template, world.labels, size)
    print(f"crop window {size} of {tuple(a.shape)}; cortical gray-matter mass lost by one view: expected "
          f"{r['cortex_expected']:.4f}, worst window {r['cortex_worst']:.4f}")
    print(f"per region (68): expected loss median {np.median(r['expected']):.4f}, max {r['expected'].max():.4f}; "
          f"worst-window loss median {np.median(r['worst']):.4f}, max {r['worst'].max():.4f} "
          f"({world.region_names[int(np.argmax(r['worst']))]})")


if __name__ == "__main__":
    main()
