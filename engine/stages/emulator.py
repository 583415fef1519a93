"""Stage: train and score a latent (or pixel-space) emulator of a system on its dataset.

The steps mirror `latentsim train-ae` (engine/stages/autoencoder.py):

1. Frames in model space. Latent emulators read the dataset through the latent cache
   (encoded once per autoencoder, reused while it matches); pixel-space baselines fit the
   preprocessing on the train split as train-ae does, and store it in their card.
2. One label per trajectory from its recorded parameters and choices (engine.emulator.labels).
3. Training on windows of L frames at stride Δ through the shared trainer (resumable,
   DDP-ready); validation is the training loss on fixed held-out windows (a fixed context
   length per window and, for diffusion, noise levels from the trainer's validation stream,
   so the numbers are comparable from one validation to the next).
4. On rank 0: rollouts from a few held-out *test* trajectories through the same Pipeline,
   rollout engine and held-out protocol as the app and `latentsim evaluate`
   (engine/stages/heldout.py), scored in physical units (VRMSE by lead time,
   spread-skill), and the model file with everything needed to trust it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from engine.autoencoder.ladder import ladder
from engine.autoencoder.model import Autoencoder
from engine.data.well_reader import WellArrays, load_array
from engine.emulator.base import KINDS, SPACES, Emulator
from engine.emulator.config import DEFAULT_PATCH, preset_config
from engine.emulator.labels import LabelSpec, condition_labels
from engine.emulator.models import (
    build_emulator,
    check_kind_and_prediction,
    save_emulator,
)
from engine.emulator.windows import WindowSource, emulator_loss
from engine.errors import DataFormatError, ParameterError
from engine.latents import LatentArrays, encode_dataset, load_latents
from engine.model_files import load_autoencoder, load_model_card, model_paths
from engine.paths import assets_root
from engine.pipeline import Pipeline
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
from engine.stages.heldout import EvaluationRollouts, score_test_rollouts
from engine.stages.testset import trajectory_conditions
from engine.systems import System, get_system
from engine.systems.base import SystemSpec
from engine.training import run_training

VALIDATION_WINDOWS = 256


# "small": the small backbone preset (about 3.5M parameters), sized for 2 CPU cores
# (about half a second per batch of 64 windows of 80 latent tokens, so ~35 minutes).
# Its lr was measured over 150 steps of 32 windows of Rayleigh-Benard ae64 latents (32
# train trajectories): held-out diffusion loss 0.32 / 0.24 / 0.19 at lr 3e-4 / 1e-3 /
# 3e-3, deterministic MSE 0.83 / 0.41 at 3e-4 / 1e-3. 1e-3 is the middle choice: 3e-3
# led that early but was not run over thousands of steps.
# "paper": the paper's denoiser and optimisation (section 5): AdamW lr 1e-4,
# betas (0.9, 0.99), no weight decay, clip 1, cosine, batch 256, 262,144 steps.
RECIPES: dict[str, Recipe] = {
    "small": Recipe(
        steps=4000,
        batch_size=64,
        lr=1e-3,
        warmup_steps=200,
        checkpoint_every=500,
        validate_every=500,
    ),
    # "compact": the zoo's emulators. 22 of them must train on two CPU cores in a few
    # hours: about 0.2 s per batch of 32 windows on one thread, so ~7 minutes each.
    "compact": Recipe(
        steps=2000,
        batch_size=32,
        lr=1e-3,
        warmup_steps=100,
        checkpoint_every=250,
        validate_every=500,
    ),
    "paper": Recipe(
        steps=262_144,
        batch_size=256,
        lr=1e-4,
        warmup_steps=0,
        checkpoint_every=5000,
        validate_every=5000,
    ),
}


@dataclass
class ModelSpace:
    """A system's dataset in the emulator's frame space, with what maps it back."""

    train: Tensor  # (N, T, C, h, w)
    train_labels: Tensor  # (N, P)
    valid: Tensor
    valid_labels: Tensor
    preprocessing: Preprocessing
    autoencoder: Autoencoder | None = None  # None in pixel space
    autoencoder_card: dict[str, Any] | None = None
    autoencoder_path: Path | None = None


def default_autoencoder_path(system_name: str, rate: float) -> Path:
    """Where `latentsim train-ae --output` puts the shipped autoencoders."""
    return assets_root() / "autoencoders" / f"{system_name}-ae{rate:g}"


def _labels(
    labels: LabelSpec, arrays: WellArrays | LatentArrays, count: int, where: object
) -> Tensor:
    """(count, P) labels of a split's trajectories."""
    conditions = trajectory_conditions(labels, arrays.parameters, arrays.choices, count, where)
    return condition_labels(labels, conditions).reshape(count, labels.dim)


