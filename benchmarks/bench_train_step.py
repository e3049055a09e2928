"""Training-step benchmark: one full AnatCL pretraining step over a bare backbone forward+backward.

Ours = :func:`anatlearn.pretrain.train_step`, the function the training loop of :func:`anatlearn.pretrain.pretrain`
calls, on a loader batch already in memory: ContrastiveModel (ResNet-18 + projection head, L2-normalised)
forward on the flattened views, the NaN/inf check, the AnatCL loss (rbf age kernel + global anatomical
similarity from descriptors), ``zero_grad(set_to_none=True)``, backward, the optimiser step (Adam with
weight decay and ``fused=True``, as train.py builds it), and the per-term metric values (single process, no
AMP on CPU: DDP gathers are identities there). :func:`anatcl_step` adds only the learning rate the loop logs.

Baseline = what the step cannot avoid: the same ResNet-18 encoder, forward on the same batch,
``.sum().backward()`` (gradients reset with ``zero_grad(set_to_none=True)`` as ours does).

The optimiser step is most of the difference on CPU; the suite also times it alone and, for comparison, the
same step with Adam's multi-tensor kernels (``foreach=True``) and with torch's CPU default, the per-parameter
loop (what train.py used before it adopted ``fused=True``).
"""

from __future__ import annotations

import copy

import torch

import statistics

from common import Row, child_timing, fmt_s, interleaved_samples

from anatlearn.losses import build_loss
from anatlearn.models import build_model, default_model_config
from anatlearn.pretrain import train_step


def make_batch(b: int, v: int, shape, k: int = 68, seed: int = 0) -> dict:
    """A loader batch as ViewsDataset + DataLoader yield it (views, age, normalised descriptors, index)."""
    g = torch.Generator().manual_seed(seed)
    return {"views": torch.randn(b, v, 1, *shape, generator=g), "age": torch.rand(b, generator=g) * 80 + 6,
            "descriptors": torch.randn(b, k, 3, generator=g), "index": torch.arange(b)}


def anatcl_step(net, loss_fn, optimizer, batch, layout=torch.contiguous_format) -> dict:
    """One step of the training loop on CPU (amp off, world size 1): train.py's own step function, plus the
    learning rate that the loop reads for its metrics row."""
    values = train_step(net, batch, loss_fn, optimizer, None, layout=layout)
    return {"lr": optimizer.param_groups[0]["lr"], **values}


def _setup(width: float, seed: int = 0, channels_last: bool = False, **adam):
    adam = {"fused": True} | adam  # as train.py builds it on CPU and CUDA
    torch.manual_seed(seed)
    model = build_model(default_model_config("resnet18", width, 1, "projection")).train()
    if channels_last:  # as train.py with --channels-last: before the optimiser sees the parameters
        model = model.to(memory_format=torch.channels_last_3d)
    # as train.py: descriptors arrive normalised, the released recipe's lr / weight decay
    loss_fn = build_loss("anatcl-global", temperature=0.1, kernel="rbf", sigma=2.0, lambda_age=1.0,
                         lambda_anat=1.0, normalise=None, weight_map="shift")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-5, **adam)
    return model, loss_fn, optimizer


_CHILD = """
import statistics, sys, time
import torch
sys.path.insert(0, {bench!r})
from bench_train_step import _setup, anatcl_step, make_batch
model, loss_fn, optimizer = _setup({width})
batch = make_batch({b}, {v}, {shape!r})
if {variant!r} == "bare":
    enc, x = model.encoder, batch["views"].flatten(0, 1)
    def fn():
        enc.zero_grad(set_to_none=True)
        enc(x).sum().backward()
else:
    fn = lambda: anatcl_step(model, loss_fn, optimizer, batch)
fn()
ts = []
for _ in range({repeats}):
    t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
print("__T__", statistics.median(ts))
"""


