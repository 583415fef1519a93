"""Gaussian data x ~ N(μ, Σ): the one case where everything a sampler needs is exact.

Under x_t = x + σε (VE) the posterior mean is E[x | x_t] = μ + Σ(Σ + σ²I)⁻¹(x_t − μ), and
the probability-flow ODE has the closed-form solution
x(σ') = μ + (Σ + σ'²I)^{1/2}(Σ + σ²I)^{-1/2}(x(σ) − μ), which in the eigenbasis of Σ is a
per-axis rescaling. These are independent references for every sampler test.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# A fixed, non-diagonal covariance with eigenvalues ≈ 0.139, 1.048, 2.314: the spread
# makes the ODE stiff-ish in one direction and the off-diagonals mix all axes.
MEAN = (1.0, -2.0, 0.5)
COVARIANCE = ((2.0, 0.6, -0.4), (0.6, 1.0, 0.3), (-0.4, 0.3, 0.5))


class GaussianData:
    """N(μ, Σ) in float64 with its exact denoiser, probability-flow map and whitening."""

    def __init__(self, mean=MEAN, covariance=COVARIANCE):
        self.mean = torch.tensor(mean, dtype=torch.float64)
        self.cov = torch.tensor(covariance, dtype=torch.float64)
        self.eigenvalues, self.basis = torch.linalg.eigh(self.cov)
        self.dim = self.mean.numel()

    def _apply(self, x: Tensor, gains: Tensor) -> Tensor:
        """μ + V diag(gains) Vᵀ (x − μ), with x of shape (..., d)."""
        return self.mean + ((x - self.mean) @ self.basis * gains) @ self.basis.T

    def denoise(self, x_t: Tensor, sigma: Tensor | float) -> Tensor:
        """E[x | x_t] = μ + Σ(Σ + σ²I)⁻¹(x_t − μ)."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        return self._apply(x_t, self.eigenvalues / (self.eigenvalues + sigma**2))

    def flow(self, x: Tensor, sigma_from: float, sigma_to: float) -> Tensor:
        """Exact probability-flow ODE solution from noise level sigma_from to sigma_to."""
        return self._apply(
            x,
            torch.sqrt((self.eigenvalues + sigma_to**2) / (self.eigenvalues + sigma_from**2)),
        )

    def whiten(self, x: Tensor) -> Tensor:
        """Σ^{-1/2}(x − μ): exactly N(0, I) for samples of the data."""
        return ((x - self.mean) @ self.basis * self.eigenvalues.rsqrt()) @ self.basis.T


def assert_standard_normal_moments(z: Tensor, extra_mean: float = 0.0, extra_cov: float = 0.0):
    """Sample mean and covariance of z (n, d) agree with N(0, I) up to Monte Carlo error.

    For n independent N(0, I) draws the sample mean has sd 1/√n per axis, and a sample
    covariance entry has sd √((1+δ_ij)/n). The bound is 4.5 sd per entry (two-sided
    p ≈ 7e-6, so ≈ 1e-4 family-wise over the ≈ 150 entries in this suite) plus a stated
    allowance for the sampler's own discretisation bias, measured separately (see tests).
    """
    n, d = z.shape
    mean_error = z.mean(0).abs()
    cov_error = (torch.cov(z.T) - torch.eye(d, dtype=z.dtype)).abs()
    mean_bound = 4.5 / math.sqrt(n) + extra_mean
    cov_bound = 4.5 * torch.sqrt((1 + torch.eye(d, dtype=z.dtype)) / n) + extra_cov
    assert (mean_error <= mean_bound).all(), f"mean error {mean_error} > {mean_bound:.4f}"
    assert (cov_error <= cov_bound).all(), f"covariance error\n{cov_error}\n> bound\n{cov_bound}"


class PosteriorMeanNetwork(nn.Module):
    """A `DenoiserNetwork` that makes `Denoiser` return a given exact posterior mean.

    It undoes the EDM preconditioning: x_t = x_in / c_in, σ = exp(log σ), and returns
    F = (D(x_t) − c_skip x_t)/c_out, so c_skip x_t + c_out F = D. Entries under the
    context mask are read as the clean context (what the network is promised to see).
    Used with a conditional Gaussian posterior, it is the ideal masked-context network.
    """

    def __init__(self, posterior_mean):
        super().__init__()
        self.posterior_mean = posterior_mean
        self.calls = 0

    def forward(self, x_in, log_sigma, condition, context_mask):
        self.calls += 1
        sigma = log_sigma.exp()[:, None]
        c_in = torch.rsqrt(1 + sigma**2)
        x_t = x_in / c_in
        target = self.posterior_mean(x_t, x_in, sigma, context_mask)
        return (target - x_t / (1 + sigma**2)) / (sigma * c_in)
