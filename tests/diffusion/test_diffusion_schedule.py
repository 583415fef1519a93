"""The log-logit VE schedule against its defining formulas."""

from __future__ import annotations

import math

import pytest
import torch

from engine.diffusion import LogLogitSchedule


def test_end_points_centre_and_alpha():
    schedule = LogLogitSchedule()
    sigma = schedule.sigma(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    torch.testing.assert_close(
        sigma, torch.tensor([1e-3, 1.0, 1e3], dtype=torch.float64), rtol=1e-14, atol=0
    )
    assert torch.equal(schedule.alpha(torch.rand(7)), torch.ones(7))


def test_sigma_is_u_over_one_minus_u_with_u_linear_in_t():
    schedule = LogLogitSchedule(sigma_min=0.01, sigma_max=50.0)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    u_min, u_max = 0.01 / 1.01, 50.0 / 51.0
    u = u_min + t * (u_max - u_min)
    torch.testing.assert_close(schedule.sigma(t), u / (1 - u), rtol=1e-12, atol=0)
    torch.testing.assert_close(schedule.t(u / (1 - u)), t, rtol=0, atol=1e-12)
    assert (schedule.sigma(t).diff() > 0).all()


def test_float32_is_accurate_near_the_noise_end():
    """The formula never forms 1 − u, which would lose ~4 digits at t ≈ 1 in float32."""
    schedule = LogLogitSchedule()
    t = torch.linspace(0.9, 1.0, 1001)
    exact = schedule.sigma(t.double())
    torch.testing.assert_close(schedule.sigma(t).double(), exact, rtol=1e-6, atol=0)


def test_training_sigmas_have_a_truncated_logistic_log():
    """log σ = logit(u) with u uniform on [u(σ_min), u(σ_max)]: check the CDF at a few
    points against the logistic CDF renormalised to the truncation, with a 4.5-sd bound."""
    schedule = LogLogitSchedule()
    n = 40000
    log_sigma = schedule.sample_training_sigmas(n, torch.Generator().manual_seed(0)).log()
    assert log_sigma.dtype == torch.float32
    u_min, u_max = 1e-3 / (1 + 1e-3), 1e3 / (1 + 1e3)
    for level in (-4.0, -1.0, 0.0, 0.5, 2.0):
        expected = (1 / (1 + math.exp(-level)) - u_min) / (u_max - u_min)
        observed = (log_sigma <= level).double().mean().item()
        assert abs(observed - expected) <= 4.5 * math.sqrt(expected * (1 - expected) / n)
    assert log_sigma.min() >= math.log(1e-3) - 1e-5 and log_sigma.max() <= math.log(1e3) + 1e-4


def test_sampling_grid_is_uniform_in_t_from_one_to_zero():
    schedule = LogLogitSchedule()
    grid = schedule.sampling_sigmas(16)
    assert grid.shape == (17,) and grid.dtype == torch.float64
    torch.testing.assert_close(
        schedule.t(grid), torch.linspace(1, 0, 17, dtype=torch.float64), rtol=0, atol=1e-14
    )
    assert grid[0].item() == pytest.approx(1e3, rel=1e-14)
    assert grid[-1].item() == pytest.approx(1e-3, rel=1e-14)
