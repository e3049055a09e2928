"""Two gloo processes on CPU: the global-batch loss and DDP's parameter gradients equal those of a single
process on the concatenated batch."""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from anatlearn.losses import build_loss
from anatlearn.models import build_model, default_model_config
from anatlearn import distributed as D

B, V = 6, 2


def _batch():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(B, V, 1, 32, 32, 32, generator=g), torch.rand(B, generator=g) * 70 + 10,
            torch.randn(B, 68, 3, generator=g))


def _model():
    torch.manual_seed(0)
    model = build_model(default_model_config("resnet18", width=0.125))
    # BatchNorm in eval mode: batch statistics would differ between shards (SyncBatchNorm, used on GPU,
    # needs CUDA); everything else, including the loss over the global batch, is exercised.
    return model.eval()


def _loss(model, x, ages, desc):
    b = x.shape[0]
    feats = D.gather_with_grad(model(x.flatten(0, 1)).reshape(b, V, -1))
    return build_loss("anatcl-global")(feats, D.gather(ages), D.gather(desc))["loss"]


def _worker(rank, world, port, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    x, ages, desc = _batch()
    shard = slice(rank * B // world, (rank + 1) * B // world)
    net = torch.nn.parallel.DistributedDataParallel(_model())
    loss = _loss(net, x[shard], ages[shard], desc[shard])
    (loss * D.loss_scale()).backward()
    if rank == 0:
        torch.save({"loss": loss.detach(), "grads": {n: p.grad for n, p in net.module.named_parameters()}}, out)
    dist.destroy_process_group()


def test_two_processes_equal_one_process(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(2, port, str(out)), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    model = _model()
    x, ages, desc = _batch()
    ref = _loss(model, x, ages, desc)
    ref.backward()
    torch.testing.assert_close(got["loss"], ref.detach(), rtol=1e-5, atol=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(got["grads"][name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
