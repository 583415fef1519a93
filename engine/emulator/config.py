"""The emulator backbone's hyper-parameters as plain data.

A config is stored in every emulator model card, so a saved emulator can be rebuilt
without the code that trained it: everything is JSON-friendly and validated on
construction. The same config serves the latent (patch 1) and pixel (patch p) models
and both training objectives (diffusion, deterministic).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from engine.errors import ParameterError, UnknownNameError, check_integer, reject_unknown_fields

# How positions enter the network (engine/emulator/backbone.py says why):
# - "rope": rotary embedding over (t, x, y) with fixed axial frequencies;
# - "mixed-rope": rotary frequencies learned per layer and head (starting axial), which lets
#   attention follow space-time diagonals, i.e. things that move (the paper's choice);
# - "+absolute": plus a learned projection (zero at init) of per-axis sinusoidal features
#   of the absolute (t, x, y) position, so the model can locate walls and open boundaries.
POSITIONS = ("rope", "rope+absolute", "mixed-rope", "mixed-rope+absolute")
# Pixel baselines: 16 x 16 patches, the paper's pixel ViT (arXiv:2507.02608), give as
# many tokens per frame as a x16 autoencoder's latent grid, so latent and pixel emulators
# of one size cost the same per step; every system grid is a multiple of 16.
DEFAULT_PATCH = 16

PRESETS: dict[str, dict[str, Any]] = {
    # CPU-trainable (width 128-256, 4-6 blocks). Head dim 32. About
    # 3.5M parameters; on 80 latent tokens a batch of 64 trains in about half a second
    # on two CPU cores (measurements in the emulator report).
    "small": {"width": 192, "depth": 6, "heads": 6, "cond_dim": 128},
    # The zoo's size: about 1.3M parameters, a third of "small"'s cost per step, so that
    # every system x rate x kind trains on two CPU cores in a few hours.
    "compact": {"width": 128, "depth": 4, "heads": 4, "cond_dim": 128},
    # The paper's denoiser (section 4): about 224M parameters with cond_dim 256.
    "paper": {"width": 1024, "depth": 16, "heads": 8, "cond_dim": 256},
}


@dataclass(frozen=True)
class BackboneConfig:
    """Shape of the emulator transformer.

    `patch` is the spatial patch size: 1 in latent space (one token per latent cell per
    frame), p > 1 on pixels (one token per p x p patch per frame). `window` is the number
    of frames L the network sees at once (context and generated frames together).
    `cond_dim` is the width of the conditioning vector that drives every modulation.
    """

    width: int
    depth: int
    heads: int
    mlp_ratio: int = 4
    dropout: float = 0.05
    patch: int = 1
    window: int = 5
    cond_dim: int = 256
    positions: str = "mixed-rope"

    def __post_init__(self) -> None:
        check_integer("width", self.width, 1)
        check_integer("depth", self.depth, 1)
        check_integer("heads", self.heads, 1)
        check_integer("mlp_ratio", self.mlp_ratio, 1)
        check_integer("patch", self.patch, 1)
        check_integer("window", self.window, 2)
        check_integer("cond_dim", self.cond_dim, 2)
        if self.width % self.heads:
            raise ParameterError("width", self.width, f"a multiple of heads={self.heads}")
        if self.head_dim % 2 or self.head_dim < 6:
            # Rotary pairs, at least one per axis (t, x, y).
            raise ParameterError("width / heads", self.head_dim, "an even head dimension >= 6")
        if self.cond_dim % 2:
            raise ParameterError("cond_dim", self.cond_dim, "an even integer (sin/cos pairs)")
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, int | float):
            raise ParameterError("dropout", dropout, "a number in [0, 1)")
        if not 0.0 <= dropout < 1.0:
            raise ParameterError("dropout", dropout, "a number in [0, 1)")
        object.__setattr__(self, "dropout", float(dropout))
        if self.positions not in POSITIONS:
            raise ParameterError("positions", self.positions, f"one of {', '.join(POSITIONS)}")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackboneConfig:
        """Inverse of `to_dict`; unknown or missing keys are errors, not silently dropped."""
        if not isinstance(data, Mapping):
            raise ParameterError("backbone config", data, "a mapping of field names to values")
        reject_unknown_fields(cls, data, "backbone config")
        try:
            return cls(**data)
        except TypeError as err:  # a required key is missing
            raise ParameterError("backbone config", dict(data), str(err)) from err


def preset_config(preset: str, **overrides: Any) -> BackboneConfig:
    """A named preset, e.g. preset_config("small", patch=8) for a pixel-space model."""
    if preset not in PRESETS:
        raise UnknownNameError("emulator preset", preset, PRESETS)
    names = {f.name for f in fields(BackboneConfig)}
    for key in overrides:
        if key not in names:
            raise ParameterError("backbone config key", key, f"one of {sorted(names)}")
    return replace(BackboneConfig(**PRESETS[preset]), **overrides)
