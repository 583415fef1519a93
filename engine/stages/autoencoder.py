"""Stage: train and evaluate an autoencoder of a system's compression ladder on its dataset.

The steps are deliberately plain: load the train split into memory, fit the
preprocessing on it, train the autoencoder on single preprocessed frames with the shared
trainer (resumable, DDP-ready), then score reconstructions of the held-out test split in
physical units and save safetensors + a JSON card with those metrics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.augmentation import symmetries_of, symmetry_augmentation
from engine.autoencoder.config import preset_spatial_factor
from engine.autoencoder.files import save_autoencoder
from engine.autoencoder.ladder import autoencoder_config, latent_shape
from engine.autoencoder.linear_code import LowFrequencyCode
from engine.autoencoder.model import Autoencoder
from engine.data.well_reader import WellArrays, load_array
from engine.errors import ParameterError, check_positive
from engine.losses import VMSE_EPS, vmse
from engine.metrics import spectral_band_errors, vrmse
from engine.preprocessing import Preprocessing, default_log_channels, fit_preprocessing
from engine.stages.common import (
    Recipe,
    check_training_data,
    dataset_dir,
    even_subset,
    is_main_process,
    output_stem,
    training_record,
)
from engine.systems import System, get_system
from engine.training import TensorDictSource, run_training

VALIDATION_FRAMES = 256


@dataclass(frozen=True)
class AutoencoderRecipe(Recipe):
    """A recipe plus the autoencoder's loss floor."""

    # Variance floor of the VMSE loss, in preprocessed (unit-variance) units. 1e-2 lets
    # near-constant frame-channels (22 % of Euler's, after its waves leave the domain)
    # carry most of the loss and gradients ~15x the clip; 1.0 weighs every channel by
    # roughly its share of the preprocessed variance (docs/zoo.md).
    loss_eps: float = VMSE_EPS

    def __post_init__(self) -> None:
        # A floor of 0 divides by the variance of constant frame-channels (an infinite
        # loss, every such batch skipped) and a negative one rewards error.
        check_positive("loss_eps", self.loss_eps)


# "small" is sized for 2 CPU cores (~80 frames/s): a few minutes per model.
# "wide8" (and "wide8deep") is the same recipe for the preset with spatial factor 8 at
# twice the width (and two blocks per level).
# "paper" follows the paper's batch and learning rate (AdamW instead of PSGD-Kron).
_SMALL = AutoencoderRecipe(
    steps=1200, batch_size=32, lr=2e-3, warmup_steps=100, checkpoint_every=250, validate_every=250
)
RECIPES: dict[str, AutoencoderRecipe] = {
    "small": _SMALL,
    "wide8": _SMALL,
    "wide8deep": _SMALL,
    "paper": AutoencoderRecipe(
        steps=262_144,
        batch_size=64,
        lr=1e-4,
        warmup_steps=1000,
        checkpoint_every=5000,
        validate_every=5000,
    ),
}


def dataset_boundaries(system: System, arrays: WellArrays) -> list[tuple[str, str]]:
    """Boundary pairs present in the data: an axis is periodic only if always periodic."""
    present = {
        tuple(sorted((k, str(v[i])) for k, v in arrays.choices.items()))
        for i in range(len(arrays.fields))
    }
    return [system.boundary_conditions(dict(choice)) for choice in sorted(present)]


def frames_of(arrays: WellArrays) -> torch.Tensor:
    """(N, T, C, X, Y) trajectories as (N*T, C, X, Y) frames."""
    fields = torch.from_numpy(arrays.fields)
    return fields.reshape(-1, *fields.shape[2:])


def reconstruction_loss(eps: float):
    """VMSE of the reconstruction with variance floor `eps` (the recipe's `loss_eps`)."""

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        frames = batch["frames"]
        return vmse(model(frames), frames, eps)

    return loss


@torch.inference_mode()
def reconstruct(
    model: Autoencoder, preprocessing: Preprocessing, frames: torch.Tensor, *, batch: int = 64
) -> torch.Tensor:
    """Physical frames (N, C, X, Y) -> their reconstruction, in physical units, on CPU."""
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(frames), batch):
        chunk = frames[start : start + batch].to(device)
        outputs.append(preprocessing.inverse(model(preprocessing(chunk))).cpu())
    return torch.cat(outputs)


def reconstruction_scores(
    truth: torch.Tensor, reconstruction: torch.Tensor, channel_names: Sequence[str]
) -> dict[str, Any]:
    """VRMSE per field and its mean; spectral band errors per field and averaged."""
    per_field = vrmse(reconstruction, truth).mean(dim=0)  # (C,)
    bands = {
        name: value.mean(dim=0)
        for name, value in spectral_band_errors(reconstruction, truth).items()
    }
    return {
        "vrmse": {name: float(v) for name, v in zip(channel_names, per_field, strict=True)},
        "vrmse_mean": float(per_field.mean()),
        "spectral_error": {
            band: {name: float(v) for name, v in zip(channel_names, values, strict=True)}
            for band, values in bands.items()
        },
        "spectral_error_mean": {band: float(values.mean()) for band, values in bands.items()},
        "frames": len(truth),
    }


