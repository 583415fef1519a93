"""azula (the paper's diffusion library, test-only dependency) as an oracle.

azula 0.11.1 (`pip install --no-deps azula==0.11.1 einops`) imports without torchvision
or gdown as long as `azula.hub` is not imported. It has no log-logit schedule, so it gets
ours through its `Schedule` interface; the analytic Gaussian denoiser is wrapped as an
azula `Denoiser`. Inputs, time grid, denoiser and noise are then identical: azula draws its
noise with `torch.randn_like` from the global generator, and ours from a generator seeded
the same way in the same order, so even the stochastic samplers must agree to rounding.

Correspondence (azula name -> ours): DDPMSampler -> ddpm, DDIMSampler(eta) -> ddim(eta),
EulerSampler -> euler, HeunSampler -> heun, zABSampler(order) -> ab/lms(order),
xEABSampler(order) -> dpmpp(order), PCSampler(corrections, delta) -> pc.
"""

from __future__ import annotations

import pytest
import torch
from azula.denoise import Denoiser as AzulaDenoiser
from azula.denoise import DiracPosterior, GaussianDenoiser
from azula.linalg.covariance import FullCovariance
from azula.noise import Schedule as AzulaSchedule
from azula.sample import (
    DDIMSampler,
    DDPMSampler,
    EulerSampler,
    HeunSampler,
    PCSampler,
    xEABSampler,
    zABSampler,
)
from diffusion_gaussian import GaussianData

from engine.diffusion import LogLogitSchedule, get_sampler

DATA = GaussianData()
SCHEDULE = LogLogitSchedule()


class OurSchedule(AzulaSchedule):
    def __call__(self, t):
        return SCHEDULE.alpha(t), SCHEDULE.sigma(t)


class AnalyticDenoiser(AzulaDenoiser):
    def __init__(self):
        super().__init__()
        self.schedule = OurSchedule()

    def forward(self, x_t, t):
        return DiracPosterior(DATA.denoise(x_t, SCHEDULE.sigma(t)))


def test_analytic_gaussian_denoiser_matches_azula():
    reference = GaussianDenoiser(
        DATA.mean, FullCovariance(DATA.basis, DATA.eigenvalues), OurSchedule()
    )
    x_t = torch.randn(32, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t in (0.0, 0.2, 0.5, 0.8, 1.0):
        t = torch.tensor(t, dtype=torch.float64)
        x_scaled = x_t * SCHEDULE.sigma(t) + DATA.mean
        expected = reference(x_scaled, t).mean
        torch.testing.assert_close(
            DATA.denoise(x_scaled, SCHEDULE.sigma(t)), expected, rtol=1e-12, atol=1e-12
        )


CASES = [
    ("ddpm", {}, DDPMSampler, {}),
    ("ddim", {"eta": 0.0}, DDIMSampler, {"eta": 0.0}),
    ("ddim", {"eta": 0.5}, DDIMSampler, {"eta": 0.5}),
    ("ddim", {"eta": 1.0}, DDIMSampler, {"eta": 1.0}),
    ("euler", {}, EulerSampler, {}),
    ("heun", {}, HeunSampler, {}),
    ("ab", {"order": 1}, zABSampler, {"order": 1}),
    ("ab", {"order": 2}, zABSampler, {"order": 2}),
    ("lms", {"order": 3}, zABSampler, {"order": 3}),
    ("dpmpp", {"order": 1}, xEABSampler, {"order": 1}),
    ("dpmpp", {"order": 2}, xEABSampler, {"order": 2}),
    ("dpmpp", {"order": 3}, xEABSampler, {"order": 3}),
    ("pc", {"corrections": 1, "delta": 0.01}, PCSampler, {"corrections": 1, "delta": 0.01}),
    ("pc", {"corrections": 3, "delta": 0.2}, PCSampler, {"corrections": 3, "delta": 0.2}),
]


@pytest.mark.parametrize("steps", [1, 2, 3, 16, 64])
@pytest.mark.parametrize(("name", "options", "azula_class", "azula_options"), CASES)
def test_sampler_matches_azula(name, options, azula_class, azula_options, steps):
    seed = 1234
    x1 = 1e3 * torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    azula_sampler = azula_class(
        AnalyticDenoiser(), steps=steps, silent=True, dtype=torch.float64, **azula_options
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        expected = azula_sampler(x1)
    ours = get_sampler(name, steps=steps, **options)
    actual = ours.sample(DATA.denoise, x1, torch.Generator().manual_seed(seed))
    # Observed: ≤ 5e-14 absolute for all but Heun, whose 1–3-step outputs reach ~2e3
    # (7e-12 absolute, 3e-14 relative); float64 rounding, nothing systematic.
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)