def _allocator_case(shape, b: int, v: int, width: float, rounds: int, repeats: int) -> str:
    """Prototype of a process-level change: glibc malloc keeping freed blocks (common.MALLOC_TUNING); each
    variant in its own fresh process, interleaved."""
    from pathlib import Path

    variants = [("bare", False), ("ours", False), ("ours", True), ("bare", True)]
    times: dict[tuple, list[float]] = {k: [] for k in variants}
    peaks: dict[tuple, float] = {}
    for _ in range(rounds):
        for variant, tuned in variants:
            code = _CHILD.format(bench=str(Path(__file__).resolve().parent), width=width, b=b, v=v,
                                 shape=tuple(shape), variant=variant, repeats=repeats)
            sec, peaks[(variant, tuned)] = child_timing(code, malloc_tuned=tuned)
            times[(variant, tuned)].append(sec)
    best = {k: min(ts) for k, ts in times.items()}
    grid = "x".join(map(str, shape))
    names = {("bare", False): "bare fwd+bwd, default glibc malloc", ("ours", False): "full step, default glibc malloc",
             ("ours", True): "full step + malloc tuning (what the CLI does)", ("bare", True): "bare fwd+bwd + malloc tuning"}
    return "\n".join(f"| {grid} | {b}x{v} | {names[k]} | {fmt_s(best[k])} | {best[k] / best[('bare', False)]:.2f}x | "
                     f"{b * v / best[k]:.2f} | {peaks[k]:.0f} |" for k in variants)


def _layout_case(quick: bool, rows: list) -> str:
    """``--channels-last`` (train.py's channels_last_3d option): the full step in both layouts, same weights."""
    cases = [(0.125, (32, 40, 32), 4, 2)] if quick else [(0.25, (48, 56, 48), 16, 2), (1.0, (61, 73, 61), 4, 2)]
    lines = ["| width | grid | batch | standard layout | channels_last_3d | speed-up |", "|---|---|---|---|---|---|"]
    for width, shape, b, v in cases:
        batch = make_batch(b, v, shape)
        std, cl = _setup(width), _setup(width, channels_last=True)
        fns = {"std": lambda: anatcl_step(*std, batch),
               "cl": lambda: anatcl_step(*cl, batch, layout=torch.channels_last_3d)}
        repeats = 3 if quick else 7
        t = {k: statistics.median(v) for k, v in interleaved_samples(fns, repeats=repeats, warmup=1).items()}
        grid = "x".join(map(str, shape))
        lines.append(f"| {width:g} | {grid} | {b}x{v} | {fmt_s(t['std'])} | {fmt_s(t['cl'])} | "
                     f"{t['std'] / t['cl']:.2f}x |")
        if width < 1:
            rows.append(Row(f"AnatCL training step, --channels-last vs standard layout, ResNet-18 w{width:g}, {grid}, "
                            f"{b}x{v} views (the demo's scale)", fmt_s(t["cl"]), fmt_s(t["std"]),
                            f"{t['std'] / t['cl']:.2f}x", "", f"same weights and batch; median of {repeats}"))
        del std, cl, batch
    return "\n".join(lines)


