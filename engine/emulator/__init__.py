"""Emulators: a transformer over windows of frames, trained as a diffusion model or as a
deterministic solver, in latent space (patch 1) or pixel space (patch p).

The interface the rollout engine relies on is docs/dev/EMULATOR_INTERFACE.md.
"""

from engine.emulator.backbone import Backbone
from engine.emulator.base import KINDS, SPACES, Emulator
from engine.emulator.config import POSITIONS, PRESETS, BackboneConfig, preset_config
from engine.emulator.flops import emulator_flops, network_flops
from engine.emulator.labels import LabelSpec, condition_label, condition_labels, label_dim
from engine.emulator.models import (
    EMULATORS,
    DeterministicEmulator,
    DiffusionEmulator,
    build_emulator,
    check_autoencoder_pair,
    default_sampler,
    load_emulator,
    save_emulator,
)
from engine.emulator.windows import WindowSource, emulator_loss

__all__ = [
    "EMULATORS",
    "KINDS",
    "POSITIONS",
    "PRESETS",
    "SPACES",
    "Backbone",
    "BackboneConfig",
    "DeterministicEmulator",
    "DiffusionEmulator",
    "Emulator",
    "LabelSpec",
    "WindowSource",
    "build_emulator",
    "check_autoencoder_pair",
    "condition_label",
    "condition_labels",
    "default_sampler",
    "emulator_flops",
    "emulator_loss",
    "label_dim",
    "load_emulator",
    "network_flops",
    "preset_config",
    "save_emulator",
]
