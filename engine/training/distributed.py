"""torchrun-aware process-group setup, so one command line runs single-process or under DDP.

Under `torchrun` the environment carries RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; without them we run as a single process and every collective below is a
no-op. The backend follows the device: gloo on CPU (CI runs two CPU ranks), nccl on CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from engine.device import resolve_device
from engine.errors import LatentsimError, ParameterError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job, and the collectives the trainer needs.

    `owns_group` records whether `init_distributed` created the process group, so
    `destroy` never tears down a group that a caller set up itself.
    """

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs and checkpoints."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel when there is more than one rank, the model itself otherwise.

        DDP broadcasts rank 0's parameters and buffers at construction, so every rank
        starts from the same weights even if their initialisations differed.
        """
        if not self.is_distributed:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def barrier(self) -> None:
        if self.is_distributed:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (the tensor must live on `self.device` for nccl)."""
        if self.is_distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a same-shaped tensor, returned on the CPU, in rank order."""
        if not self.is_distributed:
            return [tensor.detach().cpu()]
        local = tensor.detach().to(self.device)
        gathered = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(gathered, local)
        return [t.cpu() for t in gathered]

    def broadcast_int(self, value: int) -> int:
        """Rank 0's value on every rank: decisions taken from the file system (which
        checkpoint to resume) must not differ between ranks, or collectives deadlock."""
        if not self.is_distributed:
            return value
        holder = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.broadcast(holder, src=0)
        return int(holder.item())

    def destroy(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: str | torch.device = "auto") -> DistContext:
    """Join the torchrun job described by the environment, or run alone.

    With CUDA each rank takes GPU LOCAL_RANK. If a process group already exists (a
    caller initialised it) it is reused and left alone by `destroy`. The group is joined
    with `env://` because torchrun's agent already hosts the rendezvous store there.
    """
    env = os.environ
    present = [name for name in TORCHRUN_VARIABLES if name in env]
    if not present:
        return DistContext(device=resolve_device(device))
    missing = [name for name in TORCHRUN_VARIABLES if name not in env]
    if missing:
        raise LatentsimError(
            f"incomplete torchrun environment: {', '.join(present)} set but "
            f"{', '.join(missing)} missing; launch with `torchrun` or unset them all"
        )
    rank = _env_int(env, "RANK")
    world_size = _env_int(env, "WORLD_SIZE")
    local_rank = _env_int(env, "LOCAL_RANK")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ParameterError("RANK", rank, f"an integer in [0, {world_size - 1}] (WORLD_SIZE)")
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    owns_group = not dist.is_initialized()
    if owns_group:
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend, init_method="env://", rank=rank, world_size=world_size
        )
    return DistContext(resolved, rank, world_size, local_rank, owns_group)


def _env_int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError as err:
        raise ParameterError(name, env[name], "an integer (set by torchrun)") from err
