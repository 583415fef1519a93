"""Rayleigh–Bénard: Poisson exactness, manufactured pressure, conduction state, linear
onset at Ra_c ≈ 1708, Nusselt number at Ra = 1e6, determinism, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from engine.errors import ParameterError, SolverDivergedError
from engine.systems import get_system
from engine.systems.rayleigh_benard import RayleighBenard
from engine.systems.spectral import DENSE_MAX_NY, ChannelPoisson

F64 = torch.float64


def fd_laplacian_dirichlet(u: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """Independent 5-point Laplacian on interior nodes, zero walls, periodic x."""
    full = torch.nn.functional.pad(u, (1, 1))
    d2x = (full.roll(1, -2) + full.roll(-1, -2) - 2 * full)[..., 1:-1] / dx**2
    d2y = (full[..., 2:] + full[..., :-2] - 2 * full[..., 1:-1]) / dy**2
    return d2x + d2y


def fd_laplacian_neumann(p: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """5-point Laplacian on all nodes with mirrored ghost nodes (zero-flux closure)."""
    ghost = torch.cat([p[..., 1:2], p, p[..., -2:-1]], dim=-1)
    d2x = (p.roll(1, -2) + p.roll(-1, -2) - 2 * p) / dx**2
    d2y = (ghost[..., 2:] + ghost[..., :-2] - 2 * p) / dy**2
    return d2x + d2y


def trapezoid_weights(ny: int) -> torch.Tensor:
    weights = torch.ones(ny + 1, dtype=F64)
    weights[[0, -1]] = 0.5
    return weights


# -- 3. Poisson solvers -----------------------------------------------------------------
@pytest.mark.parametrize("nx, ny", [(128, 32), (32, 2 * DENSE_MAX_NY)])
def test_poisson_solves_invert_the_5_point_laplacian(nx: int, ny: int) -> None:
    """Dense-matrix (small ny) and extended-FFT (large ny) paths are exact to round-off."""
    dx, dy = 4.0 / nx, 1.0 / ny
    solver = ChannelPoisson(nx, ny, dx, dy, dtype=F64)
    gen = torch.Generator().manual_seed(0)

    rhs = torch.randn(3, nx, ny - 1, generator=gen, dtype=F64)
    u = solver.solve_dirichlet(rhs)
    residual = fd_laplacian_dirichlet(u, dx, dy) - rhs
    assert float(residual.abs().max()) < 1e-10 * float(rhs.abs().max())

    rhs = torch.randn(3, nx, ny + 1, generator=gen, dtype=F64)
    weights = trapezoid_weights(ny)
    rhs -= (rhs * weights).sum((-2, -1), keepdim=True) / float(nx * weights.sum())
    p = solver.solve_neumann(rhs)
    residual = fd_laplacian_neumann(p, dx, dy) - rhs
    assert float(residual.abs().max()) < 1e-10 * float(rhs.abs().max())
    assert float((p * weights).sum((-2, -1)).abs().max()) < 1e-12 * float(p.abs().sum())


def manufactured_pressure(ny: int) -> float:
    """Max error of the full pressure diagnosis against an analytic solution.

    Flow ψ = A sin(kx) sin(πy) with ω = -∇²ψ in the interior and ω = W cos(kx) on both
    walls, buoyancy b = 1 - y + ε cos(kx) sin(πy), and two trajectories with different ν.
    ∇²p = 2(ψ_xx ψ_yy - ψ_xy²) + b_y with ∂p/∂y = b + ν∂ω/∂x on the walls is solved by
        p = A²/4 (π² cos 2kx + k² cos 2πy) - επ cos(kx) cos(πy)/(k² + π²) + y - y²/2 - 1/3
            + νW sin(kx) ((cosh k - 1) cosh(ky)/sinh k - sinh(ky)) - mean,
    the last term harmonic, carrying the viscous wall flux -νWk sin(kx).
    """
    system = RayleighBenard(grid=(4 * ny, ny))
    ops = system.discretisation(torch.device("cpu"), F64)
    nx = 4 * ny
    amplitude, eps, wall, k = 0.3, 0.2, 20.0, math.pi  # k = π: two periods in x ∈ [0, 4)
    nu = torch.tensor([1e-3, 1e-2], dtype=F64)
    x = ((torch.arange(nx, dtype=F64) + 0.5) * 4.0 / nx)[:, None]
    y = ops.y_nodes[None, :]
    psi = amplitude * torch.sin(k * x) * torch.sin(math.pi * y)
    omega = (k**2 + math.pi**2) * psi
    omega[:, [0, -1]] = wall * torch.cos(k * x)
    b = 1 - y + eps * torch.cos(k * x) * torch.sin(math.pi * y)
    exact = (
        amplitude**2 / 4 * (math.pi**2 * torch.cos(2 * k * x) + k**2 * torch.cos(2 * math.pi * y))
        - eps * math.pi * torch.cos(k * x) * torch.cos(math.pi * y) / (k**2 + math.pi**2)
        + y
        - y**2 / 2
        - 1 / 3
    )
    harmonic = torch.sin(k * x) * (
        (math.cosh(k) - 1) / math.sinh(k) * torch.cosh(k * y) - torch.sinh(k * y)
    )
    exact = exact + nu.view(2, 1, 1) * wall * harmonic  # zero mean: sin(kx) averages out
    p = ops.pressure(psi.expand(2, -1, -1), omega.expand(2, -1, -1), b.expand(2, -1, -1), nu)
    return float((p - exact).abs().max())


def test_pressure_matches_manufactured_solution_at_second_order() -> None:
    coarse, fine = manufactured_pressure(32), manufactured_pressure(64)
    assert coarse < 2e-3  # the pressure varies by about ±0.5 (measured 8.4e-4)
    assert 3.6 < coarse / fine < 4.4  # second order (measured 4.02)


# -- 4. Conduction ----------------------------------------------------------------------
def test_conduction_state_is_steady_and_hydrostatic() -> None:
    """b = 1 - y at rest is an exact steady state even at Ra = 1e6 (linearly unstable)."""
    system = RayleighBenard(grid=(64, 32))
    conditions = system.validate_conditions([{"Rayleigh": 1e6, "Prandtl": 1.0}])
    y = torch.arange(1, 32, dtype=F64) / 32
    state = system.state_from_buoyancy((1 - y).expand(1, 64, 31), conditions, dtype=F64)
    after = system.advance(state, conditions, 0.0, 20.0)
    assert torch.equal(after.fields, state.fields)

    frame = system.observe(after, conditions)[0]
    yc = (torch.arange(32, dtype=F64) + 0.5) / 32
    assert torch.allclose(frame[0], (1 - yc).expand(64, 32), atol=1e-15, rtol=0)
    assert float(frame[2:].abs().max()) == 0.0
    # Hydrostatic p = y - y²/2 + c on the nodes, stored as averages of adjacent nodes,
    # with c fixing the stored (cell) mean to zero.
    y_nodes = torch.arange(33, dtype=F64) / 32
    hydrostatic = y_nodes - y_nodes**2 / 2
    expected = 0.5 * (hydrostatic[1:] + hydrostatic[:-1])
    expected -= expected.mean()
    assert torch.allclose(frame[1], expected.expand(64, 32), atol=1e-14, rtol=0)


# -- 1. Onset ---------------------------------------------------------------------------
def test_convective_onset_near_critical_rayleigh_number() -> None:
    """A roll with k = π (≈ k_c = 3.117) decays at Ra = 1500 and grows at Ra = 2500.

    Rates are fitted to log KE after the faster modes have died out; in diffusive units
    (σ·√(Ra·Pr)) they are nearly linear in Ra, and the interpolated zero crossing must
    land on the no-slip critical value 1708 (Ra(k=π) ≈ 1708.5).
    """
    nx, ny = 64, 16
    system = RayleighBenard(grid=(nx, ny))
    rayleigh = (1500.0, 2500.0)
    conditions = system.validate_conditions([{"Rayleigh": r, "Prandtl": 1.0} for r in rayleigh])
    x = ((torch.arange(nx, dtype=F64) + 0.5) * 4.0 / nx)[:, None]
    y = torch.arange(1, ny, dtype=F64) / ny
    b = 1 - y + 1e-3 * torch.cos(math.pi * x) * torch.sin(math.pi * y)
    state = system.state_from_buoyancy(b.expand(2, nx, ny - 1), conditions, dtype=F64)
    times, log_energy = [], []
    for step in range(30):
        state = system.advance(state, conditions, float(step), float(step + 1))
        frame = system.observe(state, conditions)
        times.append(step + 1.0)
        log_energy.append((0.5 * (frame[:, 2] ** 2 + frame[:, 3] ** 2).mean((-2, -1))).log())
    t = torch.tensor(times[14:], dtype=F64)
    energy = torch.stack(log_energy[14:])
    design = torch.stack([t, torch.ones_like(t)], dim=1)
    growth = torch.linalg.lstsq(design, energy).solution[0] / 2  # amplitude rate, free-fall
    assert float(growth[0]) < -0.01 and float(growth[1]) > 0.05
    diffusive = growth * torch.tensor(rayleigh, dtype=F64).sqrt()
    critical = rayleigh[0] + (rayleigh[1] - rayleigh[0]) * float(
        -diffusive[0] / (diffusive[1] - diffusive[0])
    )
    assert abs(critical - 1708) < 0.03 * 1708


# -- 2. Nusselt number ------------------------------------------------------------------
@pytest.mark.slow
def test_nusselt_number_at_ra_1e6_volume_and_wall_estimates_agree() -> None:
    """Nu ≈ 8 at Ra = 1e6, Pr = 1 (2D no-slip; published 2D values lie around 7-9).

    Started from b = 1 - y + noise (mean interior buoyancy already 1/2, so top and bottom
    fluxes balance on average), averaged over t ∈ [20, 50] from the stored cell-centre
    frames: Nu_vol = 1 + <v b>/κ, Nu_wall from a quadratic fit through the wall value
    and the first two cell centres, averaged over both walls.
    """
    system = get_system("rayleigh_benard")
    nx, ny = system.grid.shape
    conditions = system.validate_conditions([{"Rayleigh": 1e6, "Prandtl": 1.0}])
    gen = torch.Generator().manual_seed(3)
    y = torch.arange(1, ny, dtype=F64) / ny
    b = 1 - y + 1e-3 * torch.randn(1, nx, ny - 1, generator=gen, dtype=F64) * y * (1 - y)
    state = system.state_from_buoyancy(b, conditions)
    state = system.advance(state, conditions, 0.0, 20.0)
    volume, wall = [], []
    h, kappa = 1.0 / ny, 1e-3
    for step in range(60):
        state = system.advance(state, conditions, 20.0 + step / 2, 20.5 + step / 2)
        buoyancy, _, _, v = system.observe(state, conditions)[0].double()
        volume.append(1 + float((v * buoyancy).mean()) / kappa)
        bottom = (8 - 9 * buoyancy[:, 0] + buoyancy[:, 1]).mean() / (3 * h)
        top = (9 * buoyancy[:, -1] - buoyancy[:, -2]).mean() / (3 * h)
        wall.append(0.5 * float(bottom + top))
    nu_volume, nu_wall = sum(volume) / len(volume), sum(wall) / len(wall)
    assert 6 < nu_volume < 11 and 6 < nu_wall < 11
    assert abs(nu_volume - nu_wall) < 0.1 * nu_volume


# -- 5. Determinism ---------------------------------------------------------------------
def test_trajectories_depend_only_on_their_seed_and_conditions() -> None:
    system = RayleighBenard(grid=(64, 16))
    a = {"Rayleigh": 1e6, "Prandtl": 1.0}
    b = {"Rayleigh": 2e5, "Prandtl": 8.0}  # different ν, κ: a different dt sequence
    alone = system.simulate([a], [11], n_frames=3)
    again = system.simulate([a], [11], n_frames=3)
    batched = system.simulate([b, a, b], [5, 11, 6], n_frames=3)
    assert torch.equal(alone, again)
    assert torch.equal(batched[1], alone[0])
    assert not torch.equal(batched[0], batched[2])  # seeds 5 and 6 differ
    assert alone.shape == (1, 3, 4, 64, 16)


def test_spec_fields_grid_and_boundaries() -> None:
    system = get_system("rayleigh_benard")
    assert system.spec.channel_names == ("buoyancy", "pressure", "velocity_x", "velocity_y")
    assert system.grid.shape == (128, 32) and system.grid.extent == (4.0, 1.0)
    assert system.boundary_conditions({}) == ("periodic", "wall")
    assert system.spec.parameter_names == ("Rayleigh", "Prandtl")
    assert all(p.log_scale for p in system.spec.parameters)


# -- 6. Bad input -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, value", [("Rayleigh", 0.0), ("Rayleigh", -1e6), ("Prandtl", 0.0), ("Prandtl", -1.0)]
)
def test_non_positive_parameters_are_rejected(name: str, value: float) -> None:
    system = RayleighBenard(grid=(64, 16))
    lo, hi = system.spec.parameter(name).valid_range
    with pytest.raises(ParameterError) as error:
        system.simulate([{name: value}], [0], n_frames=1)
    assert error.value.name == name and f"[{lo:g}, {hi:g}]" in str(error.value)


@pytest.mark.parametrize("grid", [(100, 32), (128,), (128, 8)])
def test_bad_grid_is_rejected(grid: tuple[int, ...]) -> None:
    with pytest.raises(ParameterError, match="grid"):
        get_system("rayleigh_benard", grid=grid)


class _UnstableRayleighBenard(RayleighBenard):
    """Time steps past the SSP-RK3 limits (0.31Δ²/ν for diffusion, ~1.7Δ/|u| for
    advection), so that neither limit can rescue the run: grid-scale blow-up."""

    diffusive_cfl = 1.5
    advective_cfl = 10.0


def test_blow_up_names_trajectory_parameters_and_time() -> None:
    """Only trajectory 1 (large ν, diffusion-limited dt) blows up within t ≤ 0.5."""
    conditions_in = [{"Rayleigh": 1e6, "Prandtl": 1.0}, {"Rayleigh": 1e3, "Prandtl": 10.0}]
    stable = RayleighBenard(grid=(64, 16))
    conditions = stable.validate_conditions(conditions_in)
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    state = stable.initial_state(conditions, gens, torch.device("cpu"), torch.float32)
    stable.advance(state, conditions, 0.0, 0.5)  # control: the same input is fine

    with pytest.raises(SolverDivergedError) as error:
        _UnstableRayleighBenard(grid=(64, 16)).advance(state, conditions, 0.0, 0.5)
    err = error.value
    assert err.trajectory == 1
    assert err.parameters == {"Rayleigh": 1e3, "Prandtl": 10.0}
    assert 0.0 < err.time < 0.5
    assert "trajectory 1" in str(err) and "Rayleigh=1000.0" in str(err)
