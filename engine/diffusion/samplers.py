"""Reverse-diffusion samplers for the VE schedule (paper §6), behind one registry.

Notation: x_t = x + σ_t ε (α = 1, so ρ = σ), x̂ = denoise(x_t, σ_t) ≈ E[x | x_t] and
ε̂ = (x_t − x̂)/σ_t. The probability-flow ODE is dx/dσ = ε̂, or dx/dλ = x − x̂ in λ = log σ.

Common contract (`Sampler.sample`):
- the time grid is uniform in t from 1 to 0 with `steps` intervals, σ_i = schedule.sigma(t_i),
  so the walk starts at σ_max and its last step lands on σ_min (1e-3 by default);
- the result is the state x at σ_min, not a final x̂: no extra network call, and for the
  exact denoiser the ODE samplers then return exactly the probability-flow solution at
  σ_min, whose law is the data convolved with N(0, σ_min²) (negligible at 1e-3);
- `x1` is the starting noise, already scaled to σ_max; its leading axis may hold K
  ensemble members, and stochastic samplers draw independent noise for every entry, in a
  fixed order, from `generator` (which must live on x1's device);
- σ reaches `denoise` as a 0-d tensor on x1's device and dtype; step coefficients are
  computed once in float64 on the CPU and applied as Python floats, so sampling works on
  any device and dtype and under torch.inference_mode().
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
from torch import Tensor

from engine.diffusion.noise import Generator, randn
from engine.diffusion.schedule import LogLogitSchedule
from engine.errors import ParameterError, UnknownNameError, check_integer

DenoiseFn = Callable[[Tensor, Tensor], Tensor]


def _check_fraction(name: str, value: object, *, low_open: bool) -> float:
    """A real number in [0, 1] (or (0, 1] when low_open), else ParameterError."""
    valid = "(0, 1]" if low_open else "[0, 1]"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParameterError(name, value, f"a number in {valid}")
    if not (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0):
        raise ParameterError(name, value, f"a number in {valid}")
    return float(value)


class Sampler(ABC):
    """Integrates from σ_max to σ_min in `steps` steps; see the module docstring."""

    #: network evaluations per step
    evaluations_per_step: int = 1

    def __init__(self, steps: int = 16, schedule: LogLogitSchedule | None = None):
        self.steps = check_integer("steps", steps, 1)
        self.schedule = schedule if schedule is not None else LogLogitSchedule()

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={getattr(self, k)!r}" for k in _options(type(self)))
        return f"{type(self).__name__}({options})"

    @property
    def stochastic(self) -> bool:
        """Whether sample() draws noise (ensemble members then differ beyond x1)."""
        return False

    def nfe(self, steps: int | None = None) -> int:
        """Network evaluations per sample, for `steps` (default: this sampler's steps)."""
        steps = self.steps if steps is None else check_integer("steps", steps, 1)
        return self.evaluations_per_step * steps

    def sample(self, denoise: DenoiseFn, x1: Tensor, generator: Generator = None) -> Tensor:
        """Map noise x1 (already ×σ_max) at t = 1 to the state at σ_min (t = 0)."""
        sigmas = self.schedule.sampling_sigmas(self.steps)
        grid = sigmas.to(device=x1.device, dtype=x1.dtype)

        def evaluate(x: Tensor, i: int) -> Tensor:
            return denoise(x, grid[i])

        return self._integrate(evaluate, x1, sigmas.tolist(), generator)

    @abstractmethod
    def _integrate(
        self,
        evaluate: Callable[[Tensor, int], Tensor],
        x: Tensor,
        sigmas: Sequence[float],
        generator: Generator,
    ) -> Tensor:
        """Walk x from sigmas[0] to sigmas[-1]; evaluate(x, i) is x̂ at noise sigmas[i]."""


def _noise(like: Tensor, generator: Generator) -> Tensor:
    return randn(like.shape, generator, like.device, like.dtype)


class _OneStepSampler(Sampler):
    """Samplers whose step from σ_i to σ_{i+1} only needs the current state."""

    def _integrate(self, evaluate, x, sigmas, generator):
        for i in range(len(sigmas) - 1):
            x = self._step(evaluate, x, i, sigmas, generator)
        return x

    @abstractmethod
    def _step(
        self,
        evaluate: Callable[[Tensor, int], Tensor],
        x: Tensor,
        i: int,
        sigmas: Sequence[float],
        generator: Generator,
    ) -> Tensor: ...


class DDIMSampler(_OneStepSampler):
    """DDIM(η): x_s = x̂ + σ_s√(1−τ')·ε̂ + σ_s√τ'·ξ, τ' = η·τ, τ = 1 − (σ_s/σ_t)².

    η = 0 is deterministic (identical to Euler in VE); η = 1 is ancestral DDPM. τ ∈ [0, 1)
    already, so the clip of paper §6 is a no-op for η ∈ [0, 1].
    """

    def __init__(self, steps: int = 16, eta: float = 0.0, schedule: LogLogitSchedule | None = None):
        super().__init__(steps, schedule)
        self.eta = _check_fraction("eta", eta, low_open=False)

    @property
    def stochastic(self) -> bool:
        return self.eta > 0

    def _step(self, evaluate, x, i, sigmas, generator):
        sigma_t, sigma_s = sigmas[i], sigmas[i + 1]
        tau = self.eta * (1 - (sigma_s / sigma_t) ** 2)
        x_hat = evaluate(x, i)
        x_s = x_hat + (sigma_s * math.sqrt(1 - tau) / sigma_t) * (x - x_hat)
        if tau > 0:
            x_s = x_s + sigma_s * math.sqrt(tau) * _noise(x, generator)
        return x_s


class DDPMSampler(DDIMSampler):
    """Ancestral DDPM: DDIM with η = 1 (x_s drawn from N(x_s | x_t, x = x̂))."""

    def __init__(self, steps: int = 16, schedule: LogLogitSchedule | None = None):
        super().__init__(steps, eta=1.0, schedule=schedule)


def _euler_update(x: Tensor, epsilon: Tensor, sigma_t: float, sigma_s: float) -> Tensor:
    """x_s = x_t + (σ_s − σ_t)·ε̂: one explicit step of dx/dσ = ε̂."""
    return x + (sigma_s - sigma_t) * epsilon


class EulerSampler(_OneStepSampler):
    """Explicit Euler on the probability-flow ODE in σ; first order, 1 NFE per step."""

    def _step(self, evaluate, x, i, sigmas, generator):
        epsilon = (x - evaluate(x, i)) / sigmas[i]
        return _euler_update(x, epsilon, sigmas[i], sigmas[i + 1])


class HeunSampler(_OneStepSampler):
    """Heun (explicit trapezoid) in σ: Euler trial, then the step with the mean ε̂.

    Second order, 2 NFE on every step including the last: σ_min > 0, so ε̂ is defined at
    the end point and EDM's Euler fallback for a final σ = 0 is not needed.
    """

    evaluations_per_step = 2

    def _step(self, evaluate, x, i, sigmas, generator):
        sigma_t, sigma_s = sigmas[i], sigmas[i + 1]
        epsilon_t = (x - evaluate(x, i)) / sigma_t
        trial = _euler_update(x, epsilon_t, sigma_t, sigma_s)
        epsilon_s = (trial - evaluate(trial, i + 1)) / sigma_s
        return _euler_update(x, (epsilon_t + epsilon_s) / 2, sigma_t, sigma_s)


class PCSampler(_OneStepSampler):
    """Predictor–corrector: `corrections` Langevin-type moves at fixed σ, then DDIM(0).

    Each corrector move keeps x̂ and shrinks the residual x − x̂ by √(1−δ) while adding
    √δ·σ·ξ, nudging x back towards the marginal at σ; (corrections + 1) NFE per step.
    """

    def __init__(
        self,
        steps: int = 16,
        corrections: int = 1,
        delta: float = 0.01,
        schedule: LogLogitSchedule | None = None,
    ):
        super().__init__(steps, schedule)
        self.corrections = check_integer("corrections", corrections, 0)
        self.delta = _check_fraction("delta", delta, low_open=True)
        self.evaluations_per_step = self.corrections + 1

    @property
    def stochastic(self) -> bool:
        return self.corrections > 0

    def _step(self, evaluate, x, i, sigmas, generator):
        sigma_t, sigma_s = sigmas[i], sigmas[i + 1]
        shrink, kick = math.sqrt(1 - self.delta), math.sqrt(self.delta) * sigma_t
        for _ in range(self.corrections):
            x_hat = evaluate(x, i)
            x = x_hat + shrink * (x - x_hat) + kick * _noise(x, generator)
        x_hat = evaluate(x, i)
        return x_hat + (sigma_s / sigma_t) * (x - x_hat)


def _interpolation_weights(nodes: Sequence[float], moments: Sequence[float]) -> list[float]:
    """Weights w_j = ∫ K(τ) ℓ_j(τ) dτ of the Lagrange basis ℓ_j through `nodes`.

    `moments[k]` = ∫ K(τ) τ^k dτ for k < len(nodes). Matching moments (Σ_j w_j τ_j^k = m_k)
    is the same linear system as integrating each Lagrange polynomial exactly; nodes are in
    the step-normalised variable, so the Vandermonde matrix stays well conditioned.
    """
    vandermonde = np.vander(np.asarray(nodes, dtype=np.float64), increasing=True).T
    return np.linalg.solve(vandermonde, np.asarray(moments, dtype=np.float64)).tolist()


def _phi(h: float, count: int) -> list[float]:
    """φ_1..φ_count at h, φ_k(h) = ∫_0^1 e^{(1−τ)h} τ^{k−1}/(k−1)! dτ.

    Taylor series (Σ_j h^j/(j+k)!) for |h| < 1, where the recurrence
    φ_{k+1} = (φ_k − 1/k!)/h would cancel; the recurrence elsewhere.
    """
    if abs(h) < 1.0:
        return [sum(h**j / math.factorial(j + k) for j in range(30)) for k in range(1, count + 1)]
    values, previous = [], math.exp(h)
    for k in range(count):
        previous = (previous - 1 / math.factorial(k)) / h
        values.append(previous)
    return values


class _MultistepSampler(Sampler):
    """Adams–Bashforth-type samplers: a polynomial through the last `order` network outputs.

    The order ramps up over the first steps (step i uses min(order, i+1) points), so the
    method starts with its first-order member and needs no extra start-up evaluations.
    """

    def __init__(self, steps: int = 16, order: int = 3, schedule: LogLogitSchedule | None = None):
        super().__init__(steps, schedule)
        self.order = check_integer("order", order, 1, 3)

    def _integrate(self, evaluate, x, sigmas, generator):
        history: deque[tuple[float, Tensor]] = deque(maxlen=self.order)
        for i in range(len(sigmas) - 1):
            history.append((sigmas[i], self._history_value(x, evaluate(x, i), sigmas[i])))
            x = self._update(x, list(history), sigmas[i], sigmas[i + 1])
        return x

    @abstractmethod
    def _history_value(self, x: Tensor, x_hat: Tensor, sigma: float) -> Tensor:
        """What the polynomial interpolates (ε̂ or x̂)."""

    @abstractmethod
    def _update(
        self, x: Tensor, history: list[tuple[float, Tensor]], sigma_t: float, sigma_s: float
    ) -> Tensor:
        """Step from σ_t (the newest history entry) to σ_s."""


class ABSampler(_MultistepSampler):
    """Adams–Bashforth / LMS in ρ = σ (paper default: order 3).

    ε̂ is interpolated by the Lagrange polynomial in ρ through the last n values and
    integrated exactly: x_s = x_t + Σ_j w_j ε̂_j, w_j = ∫_{ρ_t}^{ρ_s} ℓ_j(ρ) dρ.
    """

    def _history_value(self, x, x_hat, sigma):
        return (x - x_hat) / sigma

    def _update(self, x, history, sigma_t, sigma_s):
        step = sigma_s - sigma_t
        nodes = [(rho - sigma_t) / step for rho, _ in history]
        moments = [1 / (k + 1) for k in range(len(history))]  # ∫_0^1 τ^k dτ
        weights = _interpolation_weights(nodes, moments)
        return x + step * sum(w * eps for w, (_, eps) in zip(weights, history, strict=True))


class DPMPPSampler(_MultistepSampler):
    """Multistep DPM-Solver++: exponential Adams–Bashforth in λ = log σ on x̂ (default 2M).

    With h = λ_s − λ_t, x_s = e^h·x_t − h Σ_j x̂_j Σ_k b_jk k! φ_{k+1}(h), the exact
    integral of e^{λ_s−λ} times the Lagrange interpolant of x̂ (b_jk its coefficients in
    τ = (λ − λ_t)/h). This is the paper's / azula's "xEAB" construction. For order 2 it is
    not bit-identical to Lu et al.'s 2M, which applies φ_1 to a linearly extrapolated x̂
    instead of integrating the φ_2 term: both are second order and differ by O(h³) a step.
    Order 1 is DDIM(0).
    """

    def __init__(self, steps: int = 16, order: int = 2, schedule: LogLogitSchedule | None = None):
        super().__init__(steps, order, schedule)

    def _history_value(self, x, x_hat, sigma):
        return x_hat

    def _update(self, x, history, sigma_t, sigma_s):
        h = math.log(sigma_s / sigma_t)
        nodes = [math.log(sigma / sigma_t) / h for sigma, _ in history]
        phis = _phi(h, len(history))
        moments = [math.factorial(k) * phis[k] for k in range(len(history))]
        weights = _interpolation_weights(nodes, moments)
        integral = sum(w * x_hat for w, (_, x_hat) in zip(weights, history, strict=True))
        return math.exp(h) * x - h * integral


SAMPLERS: dict[str, type[Sampler]] = {
    "ddpm": DDPMSampler,
    "ddim": DDIMSampler,
    "euler": EulerSampler,
    "heun": HeunSampler,
    "ab": ABSampler,
    "lms": ABSampler,
    "dpmpp": DPMPPSampler,
    "pc": PCSampler,
}

SAMPLER_NAMES: tuple[str, ...] = tuple(SAMPLERS)


def _options(cls: type[Sampler]) -> list[str]:
    """The keyword options a sampler class accepts (its __init__ parameters)."""
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def get_sampler(name: str, **options: object) -> Sampler:
    """Instantiate a registered sampler, e.g. get_sampler("ab", steps=16, order=3)."""
    if name not in SAMPLERS:
        raise UnknownNameError("sampler", name, SAMPLER_NAMES)
    cls = SAMPLERS[name]
    valid = _options(cls)
    for key in options:
        if key not in valid:
            raise ParameterError(f"{name} sampler option", key, ", ".join(valid))
    return cls(**options)
