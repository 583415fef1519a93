"""Tiny emulators learn a tiny dynamical system through the shared Trainer; then
`latentsim train-emulator` end to end (second half of this file).

The data (emulator_tiny.py) translate random frames one cell per frame on a periodic
4x4 grid. Persistence (repeating the last context frame) has a mean squared error of
about 2 there, predicting zeros about 1. The models must get far below both on held-out
trajectories, i.e. have learned the rule (a space-time diagonal in attention), not the
training set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from emulator_tiny import CHANNELS, GRID, TINY, translating_trajectories

from engine.cli import main
from engine.data.generate import generate_dataset
from engine.data.well_reader import load_array
from engine.diffusion import get_sampler
from engine.emulator import Emulator, WindowSource, build_emulator, emulator_loss
from engine.errors import LatentsimError, ParameterError
from engine.latents import encode_frames
from engine.model_files import load_autoencoder, model_paths
from engine.pipeline import Pipeline
from engine.rollout import RolloutConfig, rollout
from engine.stages.autoencoder import train_autoencoder
from engine.stages.emulator import (
    RECIPES,
    EvaluationRollouts,
    check_autoencoder,
    latent_space,
    train_emulator,
)
from engine.systems import get_system
from engine.training import TrainConfig, Trainer, list_checkpoints


def _train(kind: str, steps: int, lr: float, label_sets_direction: bool, run_dir) -> Emulator:
    trajectories, labels = translating_trajectories(
        64, 8, seed=0, label_sets_direction=label_sets_direction
    )
    torch.manual_seed(0)
    model = build_emulator(kind, TINY, CHANNELS, GRID, 1, "latent")
    config = TrainConfig(
        steps=steps,
        batch_size=32,
        lr=lr,
        warmup_steps=10,
        checkpoint_every=0,
        log_every=50,
        seed=0,
        device="cpu",
    )
    source = WindowSource(trajectories, labels, window=TINY.window)
    result = Trainer(model, emulator_loss, source, config, run_dir, progress=False).fit()
    assert result.step == steps and result.skipped_steps == 0
    return model.eval()


def _errors(model: Emulator, label_sets_direction: bool, flip_labels: bool = False):
    """(model MSE, persistence MSE) over held-out trajectories, for contexts 1 and 2."""
    trajectories, labels = translating_trajectories(
        32, 5, seed=1, label_sets_direction=label_sets_direction
    )
    if flip_labels:
        labels = -labels
    results = []
    for frames in (1, 2):
        context, target = trajectories[:, :frames], trajectories[:, frames:]
        options = {}
        if model.kind == "diffusion":
            options = {
                "sampler": get_sampler("ab", steps=8, order=3),
                "generator": torch.Generator().manual_seed(0),
            }
        with torch.inference_mode():
            prediction = model.generate(context, labels, **options)
        persistence = (context[:, -1:] - target).square().mean().item()
        results.append(((prediction - target).square().mean().item(), persistence))
    return results


@pytest.mark.slow
def test_deterministic_emulator_learns_label_dependent_translation(tmp_path):
    """Measured: MSE 0.014 / 0.022 (contexts 1 / 2) against persistence 1.6 / 2.1 after 120
    steps, about 4 s (0.002-0.004 after 200); with the labels flipped (the other direction)
    the error is as bad as persistence, 1.6 / 1.4: the label is what sets the direction."""
    model = _train("deterministic", 120, 1e-2, True, tmp_path)
    for mse, persistence in _errors(model, True):
        print(f"deterministic: mse {mse:.4f}, persistence {persistence:.4f}")
        assert persistence > 1.4
        assert mse < 0.05 * persistence
    for mse, persistence in _errors(model, True, flip_labels=True):
        print(f"deterministic, flipped labels: mse {mse:.4f}")
        assert mse > 0.5 * persistence


@pytest.mark.slow
def test_diffusion_emulator_learns_translation(tmp_path):
    """Measured: MSE 0.048 / 0.041 (contexts 1 / 2) against persistence 1.7 / 2.2 after 200
    steps, about 5 s (0.003 after 300), each member drawn with 8 AB3 steps."""
    model = _train("diffusion", 200, 5e-3, False, tmp_path)
    for mse, persistence in _errors(model, False):
        print(f"diffusion: mse {mse:.4f}, persistence {persistence:.4f}")
        assert persistence > 1.4
        assert mse < 0.1 * persistence


# ------------------------------------------------------------------ latentsim train-emulator
# End to end on a tiny generated Kolmogorov dataset (3 / 2 / 2 trajectories of 8 frames), a
# tiny rate-192 autoencoder (4 x 4 x 4 latents) trained for a few steps, and emulators
# with a narrow one-block backbone: the checks are about the command (pairing, data,
# resume, scores), not about learning, which the tests above cover.

STEPS = 6
TINY_BACKBONE = {"width": 32, "depth": 1, "heads": 2, "cond_dim": 32}
FAST_TEST = EvaluationRollouts(trajectories=4, members=3, steps=4)
TRAIN, VALID, TEST, FRAMES = 3, 2, 2, 8


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate_dataset(
        "kolmogorov", root, TRAIN, VALID, TEST, n_frames=FRAMES, batch_size=4, progress=False
    )
    return root


@pytest.fixture(scope="module")
def autoencoder(data_root, tmp_path_factory) -> Path:
    """Stem of a rate-192 autoencoder's model files."""
    card = train_autoencoder(
        "kolmogorov",
        192,
        data_root=data_root,
        run_dir=tmp_path_factory.mktemp("ae"),
        steps=4,
        batch_size=4,
        device="cpu",
        progress=False,
    )
    return card.with_suffix("")


