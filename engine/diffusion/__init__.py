"""Diffusion core: log-logit VE schedule, EDM denoiser with masked context, samplers.

Everything here is network-agnostic: `Denoiser` wraps any `DenoiserNetwork`, and the
samplers only need a function (x_t, σ) -> x̂, so they also run on analytic denoisers.
"""

from engine.diffusion.denoiser import (
    PREDICTIONS,
    Denoiser,
    DenoiserNetwork,
    diffusion_loss,
    edm_coefficients,
    leading_context_mask,
    sample_context_lengths,
)
from engine.diffusion.samplers import (
    SAMPLER_NAMES,
    SAMPLERS,
    ABSampler,
    DDIMSampler,
    DDPMSampler,
    DPMPPSampler,
    EulerSampler,
    HeunSampler,
    PCSampler,
    Sampler,
    get_sampler,
)
from engine.diffusion.schedule import LogLogitSchedule

__all__ = [
    "PREDICTIONS",
    "SAMPLERS",
    "SAMPLER_NAMES",
    "ABSampler",
    "DDIMSampler",
    "DDPMSampler",
    "DPMPPSampler",
    "Denoiser",
    "DenoiserNetwork",
    "EulerSampler",
    "HeunSampler",
    "LogLogitSchedule",
    "PCSampler",
    "Sampler",
    "diffusion_loss",
    "edm_coefficients",
    "get_sampler",
    "leading_context_mask",
    "sample_context_lengths",
]
