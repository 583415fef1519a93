"""Gaussian noise for a batch that stacks several ensembles, each from its own generator.

A server batches the emulator calls of several rollouts (several sessions' ensembles)
into one network call. Each rollout must still draw its noise from its own generator, in
the order it would alone, so that its members do not depend on who else was in the
batch: `StackedGenerator` draws each ensemble's rows from that ensemble's generator and
stacks them. `randn` accepts either it or a plain `torch.Generator` (or None), so
samplers and emulators call it wherever they draw noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.errors import ParameterError


class StackedGenerator:
    """Generators for consecutive row ranges of a batch: `parts` = [(generator, rows)]."""

    def __init__(self, parts: Sequence[tuple[torch.Generator, int]]):
        if not parts or any(rows < 1 for _, rows in parts):
            raise ParameterError("stacked generator parts", parts, "(generator, rows >= 1) pairs")
        self.parts = list(parts)
        self.rows = sum(rows for _, rows in parts)

    def randn(self, shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if shape[0] != self.rows:
            raise ParameterError("noise rows", shape[0], f"{self.rows} (the stacked ensembles)")
        return torch.cat(
            [
                torch.randn((rows, *shape[1:]), generator=generator, device=device, dtype=dtype)
                for generator, rows in self.parts
            ]
        )


Generator = torch.Generator | StackedGenerator | None


def randn(
    shape: Sequence[int], generator: Generator, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Standard normal noise of `shape`, from `generator` (or torch's global one)."""
    if isinstance(generator, StackedGenerator):
        return generator.randn(shape, device, dtype)
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