def _train_emulator(kind, data_root, run_dir, autoencoder=None, rate=192, **options):
    options = {"backbone_overrides": TINY_BACKBONE, "test_rollouts": FAST_TEST, **options}
    return train_emulator(
        "kolmogorov",
        rate,
        kind=kind,
        data_root=data_root,
        run_dir=run_dir,
        autoencoder=autoencoder,
        steps=STEPS,
        batch_size=8,
        device="cpu",
        progress=False,
        **options,
    )


@pytest.fixture(scope="module", params=["diffusion", "deterministic"])
def trained(request, data_root, autoencoder, tmp_path_factory) -> Path:
    return _train_emulator(
        request.param, data_root, tmp_path_factory.mktemp(request.param), autoencoder
    )


def _vrmse(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The paper's VRMSE over the last two axes, written out in numpy."""
    error = ((prediction - truth) ** 2).mean(axis=(-2, -1))
    return np.sqrt(error / (truth.var(axis=(-2, -1)) + 1e-6))


def test_card_records_the_pairing_the_run_and_the_test_scores(trained, autoencoder):
    card = json.loads(trained.read_text())
    kind = card["method"]
    weights = model_paths(autoencoder)[0].read_bytes()
    assert card["autoencoder"] == {
        "sha256": hashlib.sha256(weights).hexdigest(),
        "rate": 192,
        "latent_shape": [4, 4, 4],
    }
    assert (card["system"], card["space"], card["rate"], card["frame_stride"]) == (
        "kolmogorov",
        "latent",
        192,
        1,
    )
    assert card["backbone"]["width"] == 32 and card["backbone"]["patch"] == 1
    training = card["training"]
    assert training["steps"] == STEPS and training["preset"] == "small"
    assert training["autoencoder_file"] == str(autoencoder)
    # Every start time of every trajectory: N * (T - L + 1) windows.
    assert training["data"]["train_windows"] == TRAIN * (FRAMES - 5 + 1)
    assert training["data"]["validation_windows"] == VALID * (FRAMES - 5 + 1)
    assert math.isfinite(training["validation"]["valid_loss"])
    assert training["hardware"]["torch"] == torch.__version__
    metrics = training["test_metrics"]
    assert metrics["trajectories"] == TEST and min(metrics["seeds"]) >= 2_000_000
    assert metrics["lead"] == list(range(1, FRAMES))  # one context frame, to the end
    assert metrics["rollout"]["members"] == (3 if kind == "diffusion" else 1)
    by_lead = metrics["vrmse_by_lead"]
    assert len(by_lead) == FRAMES - 1 and all(math.isfinite(v) and v > 0 for v in by_lead)
    assert set(metrics["vrmse_by_field"]) == {"vorticity", "velocity_x", "velocity_y"}
    if kind == "diffusion":
        assert all(math.isfinite(v) and v > 0 for v in metrics["spread_skill_by_lead"])
    else:
        assert metrics["spread_skill_by_lead"] is None  # one member, no spread


def test_card_scores_match_a_rollout_of_the_saved_files(trained, autoencoder, data_root):
    """Reload the saved pair, roll out the same test trajectories with the same settings
    and score them by hand: the card's numbers must come back."""
    card = json.loads(trained.read_text())
    metrics = card["training"]["test_metrics"]
    settings = metrics["rollout"]
    pipeline = Pipeline.load(trained, autoencoder, "cpu")
    arrays = load_array(data_root / "kolmogorov", "test")
    config = RolloutConfig(
        members=settings["members"],
        horizon=settings["horizon"],
        steps=settings["steps"],
        sampler_options={"order": 3},
    )
    model_scores, persistence = [], []
    for index in range(TEST):
        fields = arrays.fields[index]
        conditions = {"Reynolds": arrays.parameters["Reynolds"][index]}
        prediction = rollout(pipeline, fields[:1], conditions, config)
        members = np.stack([prediction[n].values for n in pipeline.spec.channel_names], axis=2)
        model_scores.append(_vrmse(members.mean(axis=0), fields[1:]))
        persistence.append(_vrmse(np.broadcast_to(fields[:1], fields[1:].shape), fields[1:]))
    np.testing.assert_allclose(
        metrics["vrmse_by_lead"], np.mean(model_scores, axis=(0, 2)), rtol=1e-4
    )
    np.testing.assert_allclose(
        metrics["persistence_vrmse_by_lead"], np.mean(persistence, axis=(0, 2)), rtol=1e-4
    )


def test_latents_and_labels_come_from_the_cache_and_the_recorded_reynolds(data_root, autoencoder):
    dataset = data_root / "kolmogorov"
    card = check_autoencoder(autoencoder, "kolmogorov", 192)
    space = latent_space(get_system("kolmogorov"), dataset, autoencoder, card, "cpu")
    model, preprocessing, _ = load_autoencoder(autoencoder, device="cpu")
    arrays = load_array(dataset, "train")
    np.testing.assert_allclose(
        space.train.numpy(), encode_frames(model, preprocessing, arrays.fields), atol=1e-6
    )
    # Re in [100, 500] on a log scale maps to [-1, 1].
    reynolds = arrays.parameters["Reynolds"]
    expected = 2 * (np.log10(reynolds) - 2) / np.log10(5) - 1
    np.testing.assert_allclose(space.train_labels[:, 0].numpy(), expected, rtol=1e-5)
    assert space.valid.shape == (VALID, FRAMES, 4, 4, 4)


def test_an_autoencoder_of_another_rate_or_system_is_refused(data_root, autoencoder, tmp_path):
    with pytest.raises(ParameterError, match=r"kolmogorov at rate 192.*at rate 48"):
        _train_emulator("diffusion", data_root, tmp_path / "a", autoencoder, rate=48)
    other = tmp_path / "other"
    other.mkdir()
    for path in model_paths(autoencoder):
        shutil.copy(path, other / path.name)
    card_path = model_paths(other / autoencoder.name)[1]
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "system": "euler_quadrants"}))
    with pytest.raises(ParameterError, match=r"euler_quadrants at rate 192.*kolmogorov"):
        _train_emulator("diffusion", data_root, tmp_path / "b", other / autoencoder.name)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "gan"}, r"kind='gan'.*diffusion, deterministic"),
        ({"space": "fourier"}, r"space='fourier'.*latent, pixel"),
        ({"rate": 100}, r"rate=100.*48, 192, 768"),
        ({"rate": None}, r"rate=None.*48, 192, 768"),
        ({"space": "pixel"}, r"rate / autoencoder.*neither"),
        ({"space": "pixel", "rate": None, "patch": 24}, r"patch=24.*\(64, 64\)"),
        ({"preset": "huge"}, r"preset='huge'.*small, compact, paper"),
        ({"kind": "deterministic", "prediction": "data"}, r"prediction='data'.*deterministic"),
        ({"prediction": "v"}, r"prediction='v'.*edm, data"),
    ],
)
def test_bad_input_names_the_value_and_the_valid_ones(data_root, tmp_path, options, message):
    arguments = {"kind": "diffusion", "rate": 192, **options}
    with pytest.raises(ParameterError, match=message):
        train_emulator(
            "kolmogorov",
            arguments.pop("rate"),
            data_root=data_root,
            run_dir=tmp_path,
            device="cpu",
            progress=False,
            **arguments,
        )