def evaluate_on_split(
    model: Autoencoder,
    preprocessing: Preprocessing,
    dataset: Path,
    split: str = "test",
    *,
    rate: float,
    max_frames: int | None = None,
) -> dict[str, Any]:
    """Reconstruction scores on a split, next to the fixed linear code at the same rate."""
    arrays = load_array(dataset, split)
    frames = frames_of(arrays)
    if max_frames is not None and len(frames) > max_frames:
        frames = frames[even_subset(len(frames), max_frames)]
    scores = reconstruction_scores(
        frames, reconstruct(model, preprocessing, frames), arrays.channel_names
    )
    scores.update({"split": split, "trajectories": len(arrays.fields)})
    scores["linear_code"] = linear_code_scores(preprocessing, frames, rate, arrays.channel_names)
    if arrays.seeds is not None:
        scores["seed_range"] = [int(arrays.seeds.min()), int(arrays.seeds.max())]
    return scores


def linear_code_scores(
    preprocessing: Preprocessing,
    frames: torch.Tensor,
    rate: float,
    channel_names: Sequence[str],
) -> dict[str, Any]:
    """VRMSE of the lowest-DCT-coefficient code with no more values than a latent at `rate`,
    applied in the autoencoder's own preprocessed space (engine.autoencoder.linear_code)."""
    code = LowFrequencyCode(frames.shape[1], tuple(frames.shape[-2:]), rate)
    decoded = preprocessing.inverse(code(preprocessing(frames)))
    scores = reconstruction_scores(frames, decoded, channel_names)
    return {
        "rate": code.rate,
        "coefficients_per_channel": code.coefficients_per_channel,
        "vrmse": scores["vrmse"],
        "vrmse_mean": scores["vrmse_mean"],
    }


def train_autoencoder(
    system_name: str,
    rate: float,
    *,
    data_root: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    preset: str = "small",
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    ema_decay: float | None = None,
    bf16: bool = False,
    optimizer: str = "adamw",
    loss_eps: float | None = None,
    seed: int = 0,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    output: str | os.PathLike[str] | None = None,
) -> Path | None:
    """Train one autoencoder; returns its card path (None on non-zero DDP ranks)."""
    if preset not in RECIPES:
        raise ParameterError("preset", preset, f"one of {', '.join(RECIPES)}")
    recipe = RECIPES[preset]
    if loss_eps is not None:
        recipe = replace(recipe, loss_eps=loss_eps)
    system = get_system(system_name)
    latent_shape(system.spec, rate, preset_spatial_factor(preset))  # refuse a bad rate first
    dataset = dataset_dir(data_root, system_name)
    train = load_array(dataset, "train")
    check_training_data(system, train, dataset)
    channels = system.spec.channel_names
    preprocessing = fit_preprocessing(train.fields, channels, default_log_channels(system_name))
    frames = preprocessing(frames_of(train))
    del train
    valid_arrays = load_array(dataset, "valid")
    boundaries = dataset_boundaries(system, valid_arrays)
    config = autoencoder_config(system.spec, rate, preset, boundaries=boundaries)
    valid = frames_of(valid_arrays)
    valid = valid[even_subset(len(valid), min(len(valid), VALIDATION_FRAMES))]
    del valid_arrays

    train_config = recipe.train_config(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        ema_decay=ema_decay,
        bf16=bf16,
        optimizer=optimizer,
    )

    def validate(model: nn.Module, source: torch.Tensor) -> dict[str, float]:
        scores = reconstruction_scores(source, reconstruct(model, preprocessing, source), channels)
        return {"valid_vrmse": scores["vrmse_mean"]}

    symmetries = symmetries_of(system.spec, config.periodic)
    started = time.perf_counter()
    result = run_training(
        lambda: Autoencoder(config),
        reconstruction_loss(recipe.loss_eps),
        TensorDictSource({"frames": frames}, augment=symmetry_augmentation(symmetries)),
        train_config,
        run_dir,
        val_source=valid,
        validate_fn=validate,
        resume=resume,
        progress=progress,
    )
    if not is_main_process():
        return None
    model = result.model.eval()
    training = training_record(
        preset,
        recipe,
        train_config,
        result,
        started=started,
        device=device,
        data={
            "dataset": str(dataset),
            "train_frames": len(frames),
            "augmentation": symmetries.describe(),
        },
        test_metrics=evaluate_on_split(model, preprocessing, dataset, "test", rate=rate),
    )
    out = output_stem(output, run_dir)
    return save_autoencoder(
        out.parent,
        out.name,
        model.cpu(),
        preprocessing,
        system=system_name,
        grid=system.spec.grid.shape,
        rate=rate,
        training=training,
    )
