"""The variance-exploding log-logit noise schedule of the paper (§5).

x_t = α_t x + σ_t ε with α_t = 1 and σ(t) = u/(1 − u), where u is linear in t between
u(σ_min) at t = 0 and u(σ_max) at t = 1 (u(σ) = σ/(1 + σ)). Equivalently log σ = logit(u),
so drawing t ~ U(0, 1) puts log σ on a logistic law truncated to [log σ_min, log σ_max],
centred at 0 for the symmetric default range 1e-3 .. 1e3: training concentrates on the
noise levels around σ_data = 1 where the denoiser has the most to learn.
"""

from __future__ import annotations

import torch
from torch import Tensor

from engine.errors import ParameterError, check_integer


class LogLogitSchedule:
    """σ(t) = u/(1−u), u linear in t; t = 0 is σ_min (clean end), t = 1 is σ_max (noise end).

    The map is evaluated as a ratio of two convex combinations of positive numbers,

        σ(t) = [(1−t) σ_min (1+σ_max) + t σ_max (1+σ_min)] / [(1−t)(1+σ_max) + t (1+σ_min)],

    which is u/(1−u) multiplied through by (1+σ_min)(1+σ_max). Forming 1 − u directly
    would lose about three digits near t = 1 (1 − u ≈ 1e-3) in float32; here no two nearly
    equal numbers are subtracted. Times outside [0, 1] extrapolate the formula meaninglessly.
    """

    def __init__(self, sigma_min: float = 1e-3, sigma_max: float = 1e3):
        if not 0.0 < sigma_min < sigma_max < float("inf"):
            raise ParameterError(
                "(sigma_min, sigma_max)", (sigma_min, sigma_max), "0 < sigma_min < sigma_max < inf"
            )
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def __repr__(self) -> str:
        return f"LogLogitSchedule(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g})"

    def sigma(self, t: Tensor | float) -> Tensor:
        """Noise scale σ(t); a float t gives a float64 tensor, a tensor keeps its dtype."""
        t = torch.as_tensor(t, dtype=torch.float64) if not isinstance(t, Tensor) else t
        lo, hi = self.sigma_min, self.sigma_max
        numerator = (1 - t) * (lo * (1 + hi)) + t * (hi * (1 + lo))
        denominator = (1 - t) * (1 + hi) + t * (1 + lo)
        return numerator / denominator

    def t(self, sigma: Tensor | float) -> Tensor:
        """Inverse of `sigma`: the time at which the schedule reaches noise scale σ."""
        if not isinstance(sigma, Tensor):
            sigma = torch.as_tensor(sigma, dtype=torch.float64)
        lo, hi = self.sigma_min, self.sigma_max
        # u(σ) − u(σ_min) over u(σ_max) − u(σ_min), with every u = σ/(1+σ) written out
        # so that no difference of nearly equal numbers is formed.
        return ((sigma - lo) * (1 + hi)) / ((hi - lo) * (1 + sigma))

    def alpha(self, t: Tensor | float) -> Tensor:
        """Signal scale α(t) = 1 (variance exploding), shaped like `t`."""
        t = torch.as_tensor(t, dtype=torch.float64) if not isinstance(t, Tensor) else t
        return torch.ones_like(t)

    def sample_training_sigmas(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """σ(t) for n times t ~ U(0, 1): log σ is logistic, truncated to the schedule range.

        The generator, if given, must live on `device` (torch's rule for random draws).
        """
        t = torch.rand(
            check_integer("n", n, 0), generator=generator, device=device, dtype=torch.float64
        )
        return self.sigma(t).to(dtype)

    def sampling_sigmas(self, steps: int) -> Tensor:
        """σ on the uniform sampling grid t_i = 1 − i/steps, i = 0..steps (float64, CPU).

        Starts at σ_max and ends at σ_min; samplers integrate from each entry to the next.
        """
        steps = check_integer("steps", steps, 1)
        return self.sigma(1.0 - torch.arange(steps + 1, dtype=torch.float64) / steps)
