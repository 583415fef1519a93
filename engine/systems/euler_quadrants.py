"""2D compressible Euler on four constant quadrants (mirrors the Well's euler_multi_quadrants).

Scheme: finite volumes on the cell-centred grid, MUSCL reconstruction of the primitive
variables with the monotonised-central (MC) limiter, the HLLC approximate Riemann solver
(Toro, ch. 10) with Davis wave-speed estimates, and unsplit SSP-RK2 (Heun) in time at
CFL 0.4. Everything is vectorised over (trajectory, x, y); only the time loop is Python.

Why each trajectory takes its own time step: a trajectory must be a pure function of its
seed and conditions, so its steps may not depend on which (faster or slower) trajectories
share its batch. Trajectories that reach the target time drop out of the batch, so a batch
costs the sum of its trajectories' steps, not B times the slowest one.

The module-level functions (`primitives`, `conserved`, `quadrant_state`, `integrate`) are
the solver proper; `EulerQuadrants` only adds sampling and bookkeeping, which lets tests
integrate hand-made states (Sod tubes, symmetric states) through exactly the same code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from engine.errors import ParameterError
from engine.systems.base import (
    ChoiceSpec,
    Conditions,
    FieldSpec,
    ParameterSpec,
    System,
    SystemSpec,
)

CFL = 0.4
# Floors keep a near-vacuum finite and positive; each activation breaks exact
# conservation, so they are counted per trajectory (see EulerState.floor_activations).
DENSITY_FLOOR = 1e-6
PRESSURE_FLOOR = 1e-6
# On CPU a step over more than a few trajectories spills the temporaries out of L2 cache,
# so larger batches are stepped in groups of this many (results do not depend on it).
CPU_CHUNK = 8

BOUNDARIES = ("periodic", "open")
_GHOSTS = 2  # MUSCL needs the neighbours' slopes, hence two ghost cells

# Initial condition, drawn uniformly per trajectory: the corner (cx, cy), then the
# primitives (rho, u, v, p) of each of the four quadrants.
CORNER_RANGE = (0.3, 0.7)
QUADRANT_RANGES = ((0.1, 2.0), (-0.5, 0.5), (-0.5, 0.5), (0.1, 2.0))

GAMMA = ParameterSpec(
    name="gamma",
    long_name="heat-capacity ratio",
    # The Well's euler_multi_quadrants uses ten gases with gamma from 1.13 (propane) to
    # 1.76 (argon); a continuous range covering them. gamma = 1 + 2/f for a gas with f
    # degrees of freedom: above 1 for a finite internal energy p / (gamma - 1), and at
    # most 3 (f = 1).
    train_range=(1.1, 1.8),
    valid_range=(1.01, 3.0),
    default=1.4,
)
BOUNDARY = ChoiceSpec(
    name="boundary",
    long_name="boundary condition on both axes",
    choices=BOUNDARIES,
    default="periodic",
)
FIELDS = (
    FieldSpec("energy", "total energy density", positive=True),
    FieldSpec("density", "mass density", positive=True),
    FieldSpec("pressure", "pressure", positive=True),
    FieldSpec("momentum", "momentum density", tensor_order=1),
)

# Conserved channels are (rho, rho u, rho v, E); primitive channels are (rho, u, v, p).
# The y sweep swaps the two velocity/momentum channels so that channel 1 is always the
# normal component, and one Riemann solver serves both directions.
_SWAP_XY = [0, 2, 1, 3]


@dataclass
class EulerState:
    """Conserved variables of a batch plus per-trajectory diagnostics.

    conserved: (B, 4, X, Y) as (rho, rho u, rho v, E).
    floor_activations: (B,) int64, cells where a density or pressure floor was applied.
    steps: (B,) int64, time steps taken (each trajectory steps on its own).
    """

    conserved: torch.Tensor
    floor_activations: torch.Tensor
    steps: torch.Tensor

    @classmethod
    def from_conserved(cls, conserved: torch.Tensor) -> EulerState:
        zeros = torch.zeros(conserved.shape[0], dtype=torch.int64, device=conserved.device)
        return cls(conserved, zeros, zeros.clone())


def _per_trajectory(gamma: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """gamma as a (B,) tensor on `like`'s device and dtype."""
    gamma = torch.as_tensor(gamma, dtype=like.dtype, device=like.device)
    return gamma.expand(like.shape[0]).contiguous()


