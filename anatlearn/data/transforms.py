"""Augmentations on tensors, composable and seeded (MONAI/torchio style, written for 3D volumes).

Each transform takes a volume (C, X, Y, Z) or a batch (B, C, X, Y, Z), on any device, and a
``torch.Generator`` (CPU) that makes it reproducible. All are off by default: the released AnatCL recipe
uses two views with no augmentation (the soft positives carry the signal).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _batched(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if x.ndim == 4:
        return x[None], True
    if x.ndim != 5:
        raise ValueError(f"expected (C, X, Y, Z) or (B, C, X, Y, Z), got shape {tuple(x.shape)}")
    return x, False


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x

    def __repr__(self):
        return f"Compose({self.transforms!r})"


class RandomCropPad:
    """Random crop to ``size`` then zero-pad back to the input shape (position jitter)."""

    def __init__(self, size):
        self.size = tuple(size)

    def __call__(self, x, generator=None):
        xb, single = _batched(x)
        out = torch.zeros_like(xb)
        shape = xb.shape[2:]
        size = [min(s, n) for s, n in zip(self.size, shape)]
        for b in range(xb.shape[0]):
            start = [int(torch.randint(0, n - s + 1, (1,), generator=generator)) for s, n in zip(size, shape)]
            pad = [(n - s) // 2 for s, n in zip(size, shape)]
            src = tuple(slice(a, a + s) for a, s in zip(start, size))
            dst = tuple(slice(p, p + s) for p, s in zip(pad, size))
            out[(b, slice(None)) + dst] = xb[(b, slice(None)) + src]
        return out[0] if single else out


class Cutout:
    """With probability ``p``, zero a random cube of side ``size`` voxels."""

    def __init__(self, size: int = 32, p: float = 0.5):
        self.size, self.p = size, p

    def __call__(self, x, generator=None):
        xb, single = _batched(x)
        xb = xb.clone()
        for b in range(xb.shape[0]):
            if float(torch.rand((), generator=generator)) >= self.p:
                continue
            idx = [slice(int(c), int(c) + self.size) for c in
                   (torch.randint(0, max(1, n - self.size + 1), (1,), generator=generator) for n in xb.shape[2:])]
            xb[(b, slice(None), *idx)] = 0
        return xb[0] if single else xb


class RandomFlip:
    """With probability ``p``, flip along ``axis`` (0 = left-right in RAS voxel order)."""

    def __init__(self, axis: int = 0, p: float = 0.5):
        self.axis, self.p = axis, p

    def __call__(self, x, generator=None):
        xb, single = _batched(x)
        flip = torch.rand(xb.shape[0], generator=generator) < self.p
        if flip.any():
            xb = xb.clone()
            xb[flip.to(xb.device)] = xb[flip.to(xb.device)].flip(2 + self.axis)
        return xb[0] if single else xb


class GaussianBlur:
    """Separable Gaussian blur with sigma drawn uniformly in ``sigma_range`` (voxels)."""

    def __init__(self, sigma_range=(0.1, 1.0)):
        self.lo, self.hi = sigma_range

    def __call__(self, x, generator=None):
        xb, single = _batched(x)
        sigma = self.lo + (self.hi - self.lo) * float(torch.rand((), generator=generator))
        radius = max(1, int(math.ceil(3 * sigma)))
        t = torch.arange(-radius, radius + 1, dtype=xb.dtype, device=xb.device)
        k = torch.exp(-(t**2) / (2 * sigma**2))
        k = k / k.sum()
        c = xb.shape[1]
        out = xb
        for dim in range(3):
            shape = [1, 1, 1, 1, 1]
            shape[2 + dim] = -1
            pad = [0, 0, 0, 0, 0, 0]
            pad[2 * (2 - dim)] = pad[2 * (2 - dim) + 1] = radius
            out = F.conv3d(F.pad(out, pad, mode="replicate"), k.reshape(shape).repeat(c, 1, 1, 1, 1), groups=c)
        return out[0] if single else out


class GaussianNoise:
    """Add N(0, sigma^2) noise, sigma drawn uniformly in ``sigma_range`` (in intensity units)."""

    def __init__(self, sigma_range=(0.0, 0.05)):
        self.lo, self.hi = sigma_range

    def __call__(self, x, generator=None):
        sigma = self.lo + (self.hi - self.lo) * float(torch.rand((), generator=generator))
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return x + sigma * noise


AUGMENTATIONS = {"crop": lambda shape: RandomCropPad([max(1, int(s * 0.9)) for s in shape]),
                 "cutout": lambda shape: Cutout(max(4, min(shape) // 4), 0.5),
                 "flip": lambda shape: RandomFlip(0, 0.5), "blur": lambda shape: GaussianBlur((0.1, 1.0)),
                 "noise": lambda shape: GaussianNoise((0.0, 0.05))}


def build_augmentations(names, shape) -> Compose | None:
    """A Compose of named augmentations (``crop``, ``cutout``, ``flip``, ``blur``, ``noise``) or None."""
    from anatlearn.errors import ConfigError

    names = [n for n in (names or []) if n]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENTATIONS)}")
    return Compose([AUGMENTATIONS[n](shape) for n in names]) if names else None
