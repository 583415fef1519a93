"""Stand-in specs for the three systems (imported by the tests as `ae_specs`).

The autoencoder only reads channel names and grids, so its tests do not depend on the
solvers."""

from __future__ import annotations

from engine.systems.base import FieldSpec, GridSpec, SystemSpec

# name -> (scalar fields, vector fields, default grid, boundaries (x, y))
SYSTEMS = {
    "euler_quadrants": (
        ("energy", "density", "pressure"),
        ("momentum",),
        (64, 64),
        ("periodic", "periodic"),
    ),
    "rayleigh_benard": (("buoyancy", "pressure"), ("velocity",), (128, 32), ("periodic", "wall")),
    "kolmogorov": (("vorticity",), ("velocity",), (64, 64), ("periodic", "periodic")),
}


def make_spec(name: str, grid: tuple[int, int] | None = None) -> SystemSpec:
    scalars, vectors, default_grid, _ = SYSTEMS[name]
    fields = tuple(FieldSpec(f, f, positive=name == "euler_quadrants") for f in scalars)
    fields += tuple(FieldSpec(f, f, tensor_order=1) for f in vectors)
    return SystemSpec(
        name=name,
        title=name,
        fields=fields,
        parameters=(),
        grid=GridSpec(shape=grid or default_grid, extent=(1.0, 1.0)),
        frame_dt=1.0,
        n_frames=2,
    )


def boundaries(name: str) -> tuple[str, str]:
    return SYSTEMS[name][3]
