"""The fixed linear code every learned autoencoder must beat: the lowest DCT coefficients.

A learned autoencoder only earns its cost if it compresses better than the classic
transform code with the same budget. The reference keeps, per channel, the `n` cosine
coefficients of lowest frequency (ordered by kx^2 + ky^2, ties by kx) of the
orthonormal 2-D DCT-II, with `n = floor(latent values / channels)`: never more numbers
than the autoencoder's latent holds, so the comparison is at the same rate or a higher one.
The DCT-II is the transform of the even extension, so non-periodic fields get no
artificial jump at the boundary.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.errors import ParameterError


def dct_matrix(size: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (size x size): coefficients = D @ signal."""
    n = torch.arange(size, dtype=dtype)
    k = n[:, None]
    matrix = torch.cos(math.pi * (2 * n[None, :] + 1) * k / (2 * size)) * math.sqrt(2 / size)
    matrix[0] /= math.sqrt(2)
    return matrix


def lowest_frequencies(grid: tuple[int, int], count: int) -> torch.Tensor:
    """Boolean (X, Y) mask of the `count` lowest-frequency coefficients."""
    x, y = grid
    if not 1 <= count <= x * y:
        raise ParameterError("coefficients per channel", count, f"an integer in [1, {x * y}]")
    kx, ky = np.meshgrid(np.arange(x), np.arange(y), indexing="ij")
    order = np.lexsort((kx.ravel(), (kx**2 + ky**2).ravel()))  # last key sorts first
    mask = np.zeros(x * y, dtype=bool)
    mask[order[:count]] = True
    return torch.from_numpy(mask.reshape(x, y))


class LowFrequencyCode:
    """Project (..., C, X, Y) frames onto their lowest DCT coefficients and back."""

    def __init__(self, channels: int, grid: tuple[int, int], rate: float):
        values = channels * grid[0] * grid[1]
        per_channel = math.floor(values / rate / channels)
        if per_channel < 1:
            raise ParameterError(
                "rate",
                rate,
                f"at most {grid[0] * grid[1]} for a {channels}-channel frame "
                "(one coefficient per channel)",
            )
        self.grid = grid
        self.coefficients_per_channel = per_channel
        self.rate = values / (per_channel * channels)
        self.mask = lowest_frequencies(grid, per_channel)
        self._dx, self._dy = dct_matrix(grid[0]), dct_matrix(grid[1])

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """The frames as the code reconstructs them (same shape and dtype)."""
        if tuple(frames.shape[-2:]) != self.grid:
            raise ParameterError("frame grid", tuple(frames.shape[-2:]), f"{self.grid}")
        signal = frames.to(torch.float64)
        coefficients = self._dx @ signal @ self._dy.T
        kept = coefficients * self.mask.to(coefficients.dtype)
        return (self._dx.T @ kept @ self._dy).to(frames.dtype)
