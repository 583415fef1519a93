"""EDM-preconditioned denoiser with hard masked-context conditioning, and its training loss.

The wrapped network never sees raw x_t: it gets c_in·x_t (unit variance at every noise
level for unit-variance data, σ_data = 1) and log σ, and predicts a residual F that is
combined as D(x_t) = c_skip·x_t + c_out·F (paper §5). With c_skip = 1/(1+σ²) and
c_out = σ/√(1+σ²), the EDM-weighted loss |D − x|²/v, v = σ²/(1+σ²), is exactly the
unweighted error of F against its own target, so every noise level trains on the same scale.

Context (paper §5): entries flagged by `context_mask` are known. Their x_t values are
replaced by √(1+σ²)·context, so after c_in the network sees the clean context, and D is
clamped to the context there. Training and sampling go through the same forward, so the
network is never asked a question at sampling time that it was not trained on.

Two parametrisations (`PREDICTIONS`). "edm" is the paper's. "data" sets c_skip = 0 and
c_out = 1, so the network predicts the clean x itself (x-prediction, as in Li & He 2025,
"Back to Basics: Let Denoising Generative Models Denoise"). It exists for tokens with more
values than the network is wide, e.g. 16x16 pixel patches of 4 fields (1024 values)
through a width-128 ViT: with the EDM skip, noise in the 896 directions the output layer
cannot reach is carried by c_skip·x_t all the way down, and the sampler ends with unit-
variance noise there (the ODE dx/dσ = (x − c_skip·x)/σ scales it by √(1+σ²)); with
x-prediction D is zero in those directions and the noise decays like σ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn

from engine.diffusion.noise import Generator
from engine.diffusion.schedule import LogLogitSchedule
from engine.errors import ParameterError, check_integer

if TYPE_CHECKING:
    from engine.diffusion.samplers import Sampler


class DenoiserNetwork(Protocol):
    """What `Denoiser` wraps (the backbone, e.g. the emulator ViT).

    Arguments:
        x_in: c_in·x_t, shape (B, ...), context entries already equal to the clean context.
        log_sigma: natural log of the noise level, shape (B,). The network owns the embedding
            (the paper feeds 10·log σ to a sinusoidal embedding).
        condition: simulation-parameter label θ (any layout the network expects) or None.
        context_mask: the bool mask, broadcastable to x_in, True where entries are known, or
            None when nothing is known. Paper §4 concatenates it to the input tokens: without
            it the network cannot tell clean context from a noisy frame at small σ.

    Returns the raw output F with the shape of x_in.
    """

    def __call__(
        self,
        x_in: Tensor,
        log_sigma: Tensor,
        condition: Tensor | None,
        context_mask: Tensor | None,
    ) -> Tensor: ...


def per_sample_sigma(sigma: Tensor | float, x: Tensor) -> Tensor:
    """σ as a (B,) tensor on x's device and dtype, from a float, a 0-d or a (B,) tensor."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        return sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ParameterError(
            "sigma.shape",
            tuple(sigma.shape),
            f"() or ({x.shape[0]},) for x of shape {tuple(x.shape)}",
        )
    return sigma


def _broadcast_over(sigma: Tensor, x: Tensor) -> Tensor:
    """(B,) -> (B, 1, ..., 1) so it multiplies x sample by sample."""
    return sigma.reshape(-1, *([1] * (x.ndim - 1)))


PREDICTIONS = ("edm", "data")
# x-prediction's loss weight 1/v grows like 1/σ² at small σ, where the network only has to
# copy x_t and its small copying error would dominate the loss; v is floored at v(σ≈0.1).
DATA_PREDICTION_MIN_VARIANCE = 0.01


