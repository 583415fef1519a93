"""Pipeline: construction checks, encode/decode, and loading real (untrained) model files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from rollout_fakes import IDENTITY, SKEWED, Drift, Persistence, UnshuffleAutoencoder

from engine.autoencoder import Autoencoder, AutoencoderConfig
from engine.emulator import BackboneConfig, LabelSpec, build_emulator, save_emulator
from engine.errors import DataFormatError, ParameterError
from engine.model_files import load_model_card, save_autoencoder
from engine.pipeline import Pipeline
from engine.preprocessing import Preprocessing
from engine.rollout import RolloutConfig, reconstruct, rollout, score_rollout, truth_dataset
from engine.systems import get_system

# -- construction ------------------------------------------------------------------------


def test_encode_decode_round_trip_and_shapes():
    autoencoder = UnshuffleAutoencoder()
    pipeline = Pipeline(Drift().spec, SKEWED, Persistence(space="latent"), autoencoder, "cpu")
    assert pipeline.model_shape == (12, 8, 8) and pipeline.rate == 1.0
    frames = 1 + torch.rand(2, 5, 3, 16, 16)
    latents = pipeline.encode(frames)
    assert latents.shape == (2, 5, 12, 8, 8)
    expected = torch.nn.functional.pixel_unshuffle(SKEWED.forward(frames).flatten(0, 1), 2)
    np.testing.assert_allclose(latents.flatten(0, 1).numpy(), expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(pipeline.decode(latents).numpy(), frames.numpy(), rtol=1e-5)
    with pytest.raises(ParameterError, match=r"frames shape=\(5, 3, 8, 8\).*\(\.\.\., 3, 16, 16\)"):
        pipeline.encode(frames[0, :, :, :8, :8])
    with pytest.raises(ParameterError, match=r"\(\.\.\., 12, 8, 8\)"):
        pipeline.decode(frames)


def test_pixel_pipeline_has_no_rate():
    pipeline = Pipeline(Drift().spec, IDENTITY, Persistence(space="pixel"), device="cpu")
    assert pipeline.model_shape == (3, 16, 16) and pipeline.rate is None
    assert pipeline.describe()["rate"] == "pixel"
    label = pipeline.label({"speed": 3.0, "axis": "y"})
    assert label.tolist() == [1.0, 0.0, 1.0]  # speed range [1, 3] -> [-1, 1], one-hot y


@pytest.mark.parametrize(
    ("space", "autoencoder", "preprocessing", "match"),
    [
        ("latent", None, IDENTITY, "autoencoder=None.*latent emulator"),
        ("pixel", UnshuffleAutoencoder(), IDENTITY, "autoencoder=.*None for a pixel"),
        ("pixel", None, Preprocessing(("a", "b", "c"), (0,) * 3, (1,) * 3), "channels"),
        ("sideways", None, IDENTITY, "emulator.space='sideways'.*latent, pixel"),
    ],
)
def test_inconsistent_parts_are_refused(space, autoencoder, preprocessing, match):
    emulator = Persistence(space=space)
    with pytest.raises(ParameterError, match=match):
        Pipeline(Drift().spec, preprocessing, emulator, autoencoder)


def test_autoencoder_must_fit_the_frames():
    autoencoder = UnshuffleAutoencoder()
    autoencoder.config = AutoencoderConfig(
        in_channels=4, latent_channels=16, widths=(4, 4), blocks_per_level=0
    )
    with pytest.raises(ParameterError, match="4 channels"):
        Pipeline(Drift().spec, IDENTITY, Persistence(space="latent"), autoencoder)
    emulator = Persistence(window=1)
    with pytest.raises(ParameterError, match=r"emulator\.window=1"):
        Pipeline(Drift().spec, IDENTITY, emulator)


# -- model files -------------------------------------------------------------------------
GRID = (16, 16)
BACKBONE = BackboneConfig(width=12, depth=1, heads=2, cond_dim=8, window=3)


def save_tiny_autoencoder(directory, name: str, seed: int, system: str = "kolmogorov"):
    spec = get_system(system, GRID).spec
    channels = spec.channel_names
    config = AutoencoderConfig(
        in_channels=len(channels),
        latent_channels=2,
        widths=(4, 8),
        blocks_per_level=0,
        periodic=(True, True),
    )
    torch.manual_seed(seed)
    preprocessing = Preprocessing(channels, (0.1,) * len(channels), (2.0,) * len(channels))
    rate = len(channels) * 4 / 2  # x2 spatial factor, 2 latent channels
    return save_autoencoder(
        directory, name, Autoencoder(config), preprocessing, system=system, grid=GRID, rate=rate
    )


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A Kolmogorov autoencoder, a second one, latent and pixel emulators, an RB autoencoder."""
    directory = tmp_path_factory.mktemp("models")
    spec = get_system("kolmogorov", GRID).spec
    paths = {
        "ae": save_tiny_autoencoder(directory, "ae", seed=0),
        "other_ae": save_tiny_autoencoder(directory, "other_ae", seed=1),
        "rb_ae": save_tiny_autoencoder(directory, "rb_ae", seed=2, system="rayleigh_benard"),
    }
    torch.manual_seed(3)
    latent = build_emulator("diffusion", BACKBONE, 2, (8, 8), 1, "latent")
    paths["latent"] = save_emulator(
        directory, "latent", latent, system=spec, autoencoder=load_model_card(paths["ae"])
    )
    pixel = build_emulator(
        "deterministic", BackboneConfig(**{**BACKBONE.to_dict(), "patch": 4}), 3, GRID, 1, "pixel"
    )
    preprocessing = Preprocessing(spec.channel_names, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    paths["pixel"] = save_emulator(
        directory, "pixel", pixel, system=spec, preprocessing=preprocessing, frame_stride=2
    )
    return paths


def test_latent_pair_loads_and_rolls_out(model_files):
    pipeline = Pipeline.load(model_files["latent"], model_files["ae"], device="cpu")
    assert (pipeline.kind, pipeline.space, pipeline.window) == ("diffusion", "latent", 3)
    assert pipeline.rate == 6.0 and pipeline.model_shape == (2, 8, 8)
    assert pipeline.label_spec == LabelSpec.from_system(pipeline.spec)
    assert pipeline.spec.name == "kolmogorov" and pipeline.spec.grid.shape == GRID

    conditions = {"Reynolds": 300.0}
    truth = truth_dataset("kolmogorov", conditions, seed=1, n_frames=5, grid=GRID)
    config = RolloutConfig(members=2, horizon=3, sampler="euler", steps=2)
    ds = rollout(pipeline, truth.isel(time=[1]), conditions, config)
    assert dict(ds.sizes) == {"member": 2, "time": 3, "x": 16, "y": 16}
    assert list(ds.data_vars) == ["vorticity", "velocity_x", "velocity_y"]
    assert all(np.isfinite(ds[name].values).all() for name in ds.data_vars)
    assert (ds.attrs["emulator"], ds.attrs["autoencoder"], ds.attrs["rate"]) == ("latent", "ae", 6)
    assert ds.attrs["nfe"] == 2 * 2  # 2 new frames per call: 2 calls of 2 Euler steps
    assert json.loads(ds.attrs["conditions"]) == conditions

    # The whole chain on real parts: scores of the rollout and of the reconstruction floor.
    scores = score_rollout(ds, truth)
    floor = score_rollout(reconstruct(pipeline, truth), truth)
    assert scores["frame"].values.tolist() == [2, 3, 4]
    assert dict(floor.sizes) == {"field": 3, "time": 5, "metric": 6}
    for result in (scores, floor):
        assert all(np.isfinite(result[name].values).all() for name in result.data_vars)
    assert float(scores["spread"].min()) > 0  # two diffusion members differ


def test_pixel_emulator_loads_alone_and_honours_its_frame_stride(model_files):
    pipeline = Pipeline.load(model_files["pixel"], device="cpu")
    assert (pipeline.kind, pipeline.space, pipeline.frame_stride) == ("deterministic", "pixel", 2)
    assert pipeline.autoencoder is None
    ds = rollout(pipeline, torch.randn(1, 3, *GRID), {}, RolloutConfig(members=2, horizon=3))
    assert ds.sizes["member"] == 1 and ds.attrs["coercions"].startswith("members 2 -> 1")
    # One emulator step is 2 stored frames of 0.2 time units each.
    np.testing.assert_allclose(ds["time"].values, [0.4, 0.8, 1.2])
    assert ds["frame"].values.tolist() == [2, 4, 6]


def test_mismatched_model_files_are_refused_naming_both(model_files):
    with pytest.raises(ParameterError, match=r"autoencoder_path=None.*latent\.json"):
        Pipeline.load(model_files["latent"], device="cpu")
    with pytest.raises(ParameterError, match=r"other_ae\.json.*latent\.json.*trained"):
        Pipeline.load(model_files["latent"], model_files["other_ae"], device="cpu")
    with pytest.raises(ParameterError, match=r"ae\.json.*None: .*pixel\.json is a pixel-space"):
        Pipeline.load(model_files["pixel"], model_files["ae"], device="cpu")
    with pytest.raises(ParameterError, match=r"rb_ae\.json \(system rayleigh_benard\).*kolmogorov"):
        Pipeline.load(model_files["latent"], model_files["rb_ae"], device="cpu")
    with pytest.raises(DataFormatError, match=r"ae\.json.*kind='autoencoder'.*'emulator'"):
        Pipeline.load(model_files["ae"], model_files["ae"], device="cpu")
