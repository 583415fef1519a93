"""Deterministic scores and spectra against hand-computed and analytic cases."""

import math

import numpy as np
import pytest
import torch

from engine.metrics import (
    isotropic_power_spectrum,
    nrmse,
    rmse,
    spectral_band_edges,
    spectral_band_errors,
    vrmse,
)
from engine.metrics.spectrum import SPECTRUM_ABS_EPS, SPECTRUM_REL_EPS


def test_scores_match_hand_computation():
    truth = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (C=1, 2, 2)
    prediction = torch.tensor([[[1.0, 2.0], [3.0, 6.0]]])
    # squared errors 0, 0, 0, 4 -> mse 1
    assert rmse(prediction, truth).item() == pytest.approx(1.0)
    assert nrmse(prediction, truth).item() == pytest.approx(math.sqrt(1 / 7.5), rel=1e-6)
    # population variance of 1..4 is 1.25
    assert vrmse(prediction, truth).item() == pytest.approx(math.sqrt(1 / 1.25), rel=1e-5)


def test_vrmse_of_spatial_mean_is_one_and_keeps_leading_dims():
    truth = torch.randn(4, 3, 2, 16, 16)
    mean = truth.mean(dim=(-2, -1), keepdim=True).expand_as(truth)
    score = vrmse(mean, truth)
    assert score.shape == (4, 3, 2)
    torch.testing.assert_close(score, torch.ones_like(score), atol=1e-5, rtol=0)


def test_single_mode_lands_in_its_shell():
    n = 64
    x = torch.arange(n, dtype=torch.float64)
    field = torch.cos(2 * math.pi * 5 * x / n)[:, None] * torch.ones(1, n, dtype=torch.float64)
    wavenumbers, power = isotropic_power_spectrum(field)
    assert wavenumbers[4].item() == pytest.approx(5 / 64)
    assert int(power.argmax()) == 4
    # Parseval: all the energy of a band-limited field sits inside the Nyquist disc
    assert power.sum().item() == pytest.approx(field.square().sum().item(), rel=1e-9)


def test_spectrum_handles_rectangular_grids():
    field = torch.randn(3, 128, 32)
    wavenumbers, power = isotropic_power_spectrum(field)
    assert power.shape == (3, 16)
    np.testing.assert_allclose(wavenumbers.numpy(), np.arange(1, 17) / 32)


def test_band_errors_are_zero_for_truth_and_three_for_doubled_field():
    truth = torch.randn(2, 3, 64, 64)
    for value in spectral_band_errors(truth, truth).values():
        torch.testing.assert_close(value, torch.zeros_like(value), atol=1e-6, rtol=0)
    # doubling the field quadruples the power: per shell (1 - (4P + e)/(P + e))^2 =
    # (3P / (P + e))^2, i.e. 9 up to the relative eps e (1e-3 of the mean shell power)
    wavenumbers, power = isotropic_power_spectrum(truth)
    eps = SPECTRUM_REL_EPS * power.mean(dim=-1, keepdim=True) + SPECTRUM_ABS_EPS
    per_shell = (3 * power / (power + eps)).square()
    edges = spectral_band_edges(wavenumbers)
    bands = spectral_band_errors(2 * truth, truth)
    low = (wavenumbers >= edges[0] - 1e-12) & (wavenumbers < edges[1] - 1e-12)
    torch.testing.assert_close(bands["low"], per_shell[..., low].mean(-1).sqrt(), rtol=1e-5, atol=0)
    for value in bands.values():
        torch.testing.assert_close(value, torch.full_like(value, 3.0), atol=0.1, rtol=0)


def test_band_errors_average_member_spectra():
    truth = torch.randn(3, 32, 32)
    members = torch.stack([truth, 3 * truth])  # mean power (1 + 9) / 2 = 5x
    bands = spectral_band_errors(members, truth, member_dim=0)
    torch.testing.assert_close(bands["mid"], torch.full((3,), 4.0), atol=0.1, rtol=0)


def test_band_errors_stay_finite_where_the_truth_has_no_power():
    # a dealiased truth: power only at |k| <= 8 of 32 shells; the prediction adds noise
    truth = torch.fft.irfft2(torch.fft.rfft2(torch.randn(64, 64)) * _low_pass(64, 8), s=(64, 64))
    noisy = truth + 0.1 * truth.std() * torch.randn(64, 64)
    bands = spectral_band_errors(noisy, truth)
    assert torch.isfinite(bands["high"]) and bands["high"] > 1.0  # spurious power is penalised
    assert bands["low"] < 0.1


def _low_pass(n: int, cutoff: int) -> torch.Tensor:
    k = torch.fft.fftfreq(n) * n
    ky = torch.fft.rfftfreq(n) * n
    return ((k[:, None] ** 2 + ky[None, :] ** 2) <= cutoff**2).to(torch.complex64)


def test_band_edges_are_log2_spaced_to_nyquist():
    edges = spectral_band_edges(torch.arange(1, 33, dtype=torch.float64) / 64)
    ratios = edges[1:] / edges[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, ratios[0].item()))
    assert edges[0].item() == pytest.approx(1 / 64) and edges[-1].item() == pytest.approx(0.5)


def test_band_errors_of_a_uniform_truth_are_finite():
    truth = torch.full((2, 32, 32), 3.0)
    for value in spectral_band_errors(truth, truth).values():
        torch.testing.assert_close(value, torch.zeros_like(value))