def edm_coefficients(sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(c_in, c_out, c_skip) for σ_data = 1: 1/√(1+σ²), σ/√(1+σ²), 1/(1+σ²)."""
    scale = torch.rsqrt(1 + sigma.square())
    return scale, sigma * scale, scale.square()


def check_prediction(prediction: object) -> str:
    """`prediction` if it is one of `PREDICTIONS`, else ParameterError naming them."""
    if prediction not in PREDICTIONS:
        raise ParameterError("prediction", prediction, f"one of {', '.join(PREDICTIONS)}")
    return prediction  # type: ignore[return-value]


class Denoiser(nn.Module):
    """D(x_t, σ) ≈ E[x | x_t]: the preconditioned wrapper around a `DenoiserNetwork`.

    `prediction` is "edm" (D = c_skip·x_t + c_out·F) or "data" (D = F); see the module
    docstring for when the second is needed.
    """

    def __init__(self, network: nn.Module | DenoiserNetwork, prediction: str = "edm"):
        super().__init__()
        self.network = network
        self.prediction = check_prediction(prediction)

    def forward(
        self,
        x_t: Tensor,
        sigma: Tensor | float,
        condition: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """Predict the clean x from x_t = x + σ·ε, shape (B, ...); σ is a float, () or (B,).

        `context_mask` (bool, broadcastable to x_t, True = known) and `context` (clean values,
        broadcastable to x_t; only entries under the mask are read) go together.
        """
        sigma = per_sample_sigma(sigma, x_t)
        sigma_b = _broadcast_over(sigma, x_t)
        if context_mask is not None and context is None:
            raise ParameterError("context", None, "a tensor whenever context_mask is given")
        if context is not None and context_mask is None:
            raise ParameterError("context_mask", None, "a bool tensor whenever context is given")
        c_in, c_out, c_skip = edm_coefficients(sigma_b)
        x_in = c_in * x_t
        if context_mask is not None:
            if context_mask.dtype != torch.bool:
                raise ParameterError("context_mask.dtype", context_mask.dtype, "torch.bool")
            # Same as writing √(1+σ²)·context into x_t before c_in, minus the rounding: the
            # network reads the context bit for bit. x_t itself need not change there,
            # because the output is clamped to the context on those entries anyway.
            x_in = torch.where(context_mask, context, x_in)
        output = self.network(x_in, sigma.log(), condition, context_mask)
        x_hat = output if self.prediction == "data" else c_skip * x_t + c_out * output
        if context_mask is not None:
            x_hat = torch.where(context_mask, context, x_hat)
        return x_hat

    def sample(
        self,
        sampler: Sampler,
        x1: Tensor,
        condition: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        generator: Generator = None,
    ) -> Tensor:
        """Draw x from noise x1 (already ×σ_max) with hard conditioning on the context.

        The sampler returns its state at σ_min; under the mask that state is a leftover
        (the network never reads it), so the known entries are set to the context exactly.
        Ensembles: stack K members along the batch axis of x1, condition and context.
        """

        def denoise(x_t: Tensor, sigma: Tensor) -> Tensor:
            return self(x_t, sigma, condition, context, context_mask)

        x = sampler.sample(denoise, x1, generator)
        return x if context_mask is None else torch.where(context_mask, context, x)


def diffusion_loss(
    denoiser: Denoiser,
    x: Tensor,
    condition: Tensor | None = None,
    context_mask: Tensor | None = None,
    *,
    schedule: LogLogitSchedule | None = None,
    sigmas: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean over every entry (context included) of (D(x + σε) − x)² / v, v = σ²/(1+σ²).

    For a "data"-predicting denoiser v is floored at `DATA_PREDICTION_MIN_VARIANCE`.

    σ per sample is drawn from `schedule` (default `LogLogitSchedule()`) unless `sigmas`
    (shape (B,)) is given; ε and σ come from `generator` (on x's device) when given. The
    context is x itself under `context_mask`; clamping makes those entries contribute zero
    error while still counting in the mean, as in the paper.
    """
    if sigmas is None:
        schedule = schedule if schedule is not None else LogLogitSchedule()
        sigmas = schedule.sample_training_sigmas(
            x.shape[0], generator, device=x.device, dtype=x.dtype
        )
    sigmas = per_sample_sigma(sigmas, x)
    sigma_b = _broadcast_over(sigmas, x)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    context = x if context_mask is not None else None
    x_hat = denoiser(x + sigma_b * noise, sigmas, condition, context, context_mask)
    variance = sigma_b.square() / (1 + sigma_b.square())
    if denoiser.prediction == "data":
        variance = variance.clamp(min=DATA_PREDICTION_MIN_VARIANCE)
    return ((x_hat - x).square() / variance).mean()


def sample_context_lengths(
    n: int,
    generator: torch.Generator | None = None,
    *,
    max_context: int = 4,
    device: torch.device | str | None = None,
) -> Tensor:
    """Context lengths k = (Poisson(1) mod max_context) + 1, shape (n,), int64 (paper §5).

    With the default 4, k = 1..4 with probabilities ≈ .383/.371/.184/.061: mostly short
    contexts, yet every length 1..4 is trained so one model serves them all at rollout.
    """
    n = check_integer("n", n, 0)
    max_context = check_integer("max_context", max_context, 1)
    rates = torch.ones(n, dtype=torch.float64, device=device)
    return torch.poisson(rates, generator=generator).long() % max_context + 1


def leading_context_mask(lengths: Tensor, frames: int) -> Tensor:
    """Bool mask (B, frames), True on the first lengths[b] frames (the context sits first).

    The caller reshapes it to its window layout, e.g. mask[:, :, None, None, None] for
    (B, frames, C, H, W).
    """
    frames = check_integer("frames", frames, 1)
    if lengths.ndim != 1:
        raise ParameterError("lengths.shape", tuple(lengths.shape), "(B,)")
    if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > frames):
        raise ParameterError(
            "lengths", (int(lengths.min()), int(lengths.max())), f"within [0, {frames}]"
        )
    return torch.arange(frames, device=lengths.device) < lengths[:, None]