def test_missing_dataset_and_autoencoder_say_how_to_make_them(
    data_root, tmp_path, capsys, monkeypatch
):
    command = [
        "train-emulator",
        "kolmogorov",
        "--rate",
        "48",
        "--kind",
        "diffusion",
        "--run-dir",
        str(tmp_path / "run"),
    ]
    assert main([*command, "--data", str(tmp_path)]) == 2
    assert "latentsim generate kolmogorov" in capsys.readouterr().err
    monkeypatch.setenv("LATENTSIM_ASSETS", str(tmp_path / "assets"))
    assert main([*command, "--data", str(data_root)]) == 2
    error = capsys.readouterr().err
    assert "latentsim train-ae kolmogorov --rate 48" in error
    assert str(tmp_path / "assets" / "autoencoders" / "kolmogorov-ae48") in error


def test_resume_continues_exactly_and_a_used_run_dir_needs_it(
    data_root, autoencoder, tmp_path, monkeypatch
):
    """Checkpoints at steps 3 and 6; losing the last one (a run killed after step 3) and
    resuming gives bitwise the same weights, hence the same card scores."""
    monkeypatch.setitem(RECIPES, "small", dataclasses.replace(RECIPES["small"], checkpoint_every=3))
    run_dir = tmp_path / "run"
    first = json.loads(_train_emulator("diffusion", data_root, run_dir, autoencoder).read_text())
    with pytest.raises(LatentsimError, match="resume"):
        _train_emulator("diffusion", data_root, run_dir, autoencoder)
    names = [path.name for path in list_checkpoints(run_dir / "checkpoints")]
    assert names == ["step_000000003", "step_000000006"]
    shutil.rmtree(run_dir / "checkpoints" / "step_000000006")
    again = _train_emulator("diffusion", data_root, run_dir, autoencoder, resume=True)
    second = json.loads(again.read_text())
    assert second["weights"]["sha256"] == first["weights"]["sha256"]
    assert second["training"]["steps"] == STEPS
    assert (
        second["training"]["test_metrics"]["vrmse_by_lead"]
        == first["training"]["test_metrics"]["vrmse_by_lead"]
    )


