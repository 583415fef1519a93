"""What every training stage shares: recipes, the dataset's location, the card's record.

A stage trains one kind of model end to end (engine/stages/autoencoder.py,
engine/stages/emulator.py); everything here is the same for both, so each model card
records its training the same way.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.data.generate import metadata_path
from engine.data.well_reader import WellArrays
from engine.device import machine_info, resolve_device
from engine.errors import DataFormatError
from engine.systems import System
from engine.training import TrainConfig, TrainResult


@dataclass(frozen=True)
class Recipe:
    """Optimisation settings of a preset; recorded in every card."""

    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    checkpoint_every: int
    validate_every: int

    def train_config(
        self,
        *,
        steps: int | None,
        batch_size: int | None,
        lr: float | None,
        seed: int,
        device: str,
        ema_decay: float | None = None,
        bf16: bool = False,
        optimizer: str = "adamw",
    ) -> TrainConfig:
        """The trainer's config: this recipe with the given overrides (None keeps the
        recipe's). Warm-up is at most a tenth of the run; no weight decay and gradients
        clipped at norm 1, for every model kind; the optimiser (AdamW or PSGD-Kron), weight
        EMA and bf16 autocast are the run's choice, not the recipe's (docs/zoo.md measures
        each)."""
        steps = self.steps if steps is None else steps
        return TrainConfig(
            steps=steps,
            optimizer=optimizer,
            batch_size=self.batch_size if batch_size is None else batch_size,
            lr=self.lr if lr is None else lr,
            warmup_steps=min(self.warmup_steps, steps // 10),
            weight_decay=0.0,
            grad_clip=1.0,
            ema_decay=ema_decay,
            bf16=bf16,
            checkpoint_every=self.checkpoint_every,
            validate_every=self.validate_every,
            seed=seed,
            device=device,
        )


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


def even_subset(total: int, count: int) -> torch.Tensor:
    """`count` evenly spaced indices into `total` items: a fixed, representative subset."""
    return torch.linspace(0, total - 1, count).round().long()


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
