"""An autoencoder's model file: its weights, config and preprocessing in one card.

Built on the generic format of engine/model_format.py; `load_autoencoder` refuses a card
whose system, channels or tensors do not match what it claims.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from engine.autoencoder.config import AutoencoderConfig
from engine.autoencoder.ladder import latent_shape
from engine.autoencoder.model import Autoencoder
from engine.device import resolve_device
from engine.errors import DataFormatError, LatentsimError, ParameterError
from engine.model_format import check_tensors, load_model_of_kind, save_model
from engine.preprocessing import Preprocessing
from engine.systems.base import SystemSpec

CARD_KIND = "autoencoder"
_CARD_KEYS = ("rate", "grid", "latent_shape", "config", "preprocessing")


def save_autoencoder(
    directory: str | os.PathLike[str],
    name: str,
    model: Autoencoder,
    preprocessing: Preprocessing,
    *,
    system: str,
    grid: tuple[int, int],
    rate: float,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Save an autoencoder with everything `load_autoencoder` needs to rebuild it.

    `training` is free-form run information (steps, loss, optimiser, data, seed...).
    """
    config = model.config
    channels = preprocessing.channel_names
    if len(channels) != config.in_channels:
        raise ParameterError(
            "preprocessing channels", channels, f"{config.in_channels} channels, as the model"
        )
    shape = latent_shape((len(channels), grid), rate, config.spatial_factor)
    if shape[0] != config.latent_channels:
        raise ParameterError(
            "rate", rate, f"the model's rate ({config.latent_channels} latent channels)"
        )
    card = {
        "kind": CARD_KIND,
        "system": system,
        "rate": rate,
        "grid": list(grid),
        "channels": list(channels),
        "latent_shape": list(shape),
        "config": config.to_dict(),
        "preprocessing": preprocessing.to_dict(),
        "parameters": model.parameter_counts(),
        "training": dict(training or {}),
    }
    return save_model(directory, name, model, card)


def load_autoencoder(
    path: str | os.PathLike[str],
    system: str | SystemSpec | None = None,
    device: str | torch.device | None = "auto",
) -> tuple[Autoencoder, Preprocessing, dict[str, Any]]:
    """Rebuild a saved autoencoder (in eval mode), its preprocessing and its card.

    Passing `system` (a name or a spec) refuses a model trained on another system; a
    spec also has to match the model's channels.
    """
    state, card, card_path = load_model_of_kind(path, CARD_KIND, _CARD_KEYS, system)
    try:
        config = AutoencoderConfig.from_dict(card["config"])
        preprocessing = Preprocessing.from_dict(card["preprocessing"])
    except LatentsimError as err:
        raise DataFormatError(card_path, f"invalid autoencoder card: {err}") from err
    if isinstance(system, SystemSpec) and preprocessing.channel_names != system.channel_names:
        raise DataFormatError(
            card_path,
            f"channels {list(preprocessing.channel_names)} do not match "
            f"{system.name}'s {list(system.channel_names)}",
        )
    model = Autoencoder(config)
    check_tensors(state, model.state_dict(), card_path)
    model.load_state_dict(state, strict=True)
    return model.to(resolve_device(device)).eval(), preprocessing, card
