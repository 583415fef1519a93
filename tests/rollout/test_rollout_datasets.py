"""xarray outputs: rollout, truth and reconstruction datasets (dims, coords, CF attributes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr
from rollout_fakes import SKEWED, Drift, GaussianDiffusion, Persistence, drift_pipeline

from engine.errors import ParameterError
from engine.rollout import (
    RolloutConfig,
    reconstruct,
    rollout,
    stream_truth,
    truth_dataset,
)


def test_rollout_dataset_layout_and_metadata(tmp_path):
    truth = truth_dataset(Drift(), {"speed": 3.0}, seed=1, n_frames=6)
    pipeline = drift_pipeline(GaussianDiffusion(window=4), SKEWED, latent=True)
    config = RolloutConfig(
        members=2,
        context=2,
        horizon=5,
        sampler="ab",
        steps=2,
        sampler_options={"order": 2},
        seed=11,
    )
    ds = rollout(pipeline, truth.isel(time=slice(1, 3)), {"speed": 3.0}, config)

    assert dict(ds.sizes) == {"member": 2, "time": 5, "x": 16, "y": 16}
    assert list(ds.data_vars) == ["tracer", "velocity_x", "velocity_y"]
    for name in ds.data_vars:
        assert ds[name].dims == ("member", "time", "x", "y")
        assert ds[name].dtype == np.float32
    assert ds["tracer"].attrs == {"long_name": "tracer density", "units": "kg m-3"}
    assert ds["velocity_y"].attrs == {
        "long_name": "drift velocity, y component",
        "units": "m s-1",
    }
    assert ds["member"].attrs["standard_name"] == "realization"
    assert ds["member"].values.tolist() == [0, 1]
    np.testing.assert_allclose(ds["time"].values, 0.5 * np.arange(1, 6))
    assert ds["time"].attrs["axis"] == "T"
    assert ds["lead"].values.tolist() == [1, 2, 3, 4, 5]
    # The context was truth frames 1, 2 (taken from the Dataset's frame coordinate).
    assert ds["frame"].values.tolist() == [3, 4, 5, 6, 7]
    np.testing.assert_array_equal(ds["x"].values, truth["x"].values)
    np.testing.assert_allclose(ds["y"].values, (np.arange(16) + 0.5) * 2.0 / 16)
    assert ds["x"].attrs["axis"] == "X" and ds["y"].attrs["axis"] == "Y"

    attrs = ds.attrs
    assert attrs["Conventions"] == "CF-1.11"
    assert (attrs["system"], attrs["rate"], attrs["emulator_kind"]) == ("drift", 1, "diffusion")
    assert (attrs["emulator_space"], attrs["sampler"], attrs["steps"]) == ("latent", "ab", 2)
    assert json.loads(attrs["sampler_options"]) == {"order": 2}
    assert (attrs["members"], attrs["context"], attrs["seed"]) == (2, 2, 11)
    assert (attrs["context_start"], attrs["horizon"], attrs["complete"]) == (1, 5, 1)
    assert json.loads(attrs["conditions"]) == {"speed": 3.0, "axis": "x"}  # default filled
    assert attrs["out_of_training_range"] == ""
    assert attrs["coercions"] == ""
    assert attrs["nfe"] == 3 * 2  # L − c = 2 frames per call: 3 calls of 2 steps each

    path = tmp_path / "rollout.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        xr.testing.assert_identical(back.load(), ds)


def test_deterministic_and_pixel_metadata():
    pipeline = drift_pipeline(Persistence(window=5))
    frames = 1 + torch.rand(1, 3, 16, 16)
    ds = rollout(pipeline, frames, {"speed": 3.9}, RolloutConfig(members=4, horizon=2))
    assert ds.sizes["member"] == 1
    assert ds.attrs["rate"] == "pixel" and ds.attrs["emulator_space"] == "pixel"
    assert (ds.attrs["sampler"], ds.attrs["steps"]) == ("none", 0)
    assert ds.attrs["coercions"].startswith("members 4 -> 1")
    assert ds.attrs["out_of_training_range"] == "speed"  # 3.9 is valid but untrained
    assert ds.attrs["context_start"] == 0 and ds["frame"].values.tolist() == [1, 2]


def test_truth_dataset_matches_the_solver_and_streams_with_progress():
    system = Drift()
    conditions = {"speed": 1.0, "axis": "y"}
    ds = truth_dataset(system, conditions, seed=5, n_frames=4)
    expected = system.simulate([conditions], [5], n_frames=4)[0]  # (T, C, X, Y)
    assert dict(ds.sizes) == {"time": 4, "x": 16, "y": 16}
    for index, name in enumerate(system.spec.channel_names):
        assert ds[name].dims == ("time", "x", "y")
        np.testing.assert_array_equal(ds[name].values, expected[:, index].numpy())
    np.testing.assert_allclose(ds["time"].values, [0.0, 0.5, 1.0, 1.5])
    assert ds["frame"].values.tolist() == [0, 1, 2, 3]
    assert ds["tracer"].attrs["units"] == "kg m-3"
    assert (ds.attrs["system"], ds.attrs["seed"], ds.attrs["complete"]) == ("drift", 5, 1)
    assert json.loads(ds.attrs["conditions"]) == conditions

    system = Drift()
    stream = stream_truth(system, conditions, seed=5, n_frames=10)
    progress = [next(stream).progress for _ in range(3)]
    assert progress == pytest.approx([0.1, 0.2, 0.3])
    assert system.advances == 2  # frame 0 needs no step
    stream.close()
    assert system.advances == 2
    partial = stream.dataset()
    assert partial.sizes["time"] == 3 and partial.attrs["complete"] == 0
    np.testing.assert_array_equal(partial["tracer"].values, ds["tracer"].values[:3])


def test_truth_by_name_and_bad_inputs():
    with pytest.raises(ParameterError, match="n_frames=0"):
        stream_truth(Drift(), {}, seed=0, n_frames=0)
    with pytest.raises(ParameterError, match="seed=-3"):
        stream_truth(Drift(), {}, seed=-3, n_frames=2)
    with pytest.raises(ParameterError, match="speed=-1"):
        stream_truth(Drift(), {"speed": -1}, seed=0, n_frames=2)
    with pytest.raises(ParameterError, match="grid"):
        stream_truth(Drift(), {}, grid=(32, 32))


def test_reconstruction_is_the_round_trip_through_the_pipeline():
    truth = truth_dataset(Drift(), {"speed": 2.0}, seed=2, n_frames=3)
    pipeline = drift_pipeline(Persistence(), SKEWED, latent=True)
    floor = reconstruct(pipeline, truth)
    assert floor.sizes == truth.sizes
    for name in truth.data_vars:
        assert floor[name].attrs == truth[name].attrs
        np.testing.assert_allclose(floor[name].values, truth[name].values, rtol=1e-5, atol=1e-6)
    assert floor.attrs["rate"] == 1 and floor.attrs["system"] == "drift"
    assert floor.attrs["title"].endswith("reconstructed")

    class Halving(torch.nn.Module):
        """A lossy 'autoencoder' stand-in: latents are half the frames."""

        config = pipeline.autoencoder.config

        def encode(self, x):
            return torch.nn.functional.pixel_unshuffle(x, 2) / 2

        def decode(self, z):
            return torch.nn.functional.pixel_shuffle(z, 2)

    pipeline.autoencoder = Halving()
    lossy = reconstruct(pipeline, truth)
    # decode(encode(x)) = x/2 in preprocessed units: log1p(tracer) ↦ (log1p(t) − μ)/σ.
    mean, std = SKEWED.mean[0], SKEWED.std[0]
    z = (np.log1p(truth["tracer"].values) - mean) / std
    np.testing.assert_allclose(lossy["tracer"].values, np.expm1(z / 2 * std + mean), rtol=1e-5)