def test_pixel_baseline_stores_its_preprocessing(data_root, tmp_path):
    card_path = train_emulator(
        "kolmogorov",
        kind="deterministic",
        space="pixel",
        patch=16,
        data_root=data_root,
        run_dir=tmp_path,
        steps=STEPS,
        batch_size=8,
        device="cpu",
        progress=False,
        backbone_overrides=TINY_BACKBONE,
        test_rollouts=FAST_TEST,
    )
    card = json.loads(card_path.read_text())
    assert (card["space"], card["rate"], card["autoencoder"]) == ("pixel", None, None)
    assert (card["channels"], card["grid"], card["backbone"]["patch"]) == (3, [64, 64], 16)
    # No log channels for Kolmogorov: a z-score with the train split's own statistics.
    fields = load_array(data_root / "kolmogorov", "train").fields.astype(np.float64)
    preprocessing = card["preprocessing"]
    assert preprocessing["log_channels"] == []
    np.testing.assert_allclose(preprocessing["mean"], fields.mean(axis=(0, 1, 3, 4)), atol=1e-6)
    np.testing.assert_allclose(preprocessing["std"], fields.std(axis=(0, 1, 3, 4)), rtol=1e-5)
    metrics = card["training"]["test_metrics"]
    assert all(math.isfinite(v) for v in metrics["vrmse_by_lead"])
    pipeline = Pipeline.load(card_path, device="cpu")
    assert (pipeline.space, pipeline.kind, pipeline.rate) == ("pixel", "deterministic", None)


def test_pixel_diffusion_can_predict_the_data(data_root, tmp_path):
    card_path = train_emulator(
        "kolmogorov",
        kind="diffusion",
        space="pixel",
        patch=16,
        prediction="data",
        data_root=data_root,
        run_dir=tmp_path,
        steps=STEPS,
        batch_size=8,
        device="cpu",
        progress=False,
        backbone_overrides=TINY_BACKBONE,
        test_rollouts=FAST_TEST,
    )
    card = json.loads(card_path.read_text())
    assert card["prediction"] == "data" and card["backbone"]["patch"] == 16
    assert all(math.isfinite(v) for v in card["training"]["test_metrics"]["vrmse_by_lead"])
    assert Pipeline.load(card_path, device="cpu").emulator.denoiser.prediction == "data"


def test_cli_trains_the_small_preset_and_refuses_an_impossible_stride(
    data_root, autoencoder, tmp_path, capsys
):
    command = [
        "train-emulator",
        "kolmogorov",
        "--rate",
        "192",
        "--kind",
        "deterministic",
        "--autoencoder",
        str(autoencoder),
        "--data",
        str(data_root),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main([*command, "--run-dir", str(tmp_path / "run")]) == 0
    assert f"wrote {tmp_path / 'run' / 'model.json'}" in capsys.readouterr().out
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["backbone"]["width"] == 192 and card["training"]["train_config"]["lr"] == 1e-3
    # Windows of 5 frames 2 apart span 9 stored frames; the trajectories hold 8.
    assert main([*command, "--run-dir", str(tmp_path / "s2"), "--frame-stride", "2"]) == 2
    assert "at most 4 frames at stride 2" in capsys.readouterr().err
