"""torch.distributed helpers. Launch with ``torchrun`` (one or many nodes); the process group comes from the
environment it sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT). NCCL on GPU, gloo on CPU.

The contrastive losses must see the *global* batch: every rank all-gathers the projections of all ranks;
the gathered copies carry no gradient, so each rank's own shard is put back in its slot with its autograd
history. Every rank then computes the same global loss L, whose gradient on rank r flows only through
shard r: sum_r dL/dtheta|_r = dL/dtheta. DDP *averages* gradients over ranks, so the loss is multiplied by
the world size before backward; the result equals single-process training on the concatenated batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from anatlearn.errors import ConfigError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup() -> DistInfo:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return DistInfo(rank, world, local, device)


def setup_gloo(timeout: timedelta = timedelta(hours=12)) -> DistInfo:
    """Join the process group over gloo, whatever the device, when launched by torchrun (WORLD_SIZE > 1).

    For work whose ranks exchange only Python objects and barriers (sharded embedding): the caller picks its
    own device (``local_rank``). The timeout is long because a rank that finished its share waits at the
    barrier for the slowest one. ConfigError if WORLD_SIZE asks for several processes but the group cannot
    start."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        try:
            dist.init_process_group("gloo", timeout=timeout)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"WORLD_SIZE={world} but the process group cannot start ({exc}); launch with "
                              f"torchrun, or unset WORLD_SIZE for one process") from None
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (``obj`` itself without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks along dim 0 (rank order); gradient flows to this rank's shard."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor without gradient (ages, descriptors) from all ranks along dim 0."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def loss_scale() -> int:
    """Multiply the global loss by this before backward so that DDP's gradient average equals the gradient
    of the single-process loss (see the module docstring)."""
    return dist.get_world_size() if (dist.is_available() and dist.is_initialized()) else 1


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
