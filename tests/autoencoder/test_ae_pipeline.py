"""train-ae / evaluate-ae / encode end to end on a tiny generated Kolmogorov dataset."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from engine.cli import main
from engine.data.generate import generate_dataset
from engine.data.well_reader import load_array
from engine.errors import DataFormatError, ParameterError
from engine.latents import encode_dataset, encode_frames, load_latents
from engine.model_files import load_autoencoder
from engine.stages.autoencoder import (
    reconstruct,
    reconstruction_scores,
    train_autoencoder,
)

STEPS = 12


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate_dataset("kolmogorov", root, 3, 2, 2, n_frames=4, batch_size=4, progress=False)
    return root


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    card = train_autoencoder(
        "kolmogorov",
        192,
        data_root=data_root,
        run_dir=run_dir,
        steps=STEPS,
        batch_size=8,
        device="cpu",
        progress=False,
    )
    return card


def test_card_records_training_data_hardware_and_test_metrics(trained):
    card = json.loads(trained.read_text())
    assert card["system"] == "kolmogorov" and card["rate"] == 192
    assert card["latent_shape"] == [4, 4, 4]
    training = card["training"]
    assert training["steps"] == STEPS and training["preset"] == "small"
    assert training["hardware"]["torch"].startswith(torch.__version__.split("+")[0])
    metrics = training["test_metrics"]
    assert metrics["split"] == "test" and metrics["trajectories"] == 2
    assert metrics["seed_range"][0] >= 2_000_000  # test seeds never used in training
    assert set(metrics["vrmse"]) == {"vorticity", "velocity_x", "velocity_y"}
    assert metrics["vrmse_mean"] == pytest.approx(np.mean(list(metrics["vrmse"].values())))


def test_training_resumes_instead_of_restarting(data_root, trained):
    with pytest.raises(Exception, match="resume"):
        train_autoencoder(
            "kolmogorov",
            192,
            data_root=data_root,
            run_dir=trained.parent,
            steps=STEPS,
            batch_size=8,
            device="cpu",
            progress=False,
        )


def test_evaluate_ae_cli_reproduces_the_card(trained, data_root, capsys, tmp_path):
    out, table = tmp_path / "scores.json", tmp_path / "table.md"
    code = main(
        [
            "evaluate-ae",
            str(trained),
            "--data",
            str(data_root),
            "--device",
            "cpu",
            "--output",
            str(out),
            "--markdown",
            str(table),
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["parameters"]["total"] > 0 and printed["training"]["steps"] == STEPS
    card = json.loads(trained.read_text())["training"]["test_metrics"]
    assert printed["vrmse"] == pytest.approx(card["vrmse"], rel=1e-5)
    assert json.loads(out.read_text()) == printed
    row = table.read_text().splitlines()[2]
    assert row.startswith("| `kolmogorov` | 192 |") and f"**{printed['vrmse_mean']:.4f}**" in row


def test_scores_in_physical_units_match_a_direct_computation(trained, data_root):
    model, preprocessing, _ = load_autoencoder(trained, device="cpu")
    frames = torch.from_numpy(load_array(data_root / "kolmogorov", "test").fields[0])
    recon = reconstruct(model, preprocessing, frames)
    scores = reconstruction_scores(frames, recon, ("vorticity", "velocity_x", "velocity_y"))
    error = (recon - frames).square().mean(dim=(-2, -1))
    expected = (error / frames.var(dim=(-2, -1), correction=0)).sqrt().mean(dim=0)
    assert scores["vrmse"]["vorticity"] == pytest.approx(float(expected[0]), rel=1e-4)


def test_encode_writes_a_validated_reusable_cache(trained, data_root):
    dataset = data_root / "kolmogorov"
    paths = encode_dataset(trained, dataset, device="cpu")
    arrays = load_array(dataset, "test")
    latents = load_latents(paths["test"])
    model, preprocessing, _ = load_autoencoder(trained, device="cpu")
    np.testing.assert_allclose(
        latents.latents, encode_frames(model, preprocessing, arrays.fields), atol=1e-6
    )
    assert latents.latents.shape == (2, 4, 4, 4, 4)
    np.testing.assert_array_equal(latents.seeds, arrays.seeds)
    np.testing.assert_array_equal(latents.parameters["Reynolds"], arrays.parameters["Reynolds"])
    stamp = paths["train"].stat().st_mtime_ns
    assert encode_dataset(trained, dataset, device="cpu")["train"].stat().st_mtime_ns == stamp
    with pytest.raises(DataFormatError, match="different autoencoder"):
        load_latents(paths["test"], autoencoder_sha256="0" * 64)


def test_a_stale_cache_is_rebuilt(trained, data_root):
    dataset = data_root / "kolmogorov"
    path = encode_dataset(trained, dataset, splits=("valid",), device="cpu")["valid"]
    with h5py.File(path, "r+") as handle:
        handle.attrs["autoencoder_sha256"] = "stale"
    rebuilt = encode_dataset(trained, dataset, splits=("valid",), device="cpu")["valid"]
    assert load_latents(rebuilt).attrs["autoencoder_sha256"] != "stale"


def test_unreachable_rate_lists_the_reachable_ones(data_root, tmp_path):
    with pytest.raises(ParameterError, match=r"rate=100.*48"):
        train_autoencoder(
            "kolmogorov",
            100,
            data_root=data_root,
            run_dir=tmp_path,
            steps=1,
            device="cpu",
            progress=False,
        )


def test_missing_dataset_says_how_to_make_it(tmp_path, capsys):
    assert main(["train-ae", "kolmogorov", "--rate", "48", "--data", str(tmp_path)]) == 2
    assert "latentsim generate kolmogorov" in capsys.readouterr().err


@pytest.mark.parametrize("eps", ["0", "-1", "nan"])
def test_a_loss_floor_that_is_not_positive_is_refused_before_training(eps, tmp_path, capsys):
    argv = ["train-ae", "kolmogorov", "--rate", "48", "--data", str(tmp_path), "--loss-eps", eps]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "--loss-eps" in error and "a finite number > 0" in error and eps in error
    assert not any(tmp_path.iterdir())  # no run directory claimed


@pytest.mark.parametrize("eps", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_the_stage_refuses_a_loss_floor_that_is_not_positive(eps, tmp_path):
    with pytest.raises(ParameterError, match=r"loss_eps=.* a finite number > 0"):
        train_autoencoder(
            "kolmogorov", 48, data_root=tmp_path, run_dir=tmp_path / "run", loss_eps=eps
        )
    assert not any(tmp_path.iterdir())


def test_resume_refuses_other_settings_than_the_run_was_started_with(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train-ae", "kolmogorov", "--rate", "192", "--steps", "4", "--batch-size", "8"]
    argv += ["--data", str(data_root), "--run-dir", str(run), "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    assert main([*argv, "--resume", "--loss-eps", "1"]) == 2
    error = capsys.readouterr().err
    assert "--loss-eps None then, 1.0 now" in error and str(run) in error
    assert main([*argv, "--resume"]) == 0  # the refused settings were not recorded


def test_nan_in_the_data_is_refused(data_root, tmp_path):
    import shutil

    copy = tmp_path / "kolmogorov"
    shutil.copytree(data_root / "kolmogorov", copy)
    train_file = sorted((copy / "data" / "train").glob("*.hdf5"))[0]
    with h5py.File(train_file, "r+") as handle:
        handle["t0_fields/vorticity"][0, 0, 0, 0] = np.nan
    with pytest.raises(DataFormatError, match="NaN"):
        train_autoencoder(
            "kolmogorov",
            48,
            data_root=tmp_path,
            run_dir=tmp_path / "run",
            steps=1,
            device="cpu",
            progress=False,
        )


def test_another_systems_autoencoder_cannot_encode(trained, tmp_path):
    fake = tmp_path / "euler_quadrants"
    fake.mkdir()
    (fake / "euler_quadrants.yaml").write_text("dataset_name: euler_quadrants\n")
    with pytest.raises(DataFormatError, match="kolmogorov"):
        encode_dataset(trained, fake, device="cpu")


def test_train_ae_cli_trains_with_psgd_kron_and_records_it(data_root, tmp_path, capsys):
    run_dir = tmp_path / "psgd"
    argv = ["train-ae", "kolmogorov", "--rate", "192", "--steps", "4", "--batch-size", "8"]
    argv += ["--data", str(data_root), "--run-dir", str(run_dir), "--device", "cpu", "--quiet"]
    assert main([*argv, "--optimizer", "psgd_kron"]) == 0
    card = json.loads((run_dir / "model.json").read_text())
    assert card["training"]["train_config"]["optimizer"] == "psgd_kron"
    with pytest.raises(SystemExit) as info:
        main([*argv, "--optimizer", "sgd"])
    assert info.value.code == 2
    assert "invalid choice: 'sgd' (choose from 'adamw', 'psgd_kron')" in capsys.readouterr().err
