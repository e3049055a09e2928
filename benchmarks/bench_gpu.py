"""GPU pretraining benchmark: AMP images/s, memory and utilisation of one AnatCL step, and DDP over NCCL.

Run on a machine with a CUDA GPU (it exits with a message, and status 0, where there is none):

    python benchmarks/bench_gpu.py --out gpu.md [--json gpu.json] [--quick]
    torchrun --nproc_per_node=G benchmarks/bench_gpu.py --ddp --out ddp.md     # G GPUs, NCCL

Step = ``anatlearn.pretrain.train_step``, what the training loop runs per batch: ContrastiveModel (ResNet-18 +
projection head) forward on the flattened views under autocast, the NaN check, the AnatCL loss (rbf age
kernel + global anatomical similarity), backward (through a GradScaler for fp16), fused Adam, the loss terms
read back. (The figures in RESULTS_GPU.md were taken at commit aa714a8 with a copy of the step without the
NaN check and the read-back, i.e. without the two host synchronisations per step that train_step makes.)
The batch is already on the GPU, so the rate is the model's, not the loader's. images/s counts volumes (views): a batch of B subjects x 2 views is 2B images.

Modes: fp32 (TF32 off), tf32 (TF32 matmul/conv), bf16 autocast, bf16 autocast + channels_last_3d, fp16
autocast + GradScaler. Utilisation is sampled with ``nvidia-smi`` every 100 ms during the timed steps.

``--ddp``: each rank wraps the model in DistributedDataParallel over NCCL, gathers the projections of all
ranks (``anatlearn.distributed``), and checks that the first step's loss and gradients equal a
single-process step on the concatenated batch (relative difference printed); then times DDP steps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import torch

from anatlearn.losses import build_loss
from anatlearn.models import build_model, default_model_config
from anatlearn.pretrain import train_step

MODES = ("fp32", "tf32", "bf16", "bf16+channels_last", "fp16+scaler")


class UtilisationSampler:
    """Samples GPU utilisation (%) and memory used (MiB) with nvidia-smi in the background."""

    def __init__(self, index: int = 0, period_ms: int = 100):
        self.cmd = ["nvidia-smi", f"--id={index}", "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits", f"-lms={period_ms}"]
        self.samples: list[tuple[float, float]] = []
        self.proc = None

    def __enter__(self):
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return self
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                u, m = (float(x) for x in line.strip().split(","))
                self.samples.append((u, m))
            except ValueError:
                pass

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()

    def mean_util(self) -> float | None:
        return statistics.mean(u for u, _ in self.samples) if self.samples else None


def make_batch(b: int, shape, device, k: int = 68, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    views = torch.randn(b, 2, 1, *shape, generator=g)
    age = torch.rand(b, generator=g) * 80 + 6
    desc = torch.randn(b, k, 3, generator=g)
    return views.to(device), age.to(device), desc.to(device)


def setup(width: float, device, channels_last: bool, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(default_model_config("resnet18", width, 1, "projection")).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    loss_fn = build_loss("anatcl-global", temperature=0.1, kernel="rbf", sigma=2.0, lambda_age=1.0,
                         lambda_anat=1.0, normalise=None, weight_map="shift")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-5, fused=True)
    return model, loss_fn, opt


def step(net, loss_fn, opt, views, age, desc, dtype, scaler, layout):
    """One step exactly as ``anatlearn.pretrain.train_step`` runs it (the training loop's own function)."""
    batch = {"views": views, "age": age, "descriptors": desc}
    return train_step(net, batch, loss_fn, opt, scaler, device=views.device,
                      amp_dtype=dtype, layout=layout)["loss"]


def mode_settings(mode: str):
    torch.backends.cuda.matmul.allow_tf32 = mode != "fp32"
    torch.backends.cudnn.allow_tf32 = mode != "fp32"
    dtype = {"bf16": torch.bfloat16, "bf16+channels_last": torch.bfloat16, "fp16+scaler": torch.float16}.get(mode)
    scaler = torch.amp.GradScaler("cuda") if mode == "fp16+scaler" else None
    layout = torch.channels_last_3d if "channels_last" in mode else torch.contiguous_format
    return dtype, scaler, layout


def time_mode(mode: str, subjects: int, shape, width: float, steps: int, warmup: int) -> dict:
    device = torch.device("cuda")
    dtype, scaler, layout = mode_settings(mode)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()  # peak memory per mode, not across modes
    row = {"mode": mode, "subjects": subjects, "images": 2 * subjects, "shape": "x".join(map(str, shape)),
           "width": width}
    try:
        model, loss_fn, opt = setup(width, device, layout == torch.channels_last_3d)
        views, age, desc = make_batch(subjects, shape, device)
        for _ in range(warmup):
            step(model, loss_fn, opt, views, age, desc, dtype, scaler, layout)
        torch.cuda.synchronize()
        times = []
        with UtilisationSampler() as util:
            for _ in range(steps):
                t0 = time.perf_counter()
                loss = step(model, loss_fn, opt, views, age, desc, dtype, scaler, layout)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        row.update(step_s=med, images_per_s=2 * subjects / med, util_pct=util.mean_util(),
                   peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30, loss=loss)
    except torch.OutOfMemoryError:
        row.update(step_s=None, images_per_s=None, util_pct=None, peak_mem_gib=None, note="out of memory")
    torch.cuda.empty_cache()
    return row


def ddp_check(subjects: int, shape, width: float, steps: int) -> dict:
    """DDP over NCCL: first-step loss/gradient equality with one process on the global batch, then timing."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")  # also with one rank: exercises NCCL collectives and DDP's reducer
    rank, device = dist.get_rank(), torch.device("cuda", local)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    views, age, desc = make_batch(subjects * world, shape, device)  # same global batch on every rank
    lo, hi = rank * subjects, (rank + 1) * subjects
    model, loss_fn, opt = setup(width, device, False)
    ref = build_model(default_model_config("resnet18", width, 1, "projection")).to(device).train()
    ref.load_state_dict(model.state_dict())
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local])
    loss = step(ddp, loss_fn, opt, views[lo:hi], age[lo:hi], desc[lo:hi], None, None, torch.contiguous_format)
    # reference: one process, the whole batch. BatchNorm statistics differ per shard in DDP without SyncBN,
    # so the reference runs each shard's forward separately (as DDP's ranks do) and concatenates.
    feats = torch.cat([ref(views[r * subjects:(r + 1) * subjects].flatten(0, 1)).reshape(subjects, 2, -1)
                       for r in range(world)]).float()
    ref_loss = loss_fn(feats, age, desc)["loss"]
    ref_loss.backward()
    g_ddp = torch.cat([p.grad.flatten() for p in model.parameters()])
    g_ref = torch.cat([p.grad.flatten() for p in ref.parameters()])
    rel_loss = abs(loss - float(ref_loss.detach())) / abs(float(ref_loss.detach()))
    rel_grad = float((g_ddp - g_ref).norm() / g_ref.norm())
    dtype, scaler, layout = mode_settings("bf16")
    for _ in range(3):
        step(ddp, loss_fn, opt, views[lo:hi], age[lo:hi], desc[lo:hi], dtype, scaler, layout)
    torch.cuda.synchronize()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(ddp, loss_fn, opt, views[lo:hi], age[lo:hi], desc[lo:hi], dtype, scaler, layout)
    torch.cuda.synchronize()
    dist.barrier()
    dt = (time.perf_counter() - t0) / steps
    dist.destroy_process_group()
    return {"rank": rank, "world_size": world, "subjects_per_rank": subjects, "shape": "x".join(map(str, shape)),
            "rel_loss_diff": rel_loss, "rel_grad_diff": rel_grad, "bf16_step_s": dt,
            "global_images_per_s": 2 * subjects * world / dt}


def to_markdown(rows: list[dict], env: dict) -> str:
    lines = [f"GPU: {env['gpu']}; torch {env['torch']}; CUDA {env['cuda']}; cuDNN {env['cudnn']}; {env['date']}", "",
             "| shape | width | subjects x 2 views | mode | step (s) | images/s | vs fp32 | GPU util (%) | peak mem (GiB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    base = {}
    for r in rows:
        if r["mode"] == "fp32" and r.get("images_per_s"):
            base[(r["shape"], r["width"], r["subjects"])] = r["images_per_s"]
    for r in rows:
        key = (r["shape"], r["width"], r["subjects"])
        if r.get("images_per_s") is None:
            lines.append(f"| {r['shape']} | {r['width']} | {r['subjects']} x 2 | {r['mode']} | - | - | - | - | "
                         f"{r.get('note', '')} |")
            continue
        ratio = r["images_per_s"] / base[key] if key in base else float("nan")
        util = "-" if r["util_pct"] is None else f"{r['util_pct']:.0f}"
        lines.append(f"| {r['shape']} | {r['width']} | {r['subjects']} x 2 | {r['mode']} | {r['step_s']:.4f} | "
                     f"{r['images_per_s']:.1f} | {ratio:.2f}x | {util} | {r['peak_mem_gib']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="gpu.md")
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true", help="few steps, small shapes (a smoke test)")
    ap.add_argument("--ddp", action="store_true", help="DDP over NCCL under torchrun")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; nothing measured", file=sys.stderr)
        return 0
    env = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    torch.backends.cudnn.benchmark = True
    steps, warmup = (3, 1) if args.quick else (10, 3)
    if args.ddp:
        res = ddp_check(4 if args.quick else 16, (61, 73, 61), 1.0 if not args.quick else 0.25, steps)
        if res["rank"] == 0:
            text = json.dumps({**env, **res}, indent=1)
            print(text)
            with open(args.out, "w") as f:
                f.write(text + "\n")
        return 0
    configs = ([((48, 56, 48), 0.25, 8)] if args.quick else
               [((121, 145, 121), 1.0, 32), ((61, 73, 61), 1.0, 32),
                ((48, 56, 48), 0.25, 16)])
    rows = []
    for shape, width, subjects in configs:
        for mode in MODES:
            row = time_mode(mode, subjects, shape, width, steps, warmup)
            print(json.dumps(row), flush=True)
            rows.append(row)
    md = to_markdown(rows, env)
    print(md)
    with open(args.out, "w") as f:
        f.write(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
