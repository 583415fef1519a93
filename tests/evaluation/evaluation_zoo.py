"""A tiny zoo and dataset for the evaluation tests (imported as `evaluation_zoo`).

Kolmogorov flow on a 16x16 grid, 8 frames per trajectory, 3 test trajectories. The
autoencoders are untrained x2 conv nets with 4 / 2 / 1 latent channels on an 8x8 latent
grid, i.e. rates 3 / 6 / 12 (3 x 256 values per frame); the emulators are untrained
one-block ViTs. Untrained weights are enough: the tests are about which numbers are
computed on which frames, not about skill. Everything is published through the real
`zoo publish` path (float16 weights, manifest with hashes), and each emulator's card
carries test metrics measured with the float32 weights, as training does, so the card
check has something to reproduce.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from engine.autoencoder.config import AutoencoderConfig
from engine.autoencoder.model import Autoencoder
from engine.data.generate import generate_dataset
from engine.emulator.config import BackboneConfig
from engine.emulator.labels import LabelSpec
from engine.emulator.models import build_emulator, save_emulator
from engine.model_files import load_autoencoder, load_model_card, save_autoencoder
from engine.pipeline import Pipeline
from engine.preprocessing import Preprocessing
from engine.stages.heldout import EvaluationRollouts, score_test_rollouts
from engine.systems import get_system
from engine.zoo import build as zoo_build
from engine.zoo.plan import ZooModel

SYSTEM = "kolmogorov"
GRID = (16, 16)
FRAMES = 8  # per trajectory: 7 leads after one context frame
TEST_TRAJECTORIES = 3
LATENT_CHANNELS = {3: 4, 6: 2, 12: 1}  # rate -> latent channels on the 8x8 latent grid
SETTINGS = {"preset": "small", "steps": 3, "batch_size": 2, "lr": 1e-3}
BACKBONE = BackboneConfig(width=12, depth=1, heads=2, cond_dim=8, window=3, dropout=0.0)
PIXEL_PATCH = 4
CARD_PROTOCOL = EvaluationRollouts(trajectories=2, horizon=4, members=2, steps=2)


def spec():
    return get_system(SYSTEM, GRID).spec


def preprocessing() -> Preprocessing:
    return Preprocessing(spec().channel_names, (0.0, 0.0, 0.0), (2.0, 0.5, 0.5))


def plan() -> list[ZooModel]:
    """The tiny zoo's plan: 3 autoencoders, 6 latent emulators, 2 pixel emulators."""
    models = [
        ZooModel(f"{SYSTEM}-ae{rate}", "autoencoder", SYSTEM, SETTINGS, rate=rate)
        for rate in LATENT_CHANNELS
    ]
    for rate in LATENT_CHANNELS:
        for method in ("diffusion", "deterministic"):
            models.append(
                ZooModel(
                    f"{SYSTEM}-{method}-ae{rate}",
                    "emulator",
                    SYSTEM,
                    SETTINGS,
                    method=method,
                    space="latent",
                    rate=rate,
                    autoencoder=f"{SYSTEM}-ae{rate}",
                )
            )
    for method in ("deterministic", "diffusion"):
        models.append(
            ZooModel(
                f"{SYSTEM}-{method}-pixel",
                "emulator",
                SYSTEM,
                SETTINGS,
                method=method,
                space="pixel",
            )
        )
    return models


def make_dataset(root: Path) -> Path:
    """data root with kolmogorov/ (1 train, 1 valid, 3 test trajectories)."""
    generate_dataset(
        SYSTEM,
        root,
        1,
        1,
        TEST_TRAJECTORIES,
        n_frames=FRAMES,
        grid=GRID,
        batch_size=5,
        progress=False,
    )
    return root


def _training() -> dict:
    config = {key: SETTINGS[key] for key in ("steps", "batch_size", "lr")}
    return {"preset": SETTINGS["preset"], "train_config": {**config, "seed": 0}}


def _autoencoder(model: ZooModel, runs: Path) -> Path:
    config = AutoencoderConfig(
        in_channels=3,
        latent_channels=LATENT_CHANNELS[model.rate],
        widths=(4, 8),
        blocks_per_level=0,
        periodic=(True, True),
    )
    return save_autoencoder(
        runs,
        model.name,
        Autoencoder(config),
        preprocessing(),
        system=SYSTEM,
        grid=GRID,
        rate=model.rate,
        training=_training(),
    )


def _emulator(model: ZooModel, runs: Path, assets: Path, dataset: Path) -> Path:
    latent = model.space == "latent"
    patch = 1 if latent else PIXEL_PATCH
    config = replace(BACKBONE, patch=patch)
    label_dim = LabelSpec.from_system(spec()).dim
    shape = (LATENT_CHANNELS[model.rate], 8, 8) if latent else (3, *GRID)
    emulator = build_emulator(model.method, config, shape[0], shape[1:], label_dim, model.space)
    if latent:  # trained on the published autoencoder, as the zoo does
        autoencoder, frames, ae_card = load_autoencoder(
            assets / model.autoencoder_asset, SYSTEM, "cpu"
        )
        pipeline = Pipeline(spec(), frames, emulator, autoencoder, "cpu")
    else:
        ae_card = None
        pipeline = Pipeline(spec(), preprocessing(), emulator, None, "cpu")
    training = {
        **_training(),
        "test_metrics": score_test_rollouts(pipeline, dataset, CARD_PROTOCOL),
    }
    return save_emulator(
        runs,
        model.name,
        emulator.cpu(),
        system=spec(),
        autoencoder=ae_card,
        preprocessing=None if latent else preprocessing(),
        training=training,
    )


def make_zoo(assets: Path, runs: Path, data_root: Path, skip: tuple[str, ...] = ()) -> Path:
    """Publish the plan (but `skip`) under `assets`; returns `assets`."""
    dataset = data_root / SYSTEM
    for seed, model in enumerate(plan()):
        if model.name in skip:
            continue
        torch.manual_seed(seed)
        if model.kind == "autoencoder":
            source = _autoencoder(model, runs)
        else:
            source = _emulator(model, runs, assets, dataset)
        zoo_build.publish(model, source, assets)
    assert load_model_card(assets / plan()[0].asset)["weights"]["dtype"] == "float16"
    return assets
