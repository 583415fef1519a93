"""Isotropic power spectra and the paper's low/mid/high band errors.

Wavenumbers are in cycles per pixel, so grids of different sizes share one axis; shells
have the width of the coarsest axis' frequency step and stop at Nyquist (0.5).
"""

from __future__ import annotations

import math

import torch

# The paper's per-shell error (1 - (P_pred + eps)/(P_true + eps))^2 with a tiny absolute
# eps explodes on shells where the truth has no power at all (spectral solvers dealias:
# Kolmogorov's top third of shells is exactly zero). eps is therefore relative: this
# fraction of the truth's mean shell power, per field. Spurious power in a dead shell is
# still penalised heavily (1% of the mean power there scores (1 - 10)^2 = 81).
SPECTRUM_REL_EPS = 1e-3
SPECTRUM_ABS_EPS = 1e-12  # a spatially uniform truth has no power at all: avoid 0/0


def _shell_index(shape: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, int]:
    nx, ny = shape
    kx = torch.fft.fftfreq(nx, device=device, dtype=torch.float64)
    ky = torch.fft.fftfreq(ny, device=device, dtype=torch.float64)
    radius = torch.sqrt(kx[:, None] ** 2 + ky[None, :] ** 2)
    width = 1.0 / min(nx, ny)
    index = torch.round(radius / width).long()
    n_bins = min(nx, ny) // 2
    return index, n_bins


def isotropic_power_spectrum(field: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Power summed over shells of |k|: returns (wavenumbers (K,), power (..., K)).

    The orthonormal FFT makes the power inside the Nyquist disc equal to the energy of
    the field's band-limited part (Parseval), so spectra of different resolutions are
    comparable. The mean (k = 0) and the corners beyond Nyquist are left out.
    """
    shape = (field.shape[-2], field.shape[-1])
    power = torch.fft.fft2(field.to(torch.float64), norm="ortho").abs().square()
    index, n_bins = _shell_index(shape, field.device)
    flat_power = power.flatten(-2)
    flat_index = index.flatten().clamp(max=n_bins + 1)
    shells = torch.zeros(
        *flat_power.shape[:-1], n_bins + 2, dtype=torch.float64, device=field.device
    )
    shells.index_add_(-1, flat_index, flat_power)
    wavenumbers = torch.arange(1, n_bins + 1, dtype=torch.float64) / min(shape)
    return wavenumbers, shells[..., 1 : n_bins + 1].to(field.dtype)


def spectral_band_edges(wavenumbers: torch.Tensor, n_bands: int = 3) -> torch.Tensor:
    """Edges log2-spaced from the first shell to Nyquist (the paper's low/mid/high)."""
    first = float(wavenumbers[0])
    return torch.tensor(
        [
            2 ** (math.log2(first) + i * (math.log2(0.5) - math.log2(first)) / n_bands)
            for i in range(n_bands + 1)
        ],
        dtype=torch.float64,
    )


def spectral_band_errors(
    prediction: torch.Tensor, truth: torch.Tensor, member_dim: int | None = None
) -> dict[str, torch.Tensor]:
    """RMS of the per-shell relative power error (1 - P_pred/P_true)^2 in each band.

    With `member_dim`, predicted spectra are averaged over ensemble members first.
    Returns {"low", "mid", "high"} each shaped like the input without (member,) X, Y.
    """
    wavenumbers, predicted = isotropic_power_spectrum(prediction)
    if member_dim is not None:
        predicted = predicted.mean(dim=member_dim)
    _, true_power = isotropic_power_spectrum(truth)
    eps = SPECTRUM_REL_EPS * true_power.mean(dim=-1, keepdim=True) + SPECTRUM_ABS_EPS
    ratio = (predicted + eps) / (true_power + eps)
    error = (1 - ratio).square()
    edges = spectral_band_edges(wavenumbers)
    bands = {}
    for name, lo, hi in zip(("low", "mid", "high"), edges[:-1], edges[1:], strict=True):
        inside = (wavenumbers >= lo - 1e-12) & (wavenumbers < hi - 1e-12)
        if name == "high":
            inside |= wavenumbers >= hi - 1e-12
        bands[name] = error[..., inside].mean(dim=-1).sqrt()
    return bands
