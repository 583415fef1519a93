"""Compression ladders: which latent shape gives which compression rate.

Compression = field values per frame / latent values per frame (arXiv:2507.02608).
A x16 autoencoder turns an X x Y grid into (X/16) x (Y/16) latent cells, so with C
field channels and c latent channels the rate is 256 * C / c whatever the grid: the
paper's ladders are the rungs c = 16 / 4 / 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from engine.autoencoder.config import AutoencoderConfig, preset_config, preset_spatial_factor
from engine.errors import ParameterError, UnknownNameError
from engine.systems.base import BOUNDARY_TYPES, SystemSpec

# The paper's rates per system, lowest compression first.
LADDERS: dict[str, tuple[int, int, int]] = {
    "euler_quadrants": (80, 320, 1280),
    "rayleigh_benard": (64, 256, 1024),
    "kolmogorov": (48, 192, 768),
}
DEFAULT_SPATIAL_FACTOR = 16

# A spec, or (channels as a count or names, grid (X, Y)).
FrameLayout = SystemSpec | tuple[int | Sequence[str], Sequence[int]]
# One (x, y) pair of boundary types, or several.
Boundaries = tuple[str, str] | Iterable[tuple[str, str]]


def ladder(system_name: str) -> tuple[int, int, int]:
    """The paper's three compression rates for a system."""
    if system_name not in LADDERS:
        raise UnknownNameError("system with a compression ladder", system_name, LADDERS)
    return LADDERS[system_name]


def frame_layout(source: FrameLayout) -> tuple[int, tuple[int, int]]:
    """(channel count, grid) of a spec or of an explicit (channels, grid) pair."""
    if isinstance(source, SystemSpec):
        return len(source.channel_names), tuple(source.grid.shape)  # type: ignore[return-value]
    channels, grid = source
    count = channels if isinstance(channels, int) else len(channels)
    shape = tuple(int(n) for n in grid)
    if count < 1 or len(shape) != 2 or min(shape) < 1:
        raise ParameterError("frame layout", source, "(channels >= 1, (X >= 1, Y >= 1))")
    return count, shape  # type: ignore[return-value]


def reachable_rates(source: FrameLayout, spatial_factor: int = DEFAULT_SPATIAL_FACTOR) -> list[int]:
    """Every whole-number rate >= 1 the grid can give, highest first.

    Rate = values / (cells * c) for an integer latent width c, so the whole-number
    rates are the divisors of values / cells.
    """
    channels, grid = frame_layout(source)
    cells = _latent_grid(grid, spatial_factor)
    top = channels * grid[0] * grid[1] // (cells[0] * cells[1])  # the c = 1 rate
    return [top // c for c in range(1, top + 1) if top % c == 0]


def latent_shape(
    source: FrameLayout, rate: float, spatial_factor: int = DEFAULT_SPATIAL_FACTOR
) -> tuple[int, int, int]:
    """(latent channels, h, w) giving exactly `rate`; anything else is refused."""
    channels, grid = frame_layout(source)
    h, w = _latent_grid(grid, spatial_factor)
    values = channels * grid[0] * grid[1]
    if isinstance(rate, bool) or not (isinstance(rate, int | float) and math.isfinite(rate)):
        raise ParameterError("rate", rate, "a positive number")
    latent_channels = values / (h * w * rate) if rate > 0 else 0.0
    rounded = round(latent_channels)
    if rounded < 1 or abs(latent_channels - rounded) > 1e-9 * latent_channels:
        rates = ", ".join(str(r) for r in reachable_rates((channels, grid), spatial_factor))
        raise ParameterError(
            "rate",
            rate,
            f"{values} / ({h * w} * c) for an integer c >= 1 with a x{spatial_factor} "
            f"autoencoder on a {grid[0]}x{grid[1]}x{channels} frame; whole-number rates: {rates}",
        )
    return rounded, h, w


def periodic_axes(boundaries: Boundaries) -> tuple[bool, bool]:
    """Which axes (x, y) an autoencoder may wrap around.

    Accepts one (x, y) pair of boundary types, as `System.boundary_conditions` returns,
    or several when one autoencoder is trained on data with different boundaries (Euler
    with periodic and open files): an axis is periodic only if it is in every pair.
    """
    pairs = [boundaries] if _is_pair(boundaries) else list(boundaries)  # type: ignore[list-item]
    if not pairs:
        raise ParameterError("boundaries", boundaries, "at least one (x, y) pair")
    for pair in pairs:
        if not _is_pair(pair) or any(b not in BOUNDARY_TYPES for b in pair):
            raise ParameterError(
                "boundaries", pair, f"an (x, y) pair of {', '.join(BOUNDARY_TYPES)}"
            )
    x, y = (all(pair[axis] == "periodic" for pair in pairs) for axis in (0, 1))
    return x, y


def autoencoder_config(
    spec: SystemSpec, rate: float, preset: str = "small", *, boundaries: Boundaries
) -> AutoencoderConfig:
    """The config of a `preset` autoencoder that compresses `spec`'s frames by `rate`."""
    latent_channels, _, _ = latent_shape(spec, rate, preset_spatial_factor(preset))
    return preset_config(
        preset, len(spec.channel_names), latent_channels, periodic_axes(boundaries)
    )


def _latent_grid(grid: tuple[int, int], spatial_factor: int) -> tuple[int, int]:
    if (
        isinstance(spatial_factor, bool)
        or not isinstance(spatial_factor, int)
        or (spatial_factor < 1 or spatial_factor & (spatial_factor - 1))
    ):
        raise ParameterError("spatial_factor", spatial_factor, "a power of two >= 1")
    if grid[0] % spatial_factor or grid[1] % spatial_factor:
        raise ParameterError(
            "grid", grid, f"both sizes multiples of the spatial factor {spatial_factor}"
        )
    return grid[0] // spatial_factor, grid[1] // spatial_factor


def _is_pair(value: object) -> bool:
    return (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, str) for v in value)
    )
