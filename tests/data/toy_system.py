"""A tiny advection-diffusion System for data-layer tests (not a physics reference).

One positive scalar field (tracer), one vector field (velocity), one log-scale
parameter (diffusivity) and one categorical choice (boundary: y periodic or walls), on
a 16x16 grid in milliseconds. Its time step is fixed by the parameters' *valid* range,
not by the batch, so a trajectory does not depend on its batch mates — the property
the generation cache relies on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from engine.systems.base import (
    ChoiceSpec,
    Conditions,
    FieldSpec,
    ParameterSpec,
    System,
    SystemSpec,
)

DIFFUSIVITY = ParameterSpec(
    "diffusivity", "tracer diffusivity", (1e-3, 1e-2), (1e-4, 1e-1), 3e-3, log_scale=True
)
BOUNDARY = ChoiceSpec("boundary", "boundary along y", ("periodic", "wall"), "periodic")


class ToyAdvection(System):
    default_grid = (16, 16)
    default_extent = (1.0, 1.0)

    def __init__(self, grid: Sequence[int] | None = None):
        super().__init__(grid)
        self.spec = SystemSpec(
            name="toy_advection",
            title="Toy advection-diffusion",
            fields=(
                FieldSpec("velocity", "advecting velocity", tensor_order=1),
                FieldSpec("tracer", "tracer concentration", positive=True),
            ),
            parameters=(DIFFUSIVITY,),
            grid=self.grid,
            frame_dt=0.05,
            n_frames=5,
            choices=(BOUNDARY,),
            source="upwind advection + explicit diffusion (test toy)",
        )

    def boundary_conditions(self, choices: Mapping[str, str]) -> tuple[str, str]:
        return ("periodic", "wall" if choices.get("boundary") == "wall" else "periodic")

    def initial_state(self, conditions, generators, device, dtype) -> dict[str, Any]:
        n_x, n_y = self.grid.shape
        tracer = torch.stack(
            [
                1.0 + 0.5 * torch.rand((n_x, n_y), generator=g, dtype=torch.float64)
                for g in generators
            ]
        )
        speed = torch.stack(
            [torch.rand(2, generator=g, dtype=torch.float64) - 0.5 for g in generators]
        )
        return {
            "tracer": tracer.to(device=device, dtype=dtype),
            "speed": speed.to(device=device, dtype=dtype),
            "t": 0.0,
        }

    def _velocity(self, state: dict[str, Any], conditions: Conditions) -> torch.Tensor:
        x = torch.as_tensor(self.grid.coordinates()[0], device=state["speed"].device)
        decay = torch.exp(-conditions.parameters["diffusivity"].to(x) * state["t"])
        shape = 1.0 + 0.1 * torch.sin(2 * math.pi * x)[None, :, None]  # (1, X, 1)
        return (state["speed"] * decay[:, None])[:, :, None, None] * shape[:, None]

    def advance(self, state, conditions: Conditions, t0: float, t1: float) -> dict[str, Any]:
        dx = min(self.grid.spacing)
        dt_max = min(0.2 * dx**2 / DIFFUSIVITY.valid_range[1], 0.4 * dx)
        n_steps = max(1, math.ceil((t1 - t0) / dt_max))
        dt = (t1 - t0) / n_steps
        c = state["tracer"]
        kappa = conditions.parameters["diffusivity"].to(c)[:, None, None]
        wall = conditions.choices.get("boundary") == "wall"
        u = state["speed"][:, 0, None, None]
        v = state["speed"][:, 1, None, None]
        for _ in range(n_steps):
            c_west, c_east = torch.roll(c, 1, 1), torch.roll(c, -1, 1)
            if wall:  # zero-flux walls in y: the edge cell is its own outer neighbour
                c_south = torch.cat([c[:, :, :1], c[:, :, :-1]], dim=2)
                c_north = torch.cat([c[:, :, 1:], c[:, :, -1:]], dim=2)
            else:
                c_south, c_north = torch.roll(c, 1, 2), torch.roll(c, -1, 2)
            lap = (c_west + c_east + c_south + c_north - 4 * c) / dx**2
            adv_x = torch.where(u > 0, c - c_west, c_east - c) * u / dx
            adv_y = torch.where(v > 0, c - c_south, c_north - c) * v / dx
            c = c + dt * (kappa * lap - adv_x - adv_y)
        return {**state, "tracer": c, "t": t1}

    def observe(self, state, conditions: Conditions) -> torch.Tensor:
        velocity = self._velocity(state, conditions)
        return torch.cat([state["tracer"][:, None], velocity.expand(-1, -1, *self.grid.shape)], 1)
