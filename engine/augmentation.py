"""Data augmentation by the symmetries of a system: exact, so it adds data without bias.

A transformation is only an augmentation if it maps the data distribution onto itself:
rolls along periodic axes (translation invariance; by whole periods only where a fixed
forcing varies along the axis, `SystemSpec.forcing_periods`: Kolmogorov's sin(k_f y)), and
the mirrors / transpose a system declares in its spec (`SystemSpec.mirror_axes`,
`transpose_symmetric`). Mirroring axis a
negates the a-component of every vector field; transposing swaps the x and y components.

Frames are (..., C, X, Y); every sample of a batch draws its own transformation from the
trainer's augmentation generator, so a resumed run sees the same augmented batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from engine.systems.base import SystemSpec

Augment = Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]]
SPATIAL_DIMS = (-2, -1)


@dataclass(frozen=True)
class Symmetries:
    """Which exact symmetries of a frame layout training may use.

    `vector_components[a]` lists the channel index of the a-component (a = 0: x, 1: y)
    of each vector field, in the same field order for both axes. Rolls along a periodic
    axis a move by multiples of `roll_steps[a]` grid cells (1 unless a forcing fixes it).
    """

    periodic: tuple[bool, bool]
    mirror_axes: tuple[int, ...]
    transpose: bool
    vector_components: tuple[tuple[int, ...], tuple[int, ...]]
    roll_steps: tuple[int, int] = (1, 1)

    @property
    def any(self) -> bool:
        return any(self.periodic) or bool(self.mirror_axes) or self.transpose

    def describe(self) -> str:
        """How the card records the augmentation."""
        parts = [
            f"rolls along {'xy'[a]}"
            + (f" by multiples of {self.roll_steps[a]} cells" if self.roll_steps[a] > 1 else "")
            for a in (0, 1)
            if self.periodic[a]
        ]
        parts += [f"mirror {'xy'[a]}" for a in self.mirror_axes]
        parts += ["transpose x<->y"] if self.transpose else []
        return ", ".join(parts) if parts else "none"


def symmetries_of(spec: SystemSpec, periodic: tuple[bool, bool]) -> Symmetries:
    """The symmetries of a system's frames with the given periodic axes.

    A forcing with n periods along an axis of N cells allows rolls by multiples of N / n
    cells; if n does not divide N no roll along that axis is exact, so none is used.
    """
    steps, rolls = [1, 1], list(periodic)
    for axis, periods in enumerate(spec.forcing_periods):
        if periods and rolls[axis]:
            size = spec.grid.shape[axis]
            rolls[axis] = size % periods == 0
            steps[axis] = size // periods
    names = spec.channel_names
    components = tuple(
        tuple(
            names.index(f"{field.name}_{axis}") for field in spec.fields if field.tensor_order == 1
        )
        for axis in "xy"
    )
    return Symmetries(
        tuple(rolls),  # type: ignore[arg-type]
        tuple(spec.mirror_axes),
        spec.transpose_symmetric,
        components,  # type: ignore[arg-type]
        tuple(steps),  # type: ignore[arg-type]
    )


def symmetry_augmentation(symmetries: Symmetries, key: str = "frames") -> Augment | None:
    """An augmentation for `TensorDictSource` applying random symmetries to `batch[key]`."""
    if not symmetries.any:
        return None

    def augment(batch: dict[str, torch.Tensor], generator: torch.Generator):
        return {**batch, key: apply_random_symmetries(batch[key], symmetries, generator)}

    return augment


def apply_random_symmetries(
    frames: torch.Tensor, symmetries: Symmetries, generator: torch.Generator
) -> torch.Tensor:
    """Each sample (dim 0) gets its own random roll / mirror / transpose."""
    out = frames.clone()
    count = len(frames)
    for axis, periodic in enumerate(symmetries.periodic):
        if periodic:
            dim, step = SPATIAL_DIMS[axis], symmetries.roll_steps[axis]
            shifts = step * torch.randint(frames.shape[dim] // step, (count,), generator=generator)
            out = torch.stack(
                [torch.roll(f, int(s), dims=dim) for f, s in zip(out, shifts, strict=True)]
            )
    for axis in symmetries.mirror_axes:
        chosen = torch.rand(count, generator=generator) < 0.5
        out[chosen] = mirror(out[chosen], axis, symmetries.vector_components[axis])
    if symmetries.transpose and frames.shape[-1] == frames.shape[-2]:
        chosen = torch.rand(count, generator=generator) < 0.5
        out[chosen] = transpose(out[chosen], symmetries.vector_components)
    return out


def mirror(frames: torch.Tensor, axis: int, components: Sequence[int]) -> torch.Tensor:
    """Reflect along `axis` (0 = x, 1 = y); that axis' vector components change sign."""
    flipped = frames.flip(SPATIAL_DIMS[axis])
    if components:
        flipped[..., list(components), :, :] *= -1
    return flipped


def transpose(
    frames: torch.Tensor, components: tuple[Sequence[int], Sequence[int]]
) -> torch.Tensor:
    """Swap x and y: the grid axes and the x/y components of every vector field."""
    swapped = frames.transpose(-2, -1).clone()
    x, y = list(components[0]), list(components[1])
    if x:
        swapped[..., x + y, :, :] = swapped[..., y + x, :, :]
    return swapped
