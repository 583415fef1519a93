"""Emulator model files: round trips in latent and pixel space, and every refusal: another
autoencoder, another system, other labels, a card that does not fit the weights."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from emulator_tiny import TINY

from engine.autoencoder import Autoencoder, AutoencoderConfig, autoencoder_config
from engine.diffusion import LogLogitSchedule
from engine.emulator import (
    DeterministicEmulator,
    DiffusionEmulator,
    build_emulator,
    check_autoencoder_pair,
    load_emulator,
    save_emulator,
)
from engine.errors import DataFormatError, ParameterError
from engine.model_files import load_model_card, model_paths, save_autoencoder
from engine.preprocessing import Preprocessing
from engine.systems import get_system
from engine.systems.base import ParameterSpec

SPEC = get_system("kolmogorov").spec  # 3 channels on 64x64, label: log10 Reynolds
PREPROCESSING = Preprocessing(SPEC.channel_names, (0.0, 0.1, -0.1), (3.0, 1.0, 1.5))
TINY_AE = {"widths": (4, 4, 4, 4, 8), "blocks_per_level": 1}


def _autoencoder_card(tmp_path, seed: int, rate: int = 192) -> dict:
    """Save a tiny x16 autoencoder for Kolmogorov (4x4 latents) and return its card."""
    config = autoencoder_config(SPEC, rate, boundaries=("periodic", "periodic"))
    config = AutoencoderConfig.from_dict({**config.to_dict(), **TINY_AE})
    torch.manual_seed(seed)
    path = save_autoencoder(
        tmp_path,
        f"ae_{rate}_{seed}",
        Autoencoder(config),
        PREPROCESSING,
        system=SPEC.name,
        grid=(64, 64),
        rate=rate,
    )
    return load_model_card(path)


def _latent(tmp_path, ae_card):
    torch.manual_seed(1)
    channels = ae_card["latent_shape"][0]
    emulator = DiffusionEmulator(TINY, channels, (4, 4), 1)
    with torch.no_grad():
        for parameter in emulator.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    path = save_emulator(
        tmp_path,
        "kolmogorov_diffusion",
        emulator,
        system=SPEC,
        frame_stride=2,
        autoencoder=ae_card,
        training={"steps": 3, "batch_size": 8},
    )
    return path, emulator.eval()


def test_latent_diffusion_round_trip(tmp_path):
    ae_card = _autoencoder_card(tmp_path, seed=0)
    path, emulator = _latent(tmp_path, ae_card)
    loaded, card = load_emulator(path, "cpu", system=SPEC, autoencoder=ae_card)
    assert isinstance(loaded, DiffusionEmulator) and not loaded.training
    assert (loaded.config, loaded.channels, loaded.grid) == (emulator.config, 4, (4, 4))
    for key, value in emulator.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    context, label = torch.randn(2, 1, 4, 4, 4), torch.randn(2, 1)
    with torch.inference_mode():
        outputs = [
            model.generate(context, label, generator=torch.Generator().manual_seed(0))
            for model in (emulator, loaded)
        ]
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    assert (card["kind"], card["method"], card["space"], card["system"]) == (
        "emulator",
        "diffusion",
        "latent",
        "kolmogorov",
    )
    assert (card["rate"], card["window"], card["frame_stride"]) == (192, 5, 2)
    assert card["autoencoder"]["sha256"] == ae_card["weights"]["sha256"]
    assert card["autoencoder"]["latent_shape"] == [4, 4, 4] and card["preprocessing"] is None
    assert card["schedule"] == {"sigma_min": 1e-3, "sigma_max": 1e3}
    assert card["label"]["names"] == ["Reynolds"]
    assert card["label"]["parameters"][0]["log_scale"] is True
    assert card["backbone"] == TINY.to_dict() and card["training"]["steps"] == 3
    assert card["parameters"] == emulator.parameter_count()


def test_the_noise_schedule_travels_with_the_model(tmp_path):
    ae_card = _autoencoder_card(tmp_path, seed=0)
    emulator = DiffusionEmulator(TINY, 4, (4, 4), 1, schedule=LogLogitSchedule(1e-2, 1e2))
    path = save_emulator(tmp_path, "narrow", emulator, system=SPEC, autoencoder=ae_card)
    loaded, card = load_emulator(path, "cpu")
    assert card["schedule"] == {"sigma_min": 1e-2, "sigma_max": 1e2}
    assert (loaded.schedule.sigma_min, loaded.schedule.sigma_max) == (1e-2, 1e2)
    # Sampling without a sampler starts from the trained σ_max, not the default 1e3.
    seen = []
    loaded.denoiser.register_forward_hook(lambda module, args, output: seen.append(args[1]))
    with torch.inference_mode():
        loaded.generate(torch.zeros(1, 1, 4, 4, 4), torch.zeros(1, 1))
    assert len(seen) == 16 and float(seen[0]) == pytest.approx(1e2)


def test_the_denoiser_parametrisation_travels_with_the_model(tmp_path):
    config = dataclasses.replace(TINY, patch=8)
    emulator = build_emulator("diffusion", config, 3, (64, 64), 1, "pixel", "data")
    path = save_emulator(tmp_path, "x_pred", emulator, system=SPEC, preprocessing=PREPROCESSING)
    loaded, card = load_emulator(path, "cpu")
    assert card["prediction"] == "data" and loaded.denoiser.prediction == "data"
    # Cards written before the choice existed hold EDM models.
    card_path = model_paths(path)[1]
    legacy = json.loads(card_path.read_text())
    del legacy["prediction"]
    card_path.write_text(json.dumps(legacy))
    assert load_emulator(path, "cpu")[0].denoiser.prediction == "edm"
    with pytest.raises(ParameterError, match=r"prediction.*deterministic"):
        build_emulator("deterministic", config, 3, (64, 64), 1, "pixel", "data")
    with pytest.raises(ParameterError, match=r"prediction.*'x'.*edm, data"):
        build_emulator("diffusion", config, 3, (64, 64), 1, "pixel", "x")


def test_pixel_deterministic_round_trip(tmp_path):
    config = dataclasses.replace(TINY, patch=8)
    emulator = DeterministicEmulator(config, 3, (64, 64), 1, "pixel")
    path = save_emulator(
        tmp_path, "kolmogorov_pixel", emulator, system=SPEC, preprocessing=PREPROCESSING
    )
    loaded, card = load_emulator(path, "cpu", system="kolmogorov")
    assert isinstance(loaded, DeterministicEmulator) and loaded.space == "pixel"
    assert loaded.config.patch == 8 and loaded.grid == (64, 64)
    assert card["rate"] is None and card["autoencoder"] is None and card["schedule"] is None
    assert Preprocessing.from_dict(card["preprocessing"]) == PREPROCESSING
    with pytest.raises(DataFormatError, match="pixel-space"):
        check_autoencoder_pair(card, _autoencoder_card(tmp_path, seed=0))


def test_another_autoencoder_is_refused(tmp_path):
    ae_card = _autoencoder_card(tmp_path, seed=0)
    path, _ = _latent(tmp_path, ae_card)
    retrained = _autoencoder_card(tmp_path, seed=5)  # same shape, other weights
    with pytest.raises(DataFormatError, match="trained on the latents of autoencoder"):
        load_emulator(path, "cpu", autoencoder=retrained)
    _, card = load_emulator(path, "cpu")
    check_autoencoder_pair(card, ae_card)
    with pytest.raises(DataFormatError, match=ae_card["weights"]["sha256"][:12]):
        check_autoencoder_pair(card, retrained)


def test_other_system_or_labels_are_refused(tmp_path):
    path, _ = _latent(tmp_path, _autoencoder_card(tmp_path, seed=0))
    with pytest.raises(DataFormatError, match="rayleigh_benard"):
        load_emulator(path, "cpu", system="rayleigh_benard")
    # Same system name, but its training range changed in code since the model was saved.
    reynolds = dataclasses.replace(SPEC.parameters[0], train_range=(100.0, 1000.0))
    changed = dataclasses.replace(SPEC, parameters=(reynolds,))
    with pytest.raises(DataFormatError, match="label parameters"):
        load_emulator(path, "cpu", system=changed)
    # An autoencoder's file is not an emulator.
    ae_path = tmp_path / "ae_192_0.json"
    with pytest.raises(DataFormatError, match="emulator"):
        load_emulator(ae_path, "cpu")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda card: card["backbone"].update(width=48), "do not fit"),
        (lambda card: card["backbone"].update(heads=3), "invalid emulator card"),
        (lambda card: card.update(method="gan"), "emulator kind"),
        (lambda card: card.update(window=4), "window"),
        (lambda card: card.pop("label"), "lacks label"),
        (lambda card: card["label"].update(dim=3), "dim"),
        (lambda card: card["schedule"].pop("sigma_max"), "sigma_max"),
        (lambda card: card.update(grid=4), "invalid emulator card"),
    ],
)
def test_cards_that_do_not_fit_are_refused(tmp_path, edit, words):
    path, _ = _latent(tmp_path, _autoencoder_card(tmp_path, seed=0))
    card_path = model_paths(path)[1]
    card = json.loads(card_path.read_text())
    edit(card)
    card_path.write_text(json.dumps(card))
    with pytest.raises(DataFormatError, match=words):
        load_emulator(path, "cpu")


def test_save_refuses_inconsistent_descriptions(tmp_path):
    ae_card = _autoencoder_card(tmp_path, seed=0)
    latent = DiffusionEmulator(TINY, 4, (4, 4), 1)
    pixel = DeterministicEmulator(dataclasses.replace(TINY, patch=8), 3, (64, 64), 1, "pixel")
    with pytest.raises(ParameterError, match="autoencoder"):
        save_emulator(tmp_path, "a", latent, system=SPEC)
    with pytest.raises(ParameterError, match="autoencoder"):
        save_emulator(
            tmp_path, "a", latent, system=SPEC, autoencoder=ae_card, preprocessing=PREPROCESSING
        )
    with pytest.raises(ParameterError, match="preprocessing"):
        save_emulator(tmp_path, "a", pixel, system=SPEC, autoencoder=ae_card)
    with pytest.raises(ParameterError, match="latent_shape"):
        save_emulator(
            tmp_path, "a", latent, system=SPEC, autoencoder=_autoencoder_card(tmp_path, 0, 48)
        )
    with pytest.raises(ParameterError, match="label_dim"):
        save_emulator(
            tmp_path, "a", DiffusionEmulator(TINY, 4, (4, 4), 2), system=SPEC, autoencoder=ae_card
        )
    with pytest.raises(ParameterError, match="frame_stride"):
        save_emulator(tmp_path, "a", latent, system=SPEC, autoencoder=ae_card, frame_stride=0)
    other = get_system("rayleigh_benard").spec
    gamma = ParameterSpec("gamma", "g", (1.0, 2.0), (1.0, 2.0), 1.5)
    other = dataclasses.replace(other, parameters=(gamma,))
    with pytest.raises(DataFormatError, match="kolmogorov"):
        save_emulator(tmp_path, "a", latent, system=other, autoencoder=ae_card)
    assert not list(tmp_path.glob("a.*"))
