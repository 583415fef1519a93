"""The autoencoder's hyper-parameters as plain data.

A config is stored in every model card, so a saved autoencoder can be rebuilt without
the code that trained it; everything here is therefore JSON-friendly (ints, floats,
bools and tuples of them) and validated on construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from engine.errors import ParameterError, UnknownNameError, check_integer, reject_unknown_fields

# Width per level and residual blocks per level. Both presets have five levels, so a
# x16 spatial factor: the one that makes the paper's ladders reachable on 64-pixel
# fields (4x4 latents with 16 / 4 / 1 channels).
PRESETS: dict[str, dict[str, Any]] = {
    # CPU-trainable: width doubles as resolution halves, so every level costs about the
    # same (2.4M multiply-adds per 3x3 conv on a 64x64 frame); 0.18 GFLOP per forward
    # pass, ~0.5 GFLOP per training frame, 1.6M parameters.
    "small": {"widths": (8, 16, 32, 64, 128), "blocks_per_level": 1},
    # Spatial factor 8 (four levels), twice the small preset's width: at the same rate
    # the latent is a 4x finer grid with 4x fewer channels, which keeps the position of
    # sharp features (Euler's shocks) that a 4x4 latent of a 64x64 frame must smear.
    "wide8": {"widths": (16, 32, 64, 128), "blocks_per_level": 1},
    # wide8 with two blocks per level (2.4M parameters, 1.5x the cost per step): on Euler
    # x80 at 1500 steps, test VRMSE 0.220 against wide8's 0.246, where widths x1.5 (3.5M)
    # reached 0.231 (docs/zoo.md, "capacity"): depth is the cheaper capacity.
    "wide8deep": {"widths": (16, 32, 64, 128), "blocks_per_level": 2},
    # GPU scale, the paper's 2D design cut to five levels (about 200M parameters).
    "paper": {"widths": (64, 128, 256, 512, 1024), "blocks_per_level": 3},
}


@dataclass(frozen=True)
class AutoencoderConfig:
    """Shape of a DC-AE-style convolutional autoencoder.

    `widths[i]` is the channel width at level i; there is a 2x resampling between
    consecutive levels, so the spatial factor is 2**(levels - 1). `periodic` says, per
    axis (x, y), whether convolutions wrap around (circular padding) or see zeros.
    """

    in_channels: int
    latent_channels: int
    widths: tuple[int, ...]
    blocks_per_level: int
    dropout: float = 0.05
    periodic: tuple[bool, bool] = (False, False)
    kernel: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "periodic", tuple(self.periodic))
        check_integer("in_channels", self.in_channels, 1)
        check_integer("latent_channels", self.latent_channels, 1)
        check_integer("blocks_per_level", self.blocks_per_level, 0)
        if not self.widths:
            raise ParameterError("widths", self.widths, "a non-empty tuple of positive integers")
        for width in self.widths:
            check_integer("widths", width, 1)
        if not (isinstance(self.dropout, float | int) and 0.0 <= self.dropout < 1.0):
            raise ParameterError("dropout", self.dropout, "a number in [0, 1)")
        if len(self.periodic) != 2 or not all(isinstance(p, bool) for p in self.periodic):
            raise ParameterError("periodic", self.periodic, "two booleans, one per axis (x, y)")
        check_integer("kernel", self.kernel, 1)
        if self.kernel % 2 == 0:
            raise ParameterError("kernel", self.kernel, "an odd integer >= 1")

    @property
    def levels(self) -> int:
        return len(self.widths)

    @property
    def spatial_factor(self) -> int:
        """How many pixels per axis one latent cell covers."""
        return 2 ** (self.levels - 1)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["widths"] = list(self.widths)
        data["periodic"] = list(self.periodic)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AutoencoderConfig:
        reject_unknown_fields(cls, data, "autoencoder config")
        values = dict(data)
        if "widths" in values:
            values["widths"] = tuple(values["widths"])
        if "periodic" in values:
            values["periodic"] = tuple(values["periodic"])
        try:
            return cls(**values)
        except TypeError as err:  # a required key is missing
            raise ParameterError("autoencoder config", dict(data), str(err)) from err


def preset_config(
    preset: str, in_channels: int, latent_channels: int, periodic: tuple[bool, bool]
) -> AutoencoderConfig:
    """A named preset sized for the given channels and boundary handling."""
    if preset not in PRESETS:
        raise UnknownNameError("autoencoder preset", preset, PRESETS)
    return AutoencoderConfig(
        in_channels=in_channels,
        latent_channels=latent_channels,
        periodic=tuple(periodic),  # type: ignore[arg-type]
        **PRESETS[preset],
    )


def preset_spatial_factor(preset: str) -> int:
    if preset not in PRESETS:
        raise UnknownNameError("autoencoder preset", preset, PRESETS)
    return 2 ** (len(PRESETS[preset]["widths"]) - 1)
