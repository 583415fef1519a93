"""Tiny configs and a synthetic dynamical system for the emulator tests (imported as
`emulator_tiny`).

The dynamics move whole frames one cell per frame on a periodic grid, so the exact next
frames are known, and the persistence forecast (repeat the last context frame) is as bad
as forgetting the frame: for i.i.d. unit-Gaussian cells its mean squared error is 2.
"""

from __future__ import annotations

import torch
from torch import Tensor

from engine.emulator import BackboneConfig

TINY = BackboneConfig(width=32, depth=2, heads=2, cond_dim=32, dropout=0.0)
CHANNELS, GRID = 2, (4, 4)


def translating_trajectories(
    count: int, frames: int, seed: int, *, label_sets_direction: bool
) -> tuple[Tensor, Tensor]:
    """(count, frames, 2, 4, 4) trajectories and (count, 1) labels in {-1, +1}.

    Frame t+1 is frame t rolled by one cell, along x, or, when `label_sets_direction`,
    along x for label +1 and along y for label -1 (so only the label tells the direction).
    """
    generator = torch.Generator().manual_seed(seed)
    first = torch.randn(count, CHANNELS, *GRID, generator=generator)
    labels = torch.randint(0, 2, (count, 1), generator=generator).float() * 2 - 1
    along_x = (labels[:, 0] > 0) if label_sets_direction else torch.ones(count, dtype=torch.bool)
    sequence = [first]
    for _ in range(frames - 1):
        previous = sequence[-1]
        shifted = torch.where(
            along_x[:, None, None, None],
            torch.roll(previous, 1, dims=2),
            torch.roll(previous, 1, dims=3),
        )
        sequence.append(shifted)
    return torch.stack(sequence, dim=1), labels