def run(quick: bool = False):
    rows, sections = [], {}
    width = 0.25 if quick else 1.0
    cases = [((32, 40, 32), 2, 2)] if quick else [((61, 73, 61), 4, 2), ((121, 145, 121), 2, 2)]
    detail = ["| grid | batch (subjects x views) | full step | bare fwd+bwd | optimiser step alone | "
              "step with Adam(foreach=True) | step with Adam per-parameter loop (before) | images/s (full step) |",
              "|---|---|---|---|---|---|---|---|"]
    for shape, b, v in cases:
        grid = "x".join(map(str, shape))
        batch = make_batch(b, v, shape)
        model, loss_fn, optimizer = _setup(width)
        # same initial weights for every variant; each keeps its own optimiser state
        model_fe, loss_fe, opt_fe = _setup(width, fused=False, foreach=True)
        model_fu, loss_fu, opt_fu = (_setup(width, fused=False, foreach=False) if shape[0] < 100
                                     else (None, None, None))
        encoder = copy.deepcopy(model.encoder).train()
        x = batch["views"].flatten(0, 1)

        def bare():
            encoder.zero_grad(set_to_none=True)
            encoder(x).sum().backward()

        large = shape[0] > 100  # a 121x145x121 call is 10-30 s on a shared 2-core CPU: fewer variants, repeats
        fns = {"ours": lambda: anatcl_step(model, loss_fn, optimizer, batch), "bare": bare,
               "opt": optimizer.step,  # the gradients of the last step are still there
               "foreach": lambda: anatcl_step(model_fe, loss_fe, opt_fe, batch)}
        if not large:
            fns["loop"] = lambda: anatcl_step(model_fu, loss_fu, opt_fu, batch)
        repeats = 3 if quick else (4 if large else 9)
        samples = interleaved_samples(fns, repeats=repeats, warmup=1)
        t = {k: statistics.median(v) for k, v in samples.items()}
        best = {k: min(v) for k, v in samples.items()}  # noise only adds time: best-of is the quiet-machine view
        ratio = t["ours"] / t["bare"]
        rows.append(Row(f"AnatCL training step over bare backbone fwd+bwd, ResNet-18 w{width:g}, {grid}, "
                        f"{b}x{v} views", fmt_s(t["ours"]), fmt_s(t["bare"]), f"{ratio:.2f}x (time, lower is better)",
                        "<= 1.10x", f"best-of-{repeats} ratio {best['ours'] / best['bare']:.2f}x; "
                                    f"fused Adam step alone {fmt_s(t['opt'])}; with Adam(foreach=True): "
                                    f"{t['foreach'] / t['bare']:.2f}x"
                                    + (f", per-parameter loop (before): {t['loop'] / t['bare']:.2f}x"
                                       if "loop" in t else "")))
        loop = fmt_s(t["loop"]) if "loop" in t else "not run"
        detail.append(f"| {grid} | {b}x{v} | {fmt_s(t['ours'])} | {fmt_s(t['bare'])} | {fmt_s(t['opt'])} | "
                      f"{fmt_s(t['foreach'])} | {loop} | {b * v / t['ours']:.2f} |")
        del model, model_fe, model_fu, encoder, optimizer, opt_fe, opt_fu, batch, x
    sections["Training step (CPU)"] = (
        "\n".join(detail) + "\n\nOurs: `anatlearn.pretrain.train_step`, the step the training loop calls (model + "
        "projection head, NaN check, AnatCL loss with descriptors, zero_grad, backward, Adam step, metric values) on an "
        "in-memory batch; bare: the "
        "encoder's forward + `.sum().backward()` on the same batch. train.py builds Adam with `fused=True` (adopted "
        "after this table showed it the fastest); the other columns are the alternatives: `foreach=True` and torch's "
        "CPU default, the per-parameter loop (a dozen kernels and temporaries per parameter tensor). Median of "
        "interleaved repeats (best-of in the summary row's note).")
    sections["Training step: memory layout (--channels-last)"] = (
        _layout_case(quick, rows) + "\n\nThe full step (as above) with the model and its input in `channels_last_3d` "
        "against the standard layout. oneDNN's channels-last convolutions help narrow layers most; at width 1 the "
        "layouts are on par, so the option stays off by default and the demo (width 0.25) turns it on.")
    alloc = ["| grid | batch | variant (fresh process each) | step | vs bare, default malloc | images/s | peak RSS (MiB) |",
             "|---|---|---|---|---|---|---|"]
    for (shape, b, v), (rounds, reps) in zip(cases, [(1, 2)] if quick else [(2, 4), (1, 3)]):
        alloc.append(_allocator_case(shape, b, v, width, rounds, reps))
    sections["Training step: allocator (adopted in the CLI)"] = (
        "\n".join(alloc) + "\n\nglibc hands large freed blocks back to the kernel, so every step re-faults its "
        "activations page by page (~1M minor faults per 121x145x121 step, measured). `mallopt(M_MMAP_MAX, 0)` + "
        "`mallopt(M_TRIM_THRESHOLD, 2**31-1)` (`common.MALLOC_TUNING`) keep them for reuse; no arithmetic changes. "
        "`anatlearn` (the CLI) sets them at start-up (`ANATLEARN_MALLOC_TUNING=0` turns it off). Best of the rounds' medians.")
    sections["Pretraining throughput on GPU (AMP)"] = (
        "Not part of `make bench`: CI and these CPU machines have no GPU. `benchmarks/gpu_check.sh` takes the AMP "
        "step (images/s, utilisation, memory), DDP over NCCL and an end-to-end `anatlearn pretrain` on a GPU host; "
        "its readings (an H200 and an H100) are in benchmarks/RESULTS_GPU.md. CPU images/s of the full step are in "
        "the table above.")
    return rows, sections


if __name__ == "__main__":
    from common import main

    main(run)
