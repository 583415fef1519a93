"""Training losses shared by the autoencoder and the pixel/latent regressors."""

from __future__ import annotations

import torch

from engine.errors import ParameterError

VMSE_EPS = 1e-2
SPATIAL = (-2, -1)


def vmse(prediction: torch.Tensor, target: torch.Tensor, eps: float = VMSE_EPS) -> torch.Tensor:
    """Variance-normalised MSE: per sample and channel MSE / (Var(target) + eps), averaged.

    Tensors are (..., C, X, Y). Dividing by each field's own spatial variance makes
    smooth, low-variance fields count as much as sharp ones (paper.md section 3); `eps`
    keeps near-constant fields from dominating. The variance is the population one
    (correction 0), as in engine.metrics.
    """
    if prediction.shape != target.shape or target.ndim < 3:
        raise ParameterError(
            "prediction shape",
            tuple(prediction.shape),
            f"the target's shape {tuple(target.shape)}, at least (C, X, Y)",
        )
    error = (prediction - target).square().mean(dim=SPATIAL)
    variance = target.var(dim=SPATIAL, correction=0)
    return (error / (variance + eps)).mean()