def primitives(state: torch.Tensor, gamma: torch.Tensor | float) -> torch.Tensor:
    """(rho, rho u, rho v, E) -> (rho, u, v, p), channel dim 1."""
    g = _per_trajectory(gamma, state).view(-1, 1, 1)
    rho, mx, my, energy = state.unbind(1)
    u, v = mx / rho, my / rho
    p = (g - 1) * (energy - 0.5 * (mx * u + my * v))
    return torch.stack((rho, u, v, p), dim=1)


def conserved(primitive: torch.Tensor, gamma: torch.Tensor | float) -> torch.Tensor:
    """(rho, u, v, p) -> (rho, rho u, rho v, E), channel dim 1."""
    g = _per_trajectory(gamma, primitive).view(-1, 1, 1)
    rho, u, v, p = primitive.unbind(1)
    mx, my = rho * u, rho * v
    return torch.stack((rho, mx, my, p / (g - 1) + 0.5 * (mx * u + my * v)), dim=1)


def quadrant_state(
    corner: torch.Tensor,
    quadrants: torch.Tensor,
    shape: Sequence[int],
    extent: Sequence[float],
    gamma: torch.Tensor | float,
) -> torch.Tensor:
    """Conserved variables of four constant quadrants around a corner.

    corner: (B, 2) as (cx, cy). quadrants: (B, 4, 4), primitives (rho, u, v, p) of the
    quadrants (x < cx, y < cy), (x >= cx, y < cy), (x < cx, y >= cy), (x >= cx, y >= cy).
    Cells are assigned by their centres.
    """
    device, dtype = quadrants.device, quadrants.dtype
    x, y = (
        (torch.arange(n, device=device, dtype=dtype) + 0.5) * (length / n)
        for n, length in zip(shape, extent, strict=True)
    )
    right = (x.view(1, -1, 1) >= corner[:, 0].view(-1, 1, 1)).long()  # (B, X, 1)
    upper = (y.view(1, 1, -1) >= corner[:, 1].view(-1, 1, 1)).long()  # (B, 1, Y)
    batch = torch.arange(len(quadrants), device=device).view(-1, 1, 1)
    primitive = quadrants[batch, right + 2 * upper]  # (B, X, Y, 4)
    return conserved(primitive.permute(0, 3, 1, 2), gamma)


