"""The fixed linear (DCT) reference code, against scipy's DCT-II as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.fft import dctn, idctn

from engine.autoencoder.linear_code import LowFrequencyCode, dct_matrix, lowest_frequencies
from engine.errors import ParameterError


def test_dct_matrix_is_scipys_orthonormal_dct_ii():
    signal = np.random.default_rng(0).normal(size=(12, 8))
    ours = dct_matrix(12) @ torch.from_numpy(signal) @ dct_matrix(8).T
    np.testing.assert_allclose(ours.numpy(), dctn(signal, type=2, norm="ortho"), atol=1e-12)


def test_code_keeps_exactly_the_lowest_coefficients_per_channel():
    rng = np.random.default_rng(1)
    frames = rng.normal(size=(3, 5, 16, 16))
    code = LowFrequencyCode(5, (16, 16), rate=80)  # 1280 values / 80 = 16 values = 3 / channel
    assert code.coefficients_per_channel == 3 and code.rate == pytest.approx(1280 / 15)
    assert code.mask.nonzero().tolist() == [[0, 0], [0, 1], [1, 0]]
    expected = dctn(frames, type=2, norm="ortho", axes=(-2, -1)) * code.mask.numpy()
    expected = idctn(expected, type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(code(torch.from_numpy(frames)).numpy(), expected, atol=1e-12)


def test_code_reproduces_fields_inside_its_band_and_all_fields_at_rate_one():
    x = torch.arange(16, dtype=torch.float64)
    smooth = torch.cos(torch.pi * (2 * x[:, None] + 1) / 32) + 0 * x[None, :]  # kx = 1 only
    frames = smooth.expand(2, 1, 16, 16).clone()
    torch.testing.assert_close(LowFrequencyCode(1, (16, 16), rate=64)(frames), frames)
    noise = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(LowFrequencyCode(3, (16, 16), rate=1)(noise), noise)


def test_bad_rates_and_grids_are_refused():
    with pytest.raises(ParameterError, match="rate"):
        LowFrequencyCode(2, (8, 8), rate=1000)
    with pytest.raises(ParameterError, match="coefficients per channel"):
        lowest_frequencies((4, 4), 17)
    with pytest.raises(ParameterError, match="frame grid"):
        LowFrequencyCode(1, (8, 8), rate=4)(torch.zeros(1, 1, 8, 4))