def check_autoencoder(path: Path, system_name: str, rate: float) -> dict[str, Any]:
    """The card of the autoencoder at `path`, refused unless it is one of `system_name`
    at `rate`; a missing one says how to train it."""
    _, card_path = model_paths(path)
    if not card_path.is_file():
        raise DataFormatError(
            card_path,
            f"no autoencoder here; train it with `latentsim train-ae {system_name} --rate "
            f"{rate:g} --output {card_path.with_suffix('')}`, or pass --autoencoder",
        )
    card = load_model_card(path)
    if (
        card.get("kind") != "autoencoder"
        or card.get("system") != system_name
        or (card.get("rate") != rate)
    ):
        raise ParameterError(
            "autoencoder",
            f"{card_path} ({card.get('kind')} of {card.get('system')} at rate {card.get('rate')})",
            f"an autoencoder of {system_name} at rate {rate:g}",
        )
    return card


def latent_space(
    system: System, dataset: Path, autoencoder_path: Path, card: Mapping[str, Any], device: str
) -> ModelSpace:
    """Train and valid latents through the (reused or rebuilt) latent cache."""
    spec = system.spec
    if tuple(card["grid"]) != spec.grid.shape:
        raise ParameterError(
            "autoencoder grid", tuple(card["grid"]), f"{spec.name}'s grid {spec.grid.shape}"
        )
    paths = encode_dataset(autoencoder_path, dataset, splits=("train", "valid"), device=device)
    labels = LabelSpec.from_system(spec)
    splits = {}
    for split, path in paths.items():
        arrays = load_latents(path, autoencoder_sha256=card["weights"]["sha256"])
        latents = torch.from_numpy(arrays.latents)
        splits[split] = (latents, _labels(labels, arrays, len(latents), path))
    model, preprocessing, card = load_autoencoder(autoencoder_path, spec, "cpu")
    return ModelSpace(
        *splits["train"], *splits["valid"], preprocessing, model, dict(card), autoencoder_path
    )


def pixel_space(system: System, dataset: Path) -> ModelSpace:
    """Preprocessed train and valid trajectories; the preprocessing is fitted as in train-ae."""
    spec = system.spec
    labels = LabelSpec.from_system(spec)
    train = load_array(dataset, "train")
    check_training_data(system, train, dataset)
    preprocessing = fit_preprocessing(
        train.fields, spec.channel_names, default_log_channels(spec.name)
    )
    splits = {}
    for split, arrays in (("train", train), ("valid", load_array(dataset, "valid"))):
        frames = preprocessing(torch.from_numpy(arrays.fields))
        splits[split] = (frames, _labels(labels, arrays, len(frames), dataset))
    return ModelSpace(*splits["train"], *splits["valid"], preprocessing)


def validation_windows(
    trajectories: Tensor, labels: Tensor, window: int, stride: int, count: int
) -> dict[str, Tensor]:
    """Up to `count` held-out windows spread evenly over trajectories and start times,
    with context lengths cycling through 1..L-1 so every length is validated."""
    source = WindowSource(trajectories, labels, window=window, stride=stride)
    indices = even_subset(len(source), min(len(source), count))
    batch = source.batch(indices, torch.Generator())
    batch["context_length"] = torch.arange(len(indices)) % (window - 1) + 1
    return batch


def window_loss(model: nn.Module, windows: Mapping[str, Tensor], chunk: int = 64) -> float:
    """Mean training loss of `model` over validation windows, in chunks."""
    device = next(model.parameters()).device
    total, count = 0.0, len(windows["window"])
    for start in range(0, count, chunk):
        part = {k: v[start : start + chunk].to(device) for k, v in windows.items()}
        total += float(model.loss(part)) * len(part["window"])
    return total / count


def _resolve_patch(
    spec: SystemSpec, space: str, rate: float | None, autoencoder: object, patch: int | None
) -> int:
    """The patch size, after refusing what the space does not take: latent emulators need
    a rate on the system's ladder and default to patch 1 (a finer latent grid, e.g. of a
    factor-8 autoencoder, takes patch 2 to keep the token count; the latent grid is checked
    once the autoencoder is read); pixel ones take no rate or autoencoder and a patch that
    divides the grid (default 16)."""
    if space == "latent":
        rates = ladder(spec.name)
        if rate not in rates:
            raise ParameterError(
                "rate", rate, f"one of {', '.join(map(str, rates))} ({spec.name}'s ladder)"
            )
        patch = 1 if patch is None else patch
        check_patch(patch, (patch,))
        return patch
    if rate is not None or autoencoder is not None:
        raise ParameterError(
            "rate / autoencoder", (rate, autoencoder), "neither, for a pixel-space emulator"
        )
    patch = DEFAULT_PATCH if patch is None else patch
    check_patch(patch, spec.grid.shape)
    return patch


