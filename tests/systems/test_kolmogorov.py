"""Kolmogorov-flow solver against exact solutions, its energy budget and its own contract.

References used here are independent of the solver: the analytic laminar flow and
Taylor–Green decay, the energy equation of the PDE, and a much finer time step.
Coordinates are built here in float64 (not from the solver) so that a mistake in the
solver's [x, y] convention or cell-centred grid shows up as a failure.
"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from engine.errors import ParameterError, SolverDivergedError
from engine.systems import get_system
from engine.systems.base import seed_generator
from engine.systems.kolmogorov import (
    DRAG,
    FORCING_WAVENUMBER,
    Kolmogorov,
    integrate,
    kolmogorov_forcing,
    spectral_grid,
)

TWO_PI = 2 * math.pi
CPU = torch.device("cpu")
K_F = FORCING_WAVENUMBER


def cell_centres(n: int) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float64) + 0.5) * (TWO_PI / n)


def mesh(shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y of shape (Nx, Ny), index order [x, y]."""
    return torch.meshgrid(cell_centres(shape[0]), cell_centres(shape[1]), indexing="ij")


def initial_state(system: Kolmogorov, reynolds: float, seed: int, dtype=torch.float64):
    conditions = system.validate_conditions([{"Reynolds": reynolds}])
    state = system.initial_state(conditions, [seed_generator(seed, 1)], CPU, dtype)
    return state, conditions


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# -- 1. laminar Kolmogorov flow ------------------------------------------------------------
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_laminar_flow_is_a_steady_state(dtype, tolerance):
    """ω = −k_f cos(k_f y)/(νk_f² + α), u = sin(k_f y)/(νk_f² + α), v = 0 stays put.

    Re = 300 is far above the laminar flow's stability threshold; it still stays, since
    its advection vanishes identically. A non-square grid pins the [x, y] order.
    """
    system = Kolmogorov(grid=(32, 64))
    conditions = system.validate_conditions([{"Reynolds": 300.0}])
    grid = spectral_grid(system.grid.shape, system.grid.extent, CPU, dtype)
    _, y = mesh(system.grid.shape)
    amplitude = 1.0 / (K_F**2 / 300.0 + DRAG)
    vorticity = -K_F * amplitude * torch.cos(K_F * y)
    state = grid.to_spectral(vorticity.to(dtype)[None])

    frame = system.observe(system.advance(state, conditions, 0.0, 10.0), conditions)[0].double()

    assert frame.shape == (3, 32, 64)
    assert relative_error(frame[0], vorticity) < tolerance
    assert relative_error(frame[1], amplitude * torch.sin(K_F * y)) < tolerance
    assert float(frame[2].abs().max()) < tolerance * amplitude


def test_perturbed_laminar_flow_relaxes_at_low_reynolds():
    """At Re = 10 the laminar flow is stable: a 10% perturbation decays away.

    (Measured: it is unstable by Re = 15, so this checks a physical threshold too.)
    """
    system = Kolmogorov(grid=(32, 32))
    conditions = system.validate_conditions([{"Reynolds": 10.0}])
    grid = spectral_grid(system.grid.shape, system.grid.extent, CPU, torch.float64)
    x, y = mesh(system.grid.shape)
    laminar = -K_F * torch.cos(K_F * y) / (K_F**2 / 10.0 + DRAG)
    perturbation = 0.1 * laminar.abs().max() * torch.sin(x + 2 * y) * torch.cos(3 * x - y)
    state = grid.to_spectral((laminar + perturbation)[None])

    deviations = [float(perturbation.abs().max())]
    for t0 in range(0, 30, 5):
        state = system.advance(state, conditions, float(t0), float(t0 + 5))
        deviations.append(float((system.observe(state, conditions)[0, 0] - laminar).abs().max()))

    assert all(b < a for a, b in pairwise(deviations))
    assert deviations[-1] < 1e-7 * deviations[0]  # measured 7e-9


