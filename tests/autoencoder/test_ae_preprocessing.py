"""Preprocessing: statistics against direct numpy computations, exact inversion, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.errors import ParameterError
from engine.preprocessing import (
    Preprocessing,
    default_log_channels,
    fit_preprocessing,
)

EULER = ("energy", "density", "pressure", "momentum_x", "momentum_y")
LOGGED = ("energy", "density", "pressure")


def euler_like(seed: int = 0, shape=(3, 4)) -> np.ndarray:
    """(N, T, 5, 16, 16): positive, skewed energy/density/pressure, signed momenta."""
    rng = np.random.default_rng(seed)
    positive = rng.lognormal(mean=0.0, sigma=1.0, size=(*shape, 3, 16, 16))
    momenta = rng.normal(0.3, 2.0, size=(*shape, 2, 16, 16))
    return np.concatenate([5 * positive, momenta], axis=2)


def test_fit_matches_numpy_on_transformed_values():
    data = euler_like()
    prep = fit_preprocessing(data, EULER, LOGGED)
    transformed = data.copy()
    transformed[:, :, :3] = np.log1p(transformed[:, :, :3])
    np.testing.assert_allclose(prep.mean, transformed.mean(axis=(0, 1, 3, 4)), rtol=1e-12)
    np.testing.assert_allclose(prep.std, transformed.std(axis=(0, 1, 3, 4)), rtol=1e-12)
    assert prep.log_channels == LOGGED


def test_streamed_chunks_give_the_same_statistics():
    data = euler_like()
    whole = fit_preprocessing(data, EULER, LOGGED)
    chunks = (torch.from_numpy(trajectory) for trajectory in data)
    streamed = fit_preprocessing(chunks, EULER, LOGGED)
    np.testing.assert_allclose(streamed.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.std, whole.std, rtol=1e-12)


def test_fit_is_accurate_for_a_large_offset():
    """float64 and pairwise merging: no cancellation when mean >> std."""
    rng = np.random.default_rng(1)
    data = 1e6 + 1e-2 * rng.standard_normal((8, 1, 1, 32, 32))
    prep = fit_preprocessing(iter(data), ("x",))
    np.testing.assert_allclose(prep.std[0], data.std(), rtol=1e-6)


def test_forward_is_log1p_then_zscore():
    data = euler_like()
    prep = fit_preprocessing(data, EULER, LOGGED)
    x = torch.from_numpy(data[0]).float()  # (T, C, X, Y)
    y = prep.forward(x)
    for c, name in enumerate(EULER):
        raw = x[:, c].double()
        expected = torch.log1p(raw) if name in LOGGED else raw
        expected = (expected - prep.mean[c]) / prep.std[c]
        torch.testing.assert_close(y[:, c].double(), expected, rtol=1e-5, atol=1e-5)
    # On the data it was fitted on, every channel comes out standardised.
    z = prep.forward(torch.from_numpy(data))
    torch.testing.assert_close(z.mean(dim=(0, 1, 3, 4)), torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(
        z.std(dim=(0, 1, 3, 4), correction=0), torch.ones(5, dtype=torch.float64)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(5, 16, 16), (2, 5, 16, 16), (2, 3, 5, 16, 16)])
def test_inverse_undoes_forward(dtype, shape):
    prep = fit_preprocessing(euler_like(), EULER, LOGGED)
    x = torch.from_numpy(euler_like(seed=2)[0, 0]).to(dtype).expand(*shape).clone()
    before = x.clone()
    back = prep.inverse(prep.forward(x))
    assert back.dtype == dtype
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(back, x, **tolerance)
    torch.testing.assert_close(x, before, rtol=0, atol=0)  # inputs are never modified


def test_round_trip_without_log_channels():
    prep = Preprocessing(
        ("vorticity", "velocity_x", "velocity_y"), (0.1, -2.0, 3.0), (4.0, 0.5, 2.0)
    )
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(prep.inverse(prep.forward(x)), x, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(prep.forward(x)[:, 1], (x[:, 1] + 2.0) / 0.5)


def test_from_stats_reads_the_wells_layout():
    stats = {
        "mean": {"buoyancy": 0.5, "pressure": 0.0, "velocity": [0.1, -0.2]},
        "std": {"buoyancy": 0.3, "pressure": 2.0, "velocity": [1.5, 2.5]},
    }
    names = ("buoyancy", "pressure", "velocity_x", "velocity_y")
    prep = Preprocessing.from_stats(stats, names)
    assert prep.mean == (0.5, 0.0, 0.1, -0.2)
    assert prep.std == (0.3, 2.0, 1.5, 2.5)
    assert prep.log_channels == ()
    with pytest.raises(ParameterError, match="vorticity"):
        Preprocessing.from_stats(stats, ("vorticity",))
    with pytest.raises(ParameterError, match="one number"):
        Preprocessing.from_stats({"mean": {"b": [1, 2]}, "std": {"b": [1, 2]}}, ("b",))


def test_json_round_trip():
    prep = fit_preprocessing(euler_like(), EULER, LOGGED)
    restored = Preprocessing.from_dict(json.loads(json.dumps(prep.to_dict())))
    assert restored == prep
    x = torch.from_numpy(euler_like(seed=3)[0]).float()
    torch.testing.assert_close(restored.forward(x), prep.forward(x), rtol=0, atol=0)


def test_default_log_channels_follow_the_paper():
    assert default_log_channels("euler_quadrants") == LOGGED
    assert default_log_channels("rayleigh_benard") == ()
    assert default_log_channels("kolmogorov") == ()


def test_bad_input_is_refused():
    data = euler_like()
    with pytest.raises(ParameterError, match="log channel momentum_x"):  # signed field
        fit_preprocessing(data, EULER, ("energy", "momentum_x"))
    with pytest.raises(ParameterError, match="log channel energy"):
        bad = data.copy()
        bad[0, 0, 0, 0, 0] = 0.0
        fit_preprocessing(bad, EULER, LOGGED)
    with pytest.raises(ParameterError, match="temperature"):
        fit_preprocessing(data, EULER, ("temperature",))
    with pytest.raises(ParameterError, match="non-finite"):
        bad = data.copy()
        bad[0, 0, 4, 0, 0] = np.nan
        fit_preprocessing(bad, EULER)
    with pytest.raises(ParameterError, match="std of momentum_x"):
        constant = data.copy()
        constant[:, :, 3] = 2.0
        fit_preprocessing(constant, EULER)
    with pytest.raises(ParameterError, match="at least one frame"):
        fit_preprocessing(iter([]), EULER)
    prep = fit_preprocessing(data, EULER, LOGGED)
    with pytest.raises(ParameterError, match="energy, density"):
        prep.forward(torch.zeros(2, 4, 8, 8))
