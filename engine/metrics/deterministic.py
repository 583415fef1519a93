"""Point-wise error scores of a prediction against the truth, reduced over space."""

from __future__ import annotations

import torch

EPS = 1e-6
SPATIAL = (-2, -1)


def mse(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    return (prediction - truth).square().mean(dim=SPATIAL)


def rmse(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    return mse(prediction, truth).sqrt()


def nrmse(prediction: torch.Tensor, truth: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """RMSE relative to the truth's RMS: scale-free, but blind to a large mean offset."""
    return (mse(prediction, truth) / (truth.square().mean(dim=SPATIAL) + eps)).sqrt()


def vrmse(prediction: torch.Tensor, truth: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """RMSE relative to the truth's spatial standard deviation.

    1.0 is what predicting the spatial mean scores, which makes it the headline metric
    for comparing fields of very different magnitudes.
    """
    variance = truth.var(dim=SPATIAL, correction=0)
    return (mse(prediction, truth) / (variance + eps)).sqrt()
