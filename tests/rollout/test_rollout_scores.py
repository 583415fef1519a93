"""score_rollout against hand computations, and its frame alignment."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from rollout_fakes import Drift, DriftOracle, Persistence, drift_pipeline

from engine.errors import ParameterError
from engine.metrics import EPS, SSR_EPS
from engine.rollout import RolloutConfig, reconstruct, rollout, score_rollout, truth_dataset

CHANNELS = ("tracer", "velocity_x", "velocity_y")


@pytest.fixture(scope="module")
def truth() -> xr.Dataset:
    return truth_dataset(Drift(), {"speed": 1.0}, seed=4, n_frames=8)


def test_perfect_prediction_scores_zero(truth):
    pipeline = drift_pipeline(DriftOracle(window=5))
    prediction = rollout(pipeline, truth.isel(time=[0]), {"speed": 1.0}, RolloutConfig(horizon=7))
    scores = score_rollout(prediction, truth)
    assert dict(scores.sizes) == {"field": 3, "time": 7, "metric": 6}
    assert scores["field"].values.tolist() == list(CHANNELS)
    assert scores["field_units"].values.tolist() == ["kg m-3", "m s-1", "m s-1"]
    assert scores["lead"].values.tolist() == list(range(1, 8))
    assert scores["frame"].values.tolist() == list(range(1, 8))
    for name in ("vrmse", "rmse", "nrmse", "spectral_low", "spectral_mid", "spectral_high"):
        np.testing.assert_allclose(scores[name].sel(field="tracer"), 0.0, atol=1e-5)
    np.testing.assert_allclose(scores["spread"], 0.0)
    assert "crps_fair" not in scores and "coverage_50" not in scores  # one member
    assert scores.attrs["members"] == 1 and scores.attrs["system"] == "drift"
    assert scores["vrmse"].attrs["units"] == "1"


def test_spatial_mean_prediction_has_vrmse_one(truth):
    target = truth.isel(time=slice(2, 6))
    mean = target.mean(dim=("x", "y")).broadcast_like(target)
    mean = mean.assign_coords(frame=target["frame"])
    scores = score_rollout(mean, truth)  # no member dim: one member, aligned on `frame`
    assert scores["frame"].values.tolist() == [2, 3, 4, 5]
    values = target["tracer"].values
    variance = values.var(axis=(1, 2))
    np.testing.assert_allclose(
        scores["vrmse"].sel(field="tracer"), np.sqrt(variance / (variance + EPS)), rtol=1e-5
    )
    np.testing.assert_allclose(scores["vrmse"].sel(field="tracer"), 1.0, atol=1e-4)
    np.testing.assert_allclose(scores["rmse"].sel(field="tracer"), np.sqrt(variance), rtol=1e-5)
    rms = np.sqrt((values**2).mean(axis=(1, 2)))
    np.testing.assert_allclose(
        scores["nrmse"].sel(field="tracer"), np.sqrt(variance) / rms, rtol=1e-5
    )
    # A spatially constant prediction has no power at any nonzero wavenumber: relative
    # power error 1 in every band, up to the metric's small regularising epsilon.
    for band in ("low", "mid", "high"):
        np.testing.assert_allclose(scores[f"spectral_{band}"].sel(field="tracer"), 1.0, atol=1e-2)


def test_two_member_scores_by_hand(truth):
    target = truth.isel(time=[3])
    a, b = target.copy(), target.copy()
    for name in CHANNELS:
        a[name] = target[name] * 0 + 1.0
        b[name] = target[name] * 0 + 3.0
    scores = score_rollout(xr.concat([a, b], dim="member"), truth)  # aligned on `frame`
    y = target["tracer"].values[0].astype(np.float64)
    crps = np.mean((np.abs(1 - y) + np.abs(3 - y)) / 2 - np.abs(1 - 3) / 2)
    np.testing.assert_allclose(scores["crps_fair"].sel(field="tracer"), [crps], rtol=1e-6)
    spread = np.sqrt(3 / 1 * 1.0)  # (K+1)/(K−1) · mean (v_k − m)², deviations ±1
    np.testing.assert_allclose(scores["spread"].sel(field="tracer"), [spread], rtol=1e-6)
    rmse = np.sqrt(np.mean((2 - y) ** 2))
    np.testing.assert_allclose(scores["rmse"].sel(field="tracer"), [rmse], rtol=1e-6)
    ssr = (spread + SSR_EPS) / (rmse + SSR_EPS)
    np.testing.assert_allclose(scores["ssr"].sel(field="tracer"), [ssr], rtol=1e-6)
    # two members: both central intervals are clamped to [min, max] = [1, 3]
    inside = np.mean((y >= 1) & (y <= 3))
    for name in ("coverage_50", "coverage_90"):
        np.testing.assert_allclose(scores[name].sel(field="tracer"), [inside], rtol=1e-6)
        assert scores[name].attrs["units"] == "1"
    assert scores.attrs["members"] == 2
    mean_vrmse = scores["mean_over_fields"].sel(metric="vrmse")
    np.testing.assert_allclose(mean_vrmse, scores["vrmse"].mean("field"), rtol=1e-6)


def test_alignment_follows_the_context_start(truth):
    """Persistence from truth frame s with c = 2 predicts truth frame s + 1 forever."""
    pipeline = drift_pipeline(Persistence(window=3))
    context = truth.isel(time=[2, 3])
    prediction = rollout(pipeline, context, {}, RolloutConfig(context=2, horizon=3))
    assert prediction["frame"].values.tolist() == [4, 5, 6]
    scores = score_rollout(prediction, truth)
    expected = [
        np.sqrt(np.mean((truth["tracer"].values[3] - truth["tracer"].values[f]) ** 2))
        for f in (4, 5, 6)
    ]
    np.testing.assert_allclose(scores["rmse"].sel(field="tracer"), expected, rtol=1e-6)
    # Declaring context start 0 instead re-aligns lead ℓ to truth frame 1 + ℓ.
    shifted = score_rollout(prediction, truth, context_start=0)
    assert shifted["frame"].values.tolist() == [2, 3, 4]
    assert float(shifted["rmse"].sel(field="tracer")[1]) == 0.0  # frame 3 is the context


def test_reconstruction_floor_scores_against_the_truth(truth):
    floor = reconstruct(drift_pipeline(Persistence(), latent=True), truth)
    scores = score_rollout(floor, truth)
    assert scores.sizes["time"] == 8
    np.testing.assert_allclose(scores["vrmse"], 0.0, atol=1e-6)


def test_misaligned_or_mismatched_inputs_are_refused(truth):
    pipeline = drift_pipeline(Persistence(window=5))
    prediction = rollout(pipeline, truth.isel(time=[5]), {}, RolloutConfig(horizon=4))
    with pytest.raises(ParameterError, match=r"truth frames='0\.\.7'.*frames 6\.\.9"):
        score_rollout(prediction, truth)
    with pytest.raises(ParameterError, match="velocity_x"):
        score_rollout(prediction, truth.drop_vars("velocity_x"))
    with pytest.raises(ParameterError, match="truth x size=8"):
        score_rollout(prediction, truth.isel(x=slice(0, 8)))
    with pytest.raises(ParameterError, match="context_start=-1"):
        score_rollout(prediction, truth, context_start=-1)
