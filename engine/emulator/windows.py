"""Emulator training data: windows of L consecutive frames cut from whole trajectories.

Sample i of a `WindowSource` is the window of trajectory i // S that starts at frame i % S,
S being the number of start times per trajectory. The trainer's `EpochSampler`
visits a fresh permutation of all samples every epoch, so windows are drawn uniformly over
trajectories and start times, in an order fixed by the run seed, and each is gathered when
its batch is built: the (N·S, L, ...) array of all windows never exists.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from engine.errors import ParameterError, check_integer


class WindowSource:
    """A `TensorSource` of {"window": (B, L, C, h, w), "label": (B, P)} batches.

    `trajectories` (N, T, C, h, w) are in model space (latents, or preprocessed pixels);
    `labels` (N, P) hold each trajectory's condition label. With `stride` Δ a window takes
    frames s, s+Δ, ..., s+(L-1)Δ: the emulator then steps Δ stored frames at a time, and
    every start s is used (subsampling the trajectories first would drop the odd ones).
    """

    def __init__(
        self,
        trajectories: Tensor | np.ndarray,
        labels: Tensor | np.ndarray,
        window: int,
        stride: int = 1,
    ):
        self.trajectories = torch.as_tensor(trajectories)
        self.labels = torch.as_tensor(labels)
        for name, value in (("window", window), ("stride", stride)):
            check_integer(name, value, 1)
        if self.trajectories.ndim != 5 or not self.trajectories.is_floating_point():
            raise ParameterError(
                "trajectories.shape", tuple(self.trajectories.shape), "(N, T, C, h, w) floats"
            )
        count, frames = self.trajectories.shape[:2]
        if self.labels.ndim != 2 or self.labels.shape[0] != count:
            raise ParameterError("labels.shape", tuple(self.labels.shape), f"({count}, P)")
        span = (window - 1) * stride + 1
        if span > frames:
            raise ParameterError(
                "window",
                window,
                f"at most {(frames - 1) // stride + 1} frames at stride "
                f"{stride} ({frames} frames per trajectory)",
            )
        self.window, self.stride = window, stride
        self.starts = frames - span + 1
        self._offsets = stride * torch.arange(window)

    def __len__(self) -> int:
        return self.trajectories.shape[0] * self.starts

    def batch(self, indices: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """Gather the windows `indices`; no augmentation, so `generator` is not drawn from."""
        trajectory = indices // self.starts
        frames = (indices % self.starts)[:, None] + self._offsets
        return {
            "window": self.trajectories[trajectory[:, None], frames],
            "label": self.labels[trajectory],
        }


def emulator_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """The trainer's `loss_fn` for any emulator: its forward is its training loss."""
    return model(batch)
