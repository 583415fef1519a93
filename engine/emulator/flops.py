"""FLOPs per network evaluation, counted by torch's FlopCounterMode.

The count covers the matrix products (linear layers and attention), which is what
FlopCounterMode counts and what dominates the cost; element-wise work (norms, rotary,
activations) is left out, as is usual for achieved-FLOP/s figures.

The network is built and run on the meta device: no memory, no arithmetic, any size
(the 224M-parameter paper preset included), and the same count on every machine. On a
real CPU, PyTorch's fused attention kernel has no FLOP formula registered and would be
counted as zero; on meta, attention falls back to its counted formula.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from engine.emulator.backbone import Backbone
from engine.emulator.base import Emulator
from engine.emulator.config import BackboneConfig
from engine.emulator.models import DiffusionEmulator
from engine.errors import check_integer


def network_flops(
    config: BackboneConfig,
    *,
    channels: int,
    grid: tuple[int, int],
    label_dim: int,
    batch: int = 1,
    noise_conditioning: bool = True,
) -> int:
    """FLOPs of one forward pass of the backbone on `batch` windows of config.window frames."""
    check_integer("batch", batch, 1)
    meta = torch.device("meta")
    with meta:
        network = Backbone(config, channels, label_dim, noise_conditioning=noise_conditioning)
        x = torch.zeros(batch, config.window, channels, *grid)
        mask = torch.zeros(batch, config.window, 1, 1, 1, dtype=torch.bool)
        log_sigma = torch.zeros(batch) if noise_conditioning else None
        label = torch.zeros(batch, label_dim) if label_dim else None
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network(x, log_sigma, label, mask)
    return int(counter.get_total_flops())


def emulator_flops(emulator: Emulator, batch: int = 1) -> int:
    """FLOPs of one network evaluation of `emulator` on `batch` windows (one of the
    `emulator.nfe(sampler)` evaluations a `generate` call makes)."""
    return network_flops(
        emulator.config,
        channels=emulator.channels,
        grid=emulator.grid,
        label_dim=emulator.label_dim,
        batch=batch,
        noise_conditioning=isinstance(emulator, DiffusionEmulator),
    )