# -- 2. Taylor–Green decay -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "k2"),
    [("sin x sin y", 2), ("sin 3x sin 3y", 18), ("sin 5x + cos(3x+4y) + sin(4x-3y)/2", 25)],
)
@pytest.mark.parametrize("n_steps", [1, 7])
def test_unforced_eigenmodes_decay_exactly(name, k2, n_steps):
    """With no forcing, ω with a single |k|² is a steady Euler flow (ω is a function of ψ),
    so it only decays: ω(t) = ω(0) exp(−(ν|k|² + α)t). ETDRK4 integrates that linear part
    exactly, so even one step over t = 5 lands on it to round-off. The mixed |k| = 5 case
    needs the pseudo-spectral advection of several modes to cancel exactly.
    """
    x, y = mesh((32, 32))
    omega0 = {
        "sin x sin y": torch.sin(x) * torch.sin(y),
        "sin 3x sin 3y": torch.sin(3 * x) * torch.sin(3 * y),
        "sin 5x + cos(3x+4y) + sin(4x-3y)/2": torch.sin(5 * x)
        + torch.cos(3 * x + 4 * y)
        + 0.5 * torch.sin(4 * x - 3 * y),
    }[name]
    viscosity, drag, duration = 0.01, DRAG, 5.0
    grid = spectral_grid((32, 32), (TWO_PI, TWO_PI), CPU, torch.float64)

    state = integrate(
        grid.to_spectral(omega0[None]), grid, [viscosity], drag, None, duration, [n_steps]
    )

    exact = omega0 * math.exp(-(viscosity * k2 + drag) * duration)
    assert relative_error(grid.to_physical(state)[0], exact) < 1e-12


# -- 3. energy budget --------------------------------------------------------------------------
def test_energy_budget_holds_on_a_turbulent_run():
    """dE/dt = ⟨u·f⟩ − ν⟨ω²⟩ − 2αE with E = ½⟨|u|²⟩ and f = sin(k_f y) x̂.

    dE/dt by a 4th-order central difference over frames 0.01 apart; the 2/3-rule
    truncation conserves energy exactly, so only time-stepping and differencing errors
    remain (measured 1e-9 of the largest rate).
    """
    system = Kolmogorov()
    reynolds, h = 300.0, 0.01
    state, conditions = initial_state(system, reynolds, seed=4)
    state = system.advance(state, conditions, 0.0, 3.0)
    _, y = mesh(system.grid.shape)
    energy, forcing_work, dissipation = [], [], []
    for k in range(21):
        vorticity, u, v = system.observe(state, conditions)[0]
        energy.append(0.5 * float((u**2 + v**2).mean()))
        forcing_work.append(float((u * torch.sin(K_F * y)).mean()))
        dissipation.append(float((vorticity**2).mean()) / reynolds)
        state = system.advance(state, conditions, 3.0 + k * h, 3.0 + (k + 1) * h)
    e, work, diss = (
        torch.tensor(a, dtype=torch.float64) for a in (energy, forcing_work, dissipation)
    )

    lhs = (-e[4:] + 8 * e[3:-1] - 8 * e[1:-3] + e[:-4]) / (12 * h)
    rhs = (work - diss - 2 * DRAG * e)[2:-2]

    scale = float(torch.stack([work.abs(), diss, 2 * DRAG * e]).max())
    assert float(diss.min()) > 0.1 * scale  # a genuinely nonlinear, dissipating state
    assert float((lhs - rhs).abs().max()) < 1e-6 * scale


# -- 4. temporal convergence ---------------------------------------------------------------------
def test_etdrk4_is_fourth_order_on_a_nonlinear_run():
    """Errors at t = 1 against a 512-step reference fall 16× per halving of dt (float64)."""
    system = Kolmogorov()
    state, _ = initial_state(system, 300.0, seed=4)
    grid = spectral_grid(system.grid.shape, system.grid.extent, CPU, torch.float64)
    forcing = kolmogorov_forcing(grid)

    def run(n_steps: int) -> torch.Tensor:
        return integrate(state, grid, [1 / 300.0], DRAG, forcing, 1.0, [n_steps])

    reference = run(512)
    errors = [float((run(n) - reference).norm() / reference.norm()) for n in (16, 32, 64)]
    orders = [math.log2(a / b) for a, b in pairwise(errors)]

    assert errors[0] > 1e-5  # the nonlinear term matters at these steps
    assert all(3.6 < order < 4.4 for order in orders), (errors, orders)


