"""Train and evaluate an autoencoder of a system's compression ladder on its dataset.

The steps are deliberately plain: load the train split into memory, fit the
preprocessing on it, train the autoencoder on single preprocessed frames with the shared
trainer (resumable, DDP-ready), then score reconstructions of the held-out test split in
physical units and save safetensors + a JSON card with those metrics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.autoencoder.config import preset_spatial_factor
from engine.autoencoder.ladder import autoencoder_config, latent_shape
from engine.autoencoder.model import Autoencoder
from engine.bench.common import machine_info
from engine.data.generate import metadata_path
from engine.data.well_reader import WellArrays, load_array
from engine.device import resolve_device
from engine.errors import DataFormatError, ParameterError
from engine.losses import vmse
from engine.metrics import spectral_band_errors, vrmse
from engine.model_files import save_autoencoder
from engine.preprocessing import Preprocessing, default_log_channels, fit_preprocessing
from engine.systems import System, get_system
from engine.training import TensorDictSource, TrainConfig, TrainResult, run_training

VALIDATION_FRAMES = 256


@dataclass(frozen=True)
class Recipe:
    """Optimisation settings of a preset; recorded in every card."""

    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    checkpoint_every: int
    validate_every: int


# "small" is sized for 2 CPU cores (~80 frames/s): a few minutes per model.
# "paper" follows the paper's batch and learning rate (AdamW instead of PSGD-Kron).
RECIPES: dict[str, Recipe] = {
    "small": Recipe(steps=1200, batch_size=32, lr=2e-3, warmup_steps=100,
                    checkpoint_every=250, validate_every=250),
    "paper": Recipe(steps=262_144, batch_size=64, lr=1e-4, warmup_steps=1000,
                    checkpoint_every=5000, validate_every=5000),
}


def dataset_dir(data_root: str | os.PathLike[str], system_name: str) -> Path:
    """The generated dataset of a system, refusing an incomplete one."""
    directory = Path(data_root) / system_name
    if not metadata_path(directory).is_file():
        raise DataFormatError(
            directory,
            f"no complete dataset (missing {metadata_path(directory).name}); "
            f"run `latentsim generate {system_name}` first",
        )
    return directory


def dataset_boundaries(system: System, arrays: WellArrays) -> list[tuple[str, str]]:
    """Boundary pairs present in the data: an axis is periodic only if always periodic."""
    present = {tuple(sorted((k, str(v[i])) for k, v in arrays.choices.items()))
               for i in range(len(arrays.fields))}
    return [system.boundary_conditions(dict(choice)) for choice in sorted(present)]


def frames_of(arrays: WellArrays) -> torch.Tensor:
    """(N, T, C, X, Y) trajectories as (N*T, C, X, Y) frames."""
    fields = torch.from_numpy(arrays.fields)
    return fields.reshape(-1, *fields.shape[2:])


def roll_augmentation(periodic: tuple[bool, bool]):
    """Random rolls along periodic axes: translation is a symmetry of those frames."""
    axes = [axis for axis, is_periodic in zip((-2, -1), periodic, strict=True) if is_periodic]

    def augment(batch: dict[str, torch.Tensor], generator: torch.Generator):
        frames = batch["frames"]
        for axis in axes:
            shifts = torch.randint(frames.shape[axis], (len(frames),), generator=generator)
            frames = torch.stack(
                [torch.roll(f, int(s), dims=axis) for f, s in zip(frames, shifts, strict=True)]
            )
        return {"frames": frames}

    return augment if axes else None


def reconstruction_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    frames = batch["frames"]
    return vmse(model(frames), frames)


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
    bands = {name: value.mean(dim=0) for name, value in
             spectral_band_errors(reconstruction, truth).items()}
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
    model: Autoencoder, preprocessing: Preprocessing, dataset: Path, split: str = "test",
    *, max_frames: int | None = None,
) -> dict[str, Any]:
    arrays = load_array(dataset, split)
    frames = frames_of(arrays)
    if max_frames is not None and len(frames) > max_frames:
        frames = frames[even_subset(len(frames), max_frames)]
    scores = reconstruction_scores(
        frames, reconstruct(model, preprocessing, frames), arrays.channel_names
    )
    scores.update({"split": split, "trajectories": len(arrays.fields)})
    if arrays.seeds is not None:
        scores["seed_range"] = [int(arrays.seeds.min()), int(arrays.seeds.max())]
    return scores


def even_subset(total: int, count: int) -> torch.Tensor:
    """`count` evenly spaced indices into `total` items: a fixed, representative subset."""
    return torch.linspace(0, total - 1, count).round().long()


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

    train_config = TrainConfig(
        steps=recipe.steps if steps is None else steps,
        batch_size=recipe.batch_size if batch_size is None else batch_size,
        lr=recipe.lr if lr is None else lr,
        warmup_steps=min(recipe.warmup_steps, (recipe.steps if steps is None else steps) // 10),
        weight_decay=0.0,
        grad_clip=1.0,
        checkpoint_every=recipe.checkpoint_every,
        validate_every=recipe.validate_every,
        seed=seed,
        device=device,
    )

    def validate(model: nn.Module, source: torch.Tensor) -> dict[str, float]:
        scores = reconstruction_scores(source, reconstruct(model, preprocessing, source), channels)
        return {"valid_vrmse": scores["vrmse_mean"]}

    started = time.perf_counter()
    result = run_training(
        lambda: Autoencoder(config),
        reconstruction_loss,
        TensorDictSource({"frames": frames}, augment=roll_augmentation(config.periodic)),
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
        preset, recipe, train_config, result, started=started, device=device,
        data={"dataset": str(dataset), "train_frames": len(frames),
              "augmentation": "rolls along periodic axes" if any(config.periodic) else "none"},
        test_metrics=evaluate_on_split(model, preprocessing, dataset, "test"),
    )
    out = output_stem(output, run_dir)
    return save_autoencoder(
        out.parent, out.name, model.cpu(), preprocessing,
        system=system_name, grid=system.spec.grid.shape, rate=rate, training=training,
    )


def is_main_process() -> bool:
    """Rank 0 under torchrun (or a single process): the one that evaluates and saves."""
    return int(os.environ.get("RANK", "0")) == 0


def training_record(
    preset: str,
    recipe: Recipe,
    train_config: TrainConfig,
    result: TrainResult,
    *,
    started: float,
    device: str,
    data: dict[str, Any],
    test_metrics: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """What every model card records about how the model was trained."""
    return {
        "preset": preset,
        "recipe": asdict(recipe),
        **extra,
        "train_config": train_config.to_dict(),
        "steps": result.step,
        "skipped_steps": result.skipped_steps,
        "last_loss": result.last_loss,
        "validation": result.validation,
        "data": data,
        "wall_time_s_this_session": time.perf_counter() - started,
        "hardware": machine_info(resolve_device(device)),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "test_metrics": test_metrics,
    }


def output_stem(output: str | os.PathLike[str] | None, run_dir: str | os.PathLike[str]) -> Path:
    """Where the model file goes: `output`, or RUN_DIR/model."""
    return Path(output) if output is not None else Path(run_dir) / "model"


def check_training_data(system: System, arrays: WellArrays, dataset: Path) -> None:
    """Refuse data on another grid than the system's, or containing NaN/inf."""
    grid = tuple(arrays.fields.shape[-2:])
    if grid != system.spec.grid.shape:
        raise DataFormatError(
            dataset, f"grid {grid} differs from {system.name}'s default {system.spec.grid.shape}"
        )
    if not np.isfinite(arrays.fields).all():
        raise DataFormatError(dataset, "training data contains NaN or inf")
