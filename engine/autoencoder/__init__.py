"""Frame autoencoders: config and presets, the network, and the compression ladders."""

from engine.autoencoder.config import PRESETS, AutoencoderConfig, preset_config
from engine.autoencoder.ladder import (
    LADDERS,
    autoencoder_config,
    ladder,
    latent_shape,
    periodic_axes,
    reachable_rates,
)
from engine.autoencoder.model import Autoencoder

__all__ = [
    "LADDERS",
    "PRESETS",
    "Autoencoder",
    "AutoencoderConfig",
    "autoencoder_config",
    "ladder",
    "latent_shape",
    "periodic_axes",
    "preset_config",
    "reachable_rates",
]