# -- spatial discretisation -----------------------------------------------------------------
# Eager torch on CPU runs `where` and `masked_fill` an order of magnitude slower than plain
# arithmetic, so the kernels below select with `clamp` and `lerp` instead. lerp(b, a, w)
# evaluates b + w (a - b) for w < 0.5 and a - (a - b)(1 - w) otherwise, so a weight of
# exactly 0 or 1 returns b or a bit for bit: an exact select for finite values.
def _minmod(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """minmod(a, b) = median(0, a, b): the smaller magnitude if signs agree, else 0."""
    return a.clamp(min=b.clamp(max=0), max=b.clamp(min=0))


def _half_mc_slope(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Half the monotonised-central (MC) limited slope from the one-sided differences.

    MC = minmod(2 left, 2 right, (left + right)/2); halved, minmod(minmod(left, right),
    (left + right)/4). It keeps the reconstructed face values between the neighbouring
    cell values, so positive cell densities and pressures give positive face states.
    """
    return _minmod(0.25 * (left + right), _minmod(left, right))


def _with_ghosts(primitive: torch.Tensor, dim: int, boundary: str) -> torch.Tensor:
    """Two ghost cells on each side along `dim`: wrapped (periodic) or copied edge (open).

    torch.cat rather than F.pad: the replicate padding kernel is several times slower.
    """
    n = primitive.shape[dim]
    if boundary == "periodic":
        low, high = primitive.narrow(dim, n - _GHOSTS, _GHOSTS), primitive.narrow(dim, 0, _GHOSTS)
    else:  # zero-gradient: repeat the edge cells
        shape = list(primitive.shape)
        shape[dim] = _GHOSTS
        low = primitive.narrow(dim, 0, 1).expand(shape)
        high = primitive.narrow(dim, n - 1, 1).expand(shape)
    return torch.cat((low, primitive, high), dim=dim)


def _reconstruct_into(
    left: torch.Tensor, right: torch.Tensor, primitive: torch.Tensor, dim: int, boundary: str
) -> None:
    """MUSCL primitive states on the N + 1 faces along `dim` (2: x, 3: y), written in place.

    left/right: (B, 4, N + 1, ...) views into the Riemann solver's input buffers.
    """
    padded = _with_ghosts(primitive, dim, boundary)  # N + 4 cells
    n = padded.shape[dim]
    jumps = padded.diff(dim=dim)  # N + 3
    half = _half_mc_slope(jumps.narrow(dim, 0, n - 2), jumps.narrow(dim, 1, n - 2))  # N + 2
    torch.add(padded.narrow(dim, 1, n - 3), half.narrow(dim, 0, n - 3), out=left)
    torch.sub(padded.narrow(dim, 2, n - 3), half.narrow(dim, 1, n - 3), out=right)


def _hllc_flux(left: torch.Tensor, right: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """HLLC flux (Toro eqs. 10.37-10.39) between primitive states, channel 1 normal.

    left, right: (B, 4, N) as (rho, u_normal, u_tangential, p); gamma: (B, 1).
    The side of the contact (sign of S*) picks the upwind state K first; the flux is then
    F_K + s (U*_K - U_K) with s = min(S_L, 0) or max(S_R, 0), which is F_K when the whole
    fan is supersonic and F*_K otherwise, so only one star state is ever formed.
    """
    rho_l, u_l, _, p_l = left.unbind(1)
    rho_r, u_r, _, p_r = right.unbind(1)
    c_l = torch.sqrt(gamma * p_l / rho_l)
    c_r = torch.sqrt(gamma * p_r / rho_r)
    s_l = torch.minimum(u_l - c_l, u_r - c_r)  # Davis estimates
    s_r = torch.maximum(u_l + c_l, u_r + c_r)
    m_l = rho_l * (s_l - u_l)  # < 0
    m_r = rho_r * (s_r - u_r)  # > 0
    s_star = (p_r - p_l + m_l * u_l - m_r * u_r) / (m_l - m_r)  # S_L < S* < S_R for p > 0

    # Weight 1 where the contact moves right (upwind side K = L), 0 otherwise (K = R).
    upwind_left = s_star.sign().clamp(min=0)
    rho, u, v, p = torch.lerp(right, left, upwind_left.unsqueeze(1)).unbind(1)
    m = torch.lerp(m_r, m_l, upwind_left)
    s_k = torch.lerp(s_r, s_l, upwind_left)
    s = torch.lerp(s_r.clamp(min=0), s_l.clamp(max=0), upwind_left)

    momentum = rho * u
    energy = p / (gamma - 1) + 0.5 * (momentum * u + rho * v * v)
    star_density = m / (s_k - s_star)
    mass = momentum + s * (star_density - rho)
    normal = momentum * u + p + s * (star_density * s_star - momentum)
    star_energy = star_density * (energy / rho + (s_star - u) * (s_star + p / m))
    energy_flux = u * (energy + p) + s * (star_energy - energy)
    return torch.stack((mass, normal, v * mass, energy_flux), dim=1)


def _tendency(
    primitive: torch.Tensor,
    gamma: torch.Tensor,
    spacing: tuple[float, float],
    boundary: tuple[str, str],
) -> torch.Tensor:
    """dU/dt = -(dF/dx + dG/dy) from the primitive state.

    x and y faces go through one Riemann-solver call on a flat buffer (fewer, larger
    kernels). The y faces are built from the velocity-swapped primitives, so the
    arithmetic per face is identical in both directions, which keeps an x<->y symmetric
    state exactly symmetric.
    """
    b, _, nx, ny = primitive.shape
    n_x = (nx + 1) * ny
    shape_x, shape_y = (b, 4, nx + 1, ny), (b, 4, nx, ny + 1)
    left, right = (primitive.new_empty(b, 4, n_x + nx * (ny + 1)) for _ in range(2))
    _reconstruct_into(
        left[:, :, :n_x].view(shape_x),
        right[:, :, :n_x].view(shape_x),
        primitive,
        2,
        boundary[0],
    )
    _reconstruct_into(
        left[:, :, n_x:].view(shape_y),
        right[:, :, n_x:].view(shape_y),
        primitive[:, _SWAP_XY],
        3,
        boundary[1],
    )
    flux = _hllc_flux(left, right, gamma.view(-1, 1))
    flux_x = flux[:, :, :n_x].view(shape_x)
    flux_y = flux[:, _SWAP_XY, n_x:].view(shape_y)
    dx, dy = spacing
    return -(flux_x.diff(dim=2) / dx + flux_y.diff(dim=3) / dy)


def _apply_floors(
    state: torch.Tensor, gamma: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Floor density and pressure; returns (conserved, primitives, activations per trajectory).

    A pressure floor raises the internal energy and keeps the momentum, so only E changes;
    where no floor applies, every value is returned bit for bit. NaNs pass through, for
    the frame check to report. Cells are only counted when some trajectory needs a floor.
    """
    g = gamma.view(-1, 1, 1)
    rho, mx, my, energy = state.unbind(1)
    floored_rho = rho.clamp(min=DENSITY_FLOOR)
    u, v = mx / floored_rho, my / floored_rho
    p = (g - 1) * (energy - 0.5 * (mx * u + my * v))
    floored_p = p.clamp(min=PRESSURE_FLOOR)
    activations = torch.zeros(len(state), dtype=torch.int64, device=state.device)
    if bool((rho.amin() < DENSITY_FLOOR) | (p.amin() < PRESSURE_FLOOR)):
        activations = ((rho < DENSITY_FLOOR) | (p < PRESSURE_FLOOR)).sum(dim=(1, 2))
        energy = energy + (floored_p - p) / (g - 1)
        state = torch.stack((floored_rho, mx, my, energy), dim=1)
    return state, torch.stack((floored_rho, u, v, floored_p), dim=1), activations


def _max_rate(
    primitive: torch.Tensor, gamma: torch.Tensor, spacing: tuple[float, float]
) -> torch.Tensor:
    """Per trajectory max over cells and axes of (|u_axis| + c) / dx_axis; dt = CFL / it."""
    rho, u, v, p = primitive.unbind(1)
    c = torch.sqrt(gamma.view(-1, 1, 1) * p / rho)
    rate = torch.maximum((u.abs() + c) / spacing[0], (v.abs() + c) / spacing[1])
    return rate.amax(dim=(1, 2))


def _ssp_rk2_step(
    state: torch.Tensor,
    gamma: torch.Tensor,
    remaining: torch.Tensor,
    spacing: tuple[float, float],
    boundary: tuple[str, str],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One SSP-RK2 step per trajectory, the last one clipped to land on the target time.

    Returns (new state, dt taken in float64, arrived flags, floor activations).
    """
    state, primitive, activations = _apply_floors(state, gamma)
    dt = CFL / _max_rate(primitive, gamma, spacing).double()
    # `not <` rather than `>=`: a NaN rate also ends the stepping, and the frame check
    # then reports the NaN instead of the loop spinning forever.
    arrived = ~(dt < remaining)
    dt = torch.where(arrived, remaining, dt)
    dt_state = dt.to(state.dtype).view(-1, 1, 1, 1)

    stage = state + dt_state * _tendency(primitive, gamma, spacing, boundary)
    stage, primitive, stage_activations = _apply_floors(stage, gamma)
    stage = stage + dt_state * _tendency(primitive, gamma, spacing, boundary)
    return 0.5 * state + 0.5 * stage, dt, arrived, activations + stage_activations


def _check_boundary(boundary: str | Sequence[str]) -> tuple[str, str]:
    pair = (boundary, boundary) if isinstance(boundary, str) else tuple(boundary)
    if len(pair) != 2:
        raise ParameterError("boundary", boundary, "one type or one per axis (x, y)")
    return (BOUNDARY.check(pair[0]), BOUNDARY.check(pair[1]))


def _working_sets(
    active: torch.Tensor, batch: int, chunk: int
) -> list[slice] | tuple[torch.Tensor, ...]:
    """The active trajectories in groups of at most `chunk`.

    While nobody has arrived the groups are slices (views, no gathered copies).
    """
    if active.numel() == batch:
        return [slice(start, min(start + chunk, batch)) for start in range(0, batch, chunk)]
    return active.split(chunk)


def integrate(
    state: EulerState,
    gamma: torch.Tensor | float,
    duration: float,
    *,
    spacing: Sequence[float],
    boundary: str | Sequence[str] = "periodic",
) -> EulerState:
    """Advance every trajectory by `duration`, each with its own CFL-limited steps.

    gamma: a float or one value per trajectory. boundary: one type for both axes or one
    per axis (x, y), each "periodic" or "open". Trajectories that have arrived leave the
    working set, so neither their results nor the others' depend on the batch.
    """
    boundary = _check_boundary(boundary)
    spacing = (float(spacing[0]), float(spacing[1]))
    duration = float(duration)
    if not (math.isfinite(duration) and duration >= 0):
        raise ParameterError("duration", duration, "a finite time >= 0")
    for value in torch.as_tensor(gamma, dtype=torch.float64).unique().tolist():
        GAMMA.check(value)  # before any cast: 1.01 in float32 is below 1.01
    current = state.conserved.clone()
    gamma = _per_trajectory(gamma, current)
    elapsed = torch.zeros(len(current), dtype=torch.float64, device=current.device)
    activations, steps = state.floor_activations.clone(), state.steps.clone()
    chunk = CPU_CHUNK if current.device.type == "cpu" else len(current)
    while True:
        active = torch.nonzero(elapsed < duration).squeeze(1)
        if active.numel() == 0:
            break
        for subset in _working_sets(active, len(current), chunk):
            current[subset], dt, arrived, floored = _ssp_rk2_step(
                current[subset], gamma[subset], duration - elapsed[subset], spacing, boundary
            )
            elapsed[subset] = torch.where(arrived, duration, elapsed[subset] + dt)
            activations[subset] += floored
            steps[subset] += 1
    current, _, floored = _apply_floors(current, gamma)
    return EulerState(current, activations + floored, steps)


# -- the system -------------------------------------------------------------------------------
class EulerQuadrants(System):
    """Riemann problems with four constant quadrants, ideal gas, periodic or open boundaries."""

    default_grid = (64, 64)
    default_extent = (1.0, 1.0)

    def __init__(self, grid: Sequence[int] | None = None):
        super().__init__(grid)
        self.spec = SystemSpec(
            name="euler_quadrants",
            title="2D compressible Euler, four-quadrant Riemann problems",
            fields=FIELDS,
            parameters=(GAMMA,),
            grid=self.grid,
            frame_dt=0.03,
            n_frames=51,
            choices=(BOUNDARY,),
            # Quadrant states are drawn independently and both axes share one boundary
            # type, so the dihedral group of the square maps the data distribution onto
            # itself (momentum components change sign / swap with the axes).
            mirror_axes=(0, 1),
            transpose_symmetric=True,
            source=(
                "latentsim engine.systems.euler_quadrants: finite volume, MUSCL (MC limiter) "
                "on primitives, HLLC Riemann solver with Davis wave speeds, unsplit SSP-RK2, "
                f"CFL {CFL} per trajectory, density/pressure floors {DENSITY_FLOOR:g}"
            ),
            references=(
                "E. F. Toro, Riemann Solvers and Numerical Methods for Fluid Dynamics, "
                "3rd ed., Springer 2009 (HLLC: ch. 10); C. W. Schulz-Rinne, J. P. Collins, "
                "H. M. Glaz, SIAM J. Sci. Comput. 14 (1993) 1394 (four-quadrant problems); "
                "R. Ohana et al., The Well, NeurIPS 2024 (euler_multi_quadrants)"
            ),
        )

    def boundary_conditions(self, choices: Mapping[str, str]) -> tuple[str, str]:
        boundary = BOUNDARY.check(choices.get(BOUNDARY.name, BOUNDARY.default))
        return (boundary, boundary)

    def initial_state(
        self,
        conditions: Conditions,
        generators: Sequence[torch.Generator],
        device: torch.device,
        dtype: torch.dtype,
    ) -> EulerState:
        ranges = torch.tensor([CORNER_RANGE] * 2 + [*QUADRANT_RANGES] * 4, dtype=torch.float64)
        unit = torch.stack(
            [torch.rand(len(ranges), generator=g, dtype=torch.float64) for g in generators]
        )
        values = ranges[:, 0] + unit * (ranges[:, 1] - ranges[:, 0])
        # Built in float64 on the CPU, then cast: the same initial state on every device.
        state = quadrant_state(
            values[:, :2],
            values[:, 2:].view(-1, 4, 4),
            self.grid.shape,
            self.grid.extent,
            conditions.parameters["gamma"],
        )
        return EulerState.from_conserved(state.to(device=device, dtype=dtype))

    def advance(
        self, state: EulerState, conditions: Conditions, t0: float, t1: float
    ) -> EulerState:
        return integrate(
            state,
            conditions.parameters["gamma"],
            t1 - t0,
            spacing=self.grid.spacing,
            boundary=self.boundary_conditions(conditions.choices),
        )

    def observe(self, state: EulerState, conditions: Conditions) -> torch.Tensor:
        rho, mx, my, energy = state.conserved.unbind(1)
        pressure = primitives(state.conserved, conditions.parameters["gamma"])[:, 3]
        return torch.stack((energy, rho, pressure, mx, my), dim=1)

    def state_from_frame(self, frame: torch.Tensor, conditions: Conditions) -> EulerState:
        """Conserved variables from (energy, density, pressure, momentum): exact; the
        pressure channel is implied by the others and not read."""
        energy, rho, _, mx, my = frame.unbind(1)
        return EulerState.from_conserved(torch.stack((rho, mx, my, energy), dim=1))