# -- 5. determinism ------------------------------------------------------------------------------
def test_trajectories_depend_only_on_their_seed_and_reynolds_number():
    """Same seed → same trajectory, bit for bit, whatever else shares the batch.

    Different Reynolds numbers take different CFL steps, so the batch stepping path in
    which finished trajectories drop out is exercised too.
    """
    system = get_system("kolmogorov")
    alone = system.simulate([{"Reynolds": 420.0}], [5], n_frames=3)
    batched = system.simulate(
        [{"Reynolds": 150.0}, {"Reynolds": 420.0}, {"Reynolds": 230.0}], [3, 5, 7], n_frames=3
    )
    again = system.simulate([{"Reynolds": 420.0}, {"Reynolds": 101.0}], [5, 9], n_frames=3)

    assert alone.shape == (1, 3, 3, 64, 64)
    assert torch.equal(batched[1], alone[0])
    assert torch.equal(again[0], alone[0])
    assert not torch.equal(batched[0], batched[2])
    # Frame 0 is already turbulent: far from the laminar flow, whose velocity_y is zero.
    assert float(alone[0, 0, 2].abs().max()) > 0.5


# -- 6. bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reynolds", [0.0, -100.0, 1e6, math.nan])
def test_reynolds_number_outside_the_valid_range_is_rejected(reynolds):
    system = get_system("kolmogorov")
    with pytest.raises(ParameterError, match=r"Reynolds=.*valid: \[10, 5000\]"):
        system.simulate([{"Reynolds": reynolds}], [0], n_frames=1)


@pytest.mark.parametrize("grid", [(50, 64), (64,), (8, 8), (64, 2048)])
def test_bad_grid_is_rejected(grid):
    with pytest.raises(ParameterError, match=r"grid=.*multiples of 16"):
        get_system("kolmogorov", grid=grid)


def test_forcing_that_the_grid_cannot_resolve_is_rejected():
    with pytest.raises(ParameterError, match="forcing_wavenumber=6"):
        Kolmogorov(grid=(16, 16), forcing_wavenumber=6)


def test_blow_up_names_trajectory_parameters_and_time():
    """A Courant number of 20 is far outside ETDRK4's stability region: Re = 5000 explodes
    within a few steps while the viscous Re = 10 flow in the same batch survives."""
    system = Kolmogorov(courant=20.0)
    with pytest.raises(SolverDivergedError) as caught:
        system.simulate([{"Reynolds": 10.0}, {"Reynolds": 5000.0}], [1, 2], n_frames=2)
    error = caught.value
    assert error.trajectory == 1
    assert error.parameters == {"Reynolds": 5000.0}
    assert 0 < error.time < system.spec.t_start
    assert "trajectory 1 (Reynolds=5000.0)" in str(error)
    assert "velocity blew up" in str(error)


# -- spec ----------------------------------------------------------------------------------------
def test_spec_describes_the_stored_frames():
    system = get_system("kolmogorov")
    spec = system.spec
    assert spec.channel_names == ("vorticity", "velocity_x", "velocity_y")
    assert system.grid.shape == (64, 64)
    assert system.grid.extent == pytest.approx((TWO_PI, TWO_PI))
    assert system.boundary_conditions({}) == ("periodic", "periodic")
    reynolds = spec.parameter("Reynolds")
    assert reynolds.log_scale
    assert reynolds.train_range == (100.0, 500.0)
    assert reynolds.valid_range[0] <= reynolds.train_range[0] < reynolds.train_range[1]
    assert reynolds.train_range[1] <= reynolds.valid_range[1]
    assert (spec.n_frames, spec.frame_dt, spec.t_start) == (101, 0.2, 10.0)