def check_patch(patch: object, grid: tuple[int, ...]) -> None:
    """Refuse a patch that is not a positive divisor of every size of `grid`."""
    if (
        isinstance(patch, bool)
        or not isinstance(patch, int)
        or patch < 1
        or any(n % patch for n in grid)
    ):
        raise ParameterError("patch", patch, f"a positive divisor of both grid sizes {grid}")


def train_emulator(
    system_name: str,
    rate: float | None = None,
    *,
    kind: str,
    data_root: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    space: str = "latent",
    autoencoder: str | os.PathLike[str] | None = None,
    patch: int | None = None,
    prediction: str | None = None,
    preset: str = "small",
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    ema_decay: float | None = None,
    bf16: bool = False,
    optimizer: str = "adamw",
    frame_stride: int = 1,
    seed: int = 0,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    output: str | os.PathLike[str] | None = None,
    backbone_overrides: Mapping[str, Any] | None = None,
    test_rollouts: EvaluationRollouts = EvaluationRollouts(),
) -> Path | None:
    """Train one emulator; returns its card path (None on non-zero DDP ranks).

    Latent space needs `rate` (a rung of the system's ladder) and the autoencoder of that
    rate (default: assets/autoencoders/SYSTEM-aeRATE); pixel space takes neither, and
    `patch` (default 16). `backbone_overrides` replaces fields of the preset's backbone
    (e.g. a narrower network); they are recorded in the card with the rest. `prediction`
    (diffusion only) is the denoiser's parametrisation, "edm" (default) or "data".
    """
    if kind not in KINDS:
        raise ParameterError("kind", kind, f"one of {', '.join(KINDS)}")
    check_kind_and_prediction(kind, prediction)  # before any data is read
    if space not in SPACES:
        raise ParameterError("space", space, f"one of {', '.join(SPACES)}")
    if preset not in RECIPES:
        raise ParameterError("preset", preset, f"one of {', '.join(RECIPES)}")
    recipe = RECIPES[preset]
    system = get_system(system_name)
    spec = system.spec
    patch = _resolve_patch(spec, space, rate, autoencoder, patch)
    overrides = dict(backbone_overrides or {})
    if "patch" in overrides:
        raise ParameterError("backbone override", "patch", "another field (set `patch` itself)")
    backbone = preset_config(preset, patch=patch, **overrides)
    dataset = dataset_dir(data_root, system_name)
    if space == "latent":
        ae_path = (
            Path(autoencoder)
            if autoencoder is not None
            else (default_autoencoder_path(system_name, rate))
        )
        card = check_autoencoder(ae_path, system_name, rate)
        data = latent_space(system, dataset, ae_path, card, device)
    else:
        data = pixel_space(system, dataset)
    channels, grid = data.train.shape[2], tuple(data.train.shape[3:])
    check_patch(patch, grid)
    label_dim = data.train_labels.shape[1]
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
    source = WindowSource(data.train, data.train_labels, backbone.window, frame_stride)
    valid = validation_windows(
        data.valid, data.valid_labels, backbone.window, frame_stride, VALIDATION_WINDOWS
    )

    def validate(model: nn.Module, windows: dict[str, Tensor]) -> dict[str, float]:
        return {"valid_loss": window_loss(model, windows)}

    started = time.perf_counter()
    result = run_training(
        lambda: build_emulator(kind, backbone, channels, grid, label_dim, space, prediction),
        emulator_loss,
        source,
        train_config,
        run_dir,
        val_source=valid,
        validate_fn=validate,
        resume=resume,
        progress=progress,
    )
    if not is_main_process():
        return None
    model: Emulator = result.model.eval()
    pipeline = Pipeline(
        spec, data.preprocessing, model, data.autoencoder, device, frame_stride=frame_stride
    )
    training = training_record(
        preset,
        recipe,
        train_config,
        result,
        started=started,
        device=device,
        data={
            "dataset": str(dataset),
            "space": space,
            "train_trajectories": len(data.train),
            "frames_per_trajectory": data.train.shape[1],
            "train_windows": len(source),
            "validation_windows": len(valid["window"]),
            "augmentation": "none",
        },
        test_metrics=score_test_rollouts(pipeline, dataset, test_rollouts),
        backbone_overrides=overrides,
        autoencoder_file=str(data.autoencoder_path) if data.autoencoder_path else None,
    )
    out = output_stem(output, run_dir)
    return save_emulator(
        out.parent,
        out.name,
        model.cpu(),
        system=spec,
        frame_stride=frame_stride,
        autoencoder=data.autoencoder_card if space == "latent" else None,
        preprocessing=data.preprocessing if space == "pixel" else None,
        training=training,
    )
