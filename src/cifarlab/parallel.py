"""Data-parallel training on PyTorch's own engine: DistributedDataParallel under `torchrun`.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; `from_env()` turns them into a `Dist`.
Each rank trains on its own shard of every epoch's permutation with `data.batch_size` images per step
(global batch = batch_size x world size; the lr is not rescaled: scale it with --set optim.lr=...).
Gradients are averaged by DDP; epoch metrics are summed over ranks; only rank 0 writes files.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .errors import UserError


def on_rank0(dist_: Dist | None, load):
    """`load()` run by rank 0 alone, its result (or its UserError) handed to every rank: the machines of a
    multi-node job need not share a file system, and only rank 0's run directory holds the files."""
    if dist_ is None:
        return load()
    box = None
    if dist_.rank == 0:
        try:
            box = ("ok", load())
        except UserError as e:  # raised on every rank, so none waits for a broadcast that never comes
            box = ("error", e)
    kind, value = dist_.broadcast(box)
    if kind == "error":
        raise value
    return value


def check_device_under_torchrun(device_name: str) -> None:
    """Under torchrun each process takes the GPU of its LOCAL_RANK: an index, or a GPU that is not there, is
    refused rather than silently replaced by the CPU."""
    if device_name.startswith("cuda:"):
        raise UserError(
            f"--device {device_name} under torchrun: each process takes the GPU of its LOCAL_RANK; use --device "
            "cuda (choose GPUs with CUDA_VISIBLE_DEVICES)"
        )
    if device_name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda under torchrun, but no CUDA GPU is available: use --device cpu or auto")
    if device_name not in ("auto", "cuda", "cpu"):
        raise UserError(f"--device {device_name} under torchrun: use auto, cuda or cpu")


class Dist:
    def __init__(self, backend: str | None = None, device_name: str = "auto"):
        check_device_under_torchrun(device_name)
        use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
        backend = backend or ("nccl" if use_cuda else "gloo")
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if use_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        dist.init_process_group(backend=backend, device_id=self.device if use_cuda else None)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def wrap(self, model):
        ids = [self.local_rank] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def all_reduce_sums(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def broadcast(self, obj):
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self):
        dist.barrier()

    def close(self, together: bool = False):
        """`together`: every rank got here the same way, so they wait for each other first: a rank that tears
        gloo down while another still talks to it can abort that one. After an error they may not have."""
        if dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()


def world_size() -> int:
    """Processes of this torchrun job (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def exit_process(code: int):
    """sys.exit, except in a torchrun worker whose process group is closed (its work is written): it leaves
    without the interpreter's teardown, where gloo's threads can abort it ("terminate called without an active
    exception", SIGABRT; 3 runs in 8 of the 2-process test on a loaded 2-core host), which torchrun then reports
    as the whole run's failure."""
    if world_size() > 1 and not dist.is_initialized():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def check_single_process(command: str) -> None:
    """Only `train` is data-parallel: any other command under a multi-process torchrun would run once per
    process, each writing the same files."""
    world = world_size()
    if world > 1 and command != "train":
        raise UserError(
            f"`cifarlab {command}` runs in one process, not under torchrun ({world} processes): only `cifarlab "
            "train` is data-parallel; run it without torchrun"
        )


def from_env(device_name: str = "auto") -> Dist | None:
    """A Dist when launched by torchrun with more than one process, else None."""
    if world_size() > 1:
        return Dist(device_name=device_name)
    return None
