"""euler_quadrants against independent references.

The references: Toro's exact Riemann solver (tests/systems/exact_riemann.py, checked
here against the star states tabulated in Toro's book), exact discrete conservation of
a flux-form scheme, the x<->y mirror symmetry of the equations, and the determinism
contract of engine.systems.base.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import ParameterError, SolverDivergedError
from engine.systems import euler_quadrants as eq
from engine.systems import get_system
from engine.systems.base import STREAM_INITIAL_CONDITION, seed_generator
from tests.systems.exact_riemann import State, cell_averages, sample, star_state

SOD_LEFT, SOD_RIGHT = State(1.0, 0.0, 1.0), State(0.125, 0.0, 0.1)
SOD_TIME = 0.2
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def swap_xy(conserved: torch.Tensor) -> torch.Tensor:
    """Mirror a state in the diagonal x = y: transpose the grid, exchange the momenta."""
    return conserved[:, [0, 2, 1, 3]].transpose(2, 3)


def quadrant_states(gammas: list[float], dtype: torch.dtype) -> eq.EulerState:
    """The system's own random four-quadrant initial states on 32 x 32, seeds 0, 1, ..."""
    system = eq.EulerQuadrants(grid=(32, 32))
    conditions = system.validate_conditions([{"gamma": g} for g in gammas])
    generators = [seed_generator(s, STREAM_INITIAL_CONDITION) for s in range(len(gammas))]
    return system.initial_state(conditions, generators, torch.device("cpu"), dtype)


# -- the oracle ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("left", "right", "p_star", "u_star"),
    [  # Toro (2009), table 4.2, tests 1, 2 and 3, gamma = 1.4
        (State(1.0, 0.0, 1.0), State(0.125, 0.0, 0.1), 0.30313, 0.92745),
        (State(1.0, -2.0, 0.4), State(1.0, 2.0, 0.4), 0.00189, 0.0),
        (State(1.0, 0.0, 1000.0), State(1.0, 0.0, 0.01), 460.894, 19.5975),
    ],
)
def test_exact_riemann_solver_reproduces_toro_star_states(left, right, p_star, u_star):
    p, u = star_state(left, right, 1.4)
    assert p == pytest.approx(p_star, rel=2e-4, abs=1e-5)
    assert u == pytest.approx(u_star, rel=2e-4, abs=1e-5)


def test_exact_riemann_sampling_has_sod_wave_structure():
    """Star densities from Toro's table 4.2; inside the fan, u - c = x/t (a C- characteristic)."""
    xi = np.array([-2.0, -0.6, 0.5, 1.2, 1.74, 1.77])
    rho, u, p = sample(SOD_LEFT, SOD_RIGHT, 1.4, xi)
    np.testing.assert_allclose(
        rho[[0, 2, 3, 4, 5]], [1.0, 0.42632, 0.26557, 0.26557, 0.125], rtol=2e-5
    )
    np.testing.assert_allclose(u[-1], 0.0)
    assert u[1] - np.sqrt(1.4 * p[1] / rho[1]) == pytest.approx(-0.6)
    assert p[1] / rho[1] ** 1.4 == pytest.approx(1.0)  # isentropic from the left state


# -- Sod shock tube --------------------------------------------------------------------------
def sod_strip(n: int, axis: int) -> np.ndarray:
    """Sod's tube on n cells along `axis` (0: x, 1: y), one cell across, open boundaries.

    Returns (rho, u_along, p) at t = 0.2 as a (3, n) array.
    """
    x = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    left = x < 0.5
    rho = torch.where(left, SOD_LEFT.rho, SOD_RIGHT.rho)
    p = torch.where(left, SOD_LEFT.p, SOD_RIGHT.p)
    zero = torch.zeros_like(rho)
    primitive = torch.stack((rho, zero, zero, p)).view(1, 4, n, 1)
    if axis == 1:
        primitive = primitive[:, [0, 2, 1, 3]].transpose(2, 3)
    state = eq.EulerState.from_conserved(eq.conserved(primitive, 1.4))
    result = eq.integrate(state, 1.4, SOD_TIME, spacing=(1 / n, 1 / n), boundary="open")
    assert int(result.floor_activations[0]) == 0
    rho, u, v, p = eq.primitives(result.conserved, 1.4)[0].flatten(1).double().numpy()
    return np.stack((rho, u if axis == 0 else v, p))


def sod_l1_errors(solution: np.ndarray) -> np.ndarray:
    """L1 errors of (rho, u, p) against the exact cell averages."""
    n = solution.shape[1]
    exact = cell_averages(SOD_LEFT, SOD_RIGHT, 1.4, np.linspace(0, 1, n + 1), 0.5, SOD_TIME)
    return np.abs(solution - np.stack(exact)).mean(axis=1)


def test_sod_converges_to_the_exact_solution_along_x_and_y():
    """L1 errors fall at the rates discontinuities allow a limited second-order scheme.

    Shock and rarefaction errors fall like 1/N; a contact, which nothing steepens, is
    smeared over ~N^(1/3) cells by a second-order scheme, an error ~N^(-2/3). Density
    carries the contact, so its order lies in between. Measured (N = 100 -> 200 -> 400):
    rho 0.76, 0.91; u 1.06, 1.02; p 1.05, 1.03. The levels at N = 100 (rho 4.1e-3,
    u 9.1e-3, p 3.4e-3) are about a fifth of a first-order scheme's (rho 2.0e-2, u 4.1e-2,
    p 1.9e-2), whose orders (0.6-0.85) would pass, so the level bounds are what catch a
    reconstruction that silently stopped working.
    """
    resolutions = (100, 200, 400)
    errors = {}
    for axis in (0, 1):
        for n in resolutions:
            solution = sod_strip(n, axis)
            errors[axis, n] = sod_l1_errors(solution)
    for n in resolutions:  # the y sweep is the x sweep, bit for bit
        np.testing.assert_array_equal(errors[0, n], errors[1, n])
    levels = np.stack([errors[0, n] for n in resolutions])
    orders = np.log2(levels[:-1] / levels[1:])
    assert np.all(levels[0] < [5e-3, 1.1e-2, 4e-3]), levels
    assert np.all((orders > 0.6) & (orders < 1.2)), orders


# -- conservation, symmetry -------------------------------------------------------------------
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-14), (torch.float32, 5e-7)])
def test_periodic_totals_are_conserved_to_round_off(dtype, tolerance):
    state = quadrant_states([1.3, 1.7], dtype)
    initial = state.conserved
    result = eq.integrate(
        state, torch.tensor([1.3, 1.7]), 0.6, spacing=(1 / 32, 1 / 32), boundary="periodic"
    )
    assert torch.all(result.steps >= 80)
    assert torch.all(result.floor_activations == 0)  # a floor would inject mass or energy
    before, after = (u.double().sum(dim=(2, 3)) for u in (initial, result.conserved))
    scale = initial.double().abs().sum(dim=(2, 3))  # momenta total ~0: compare to sum |.|
    assert torch.all((after - before).abs() <= tolerance * scale), (after - before) / scale
    assert not torch.allclose(initial, result.conserved)


@pytest.mark.parametrize("boundary", ["periodic", "open"])
def test_swap_symmetric_state_stays_symmetric(boundary):
    corner = torch.tensor([[0.45, 0.45]], dtype=torch.float64)
    quadrants = torch.tensor(
        [
            [
                [1.0, 0.2, 0.2, 1.0],  # (x < c, y < c): on the diagonal, u = v
                [0.5, -0.3, 0.1, 0.4],  # (x >= c, y < c) ...
                [0.5, 0.1, -0.3, 0.4],  # ... and its mirror image (x < c, y >= c)
                [1.8, -0.1, -0.1, 1.5],
            ]
        ],  # (x >= c, y >= c): u = v
        dtype=torch.float64,
    )
    initial = eq.quadrant_state(corner, quadrants, (32, 32), (1.0, 1.0), 1.4).float()
    torch.testing.assert_close(swap_xy(initial), initial, rtol=0, atol=0)
    result = eq.integrate(
        eq.EulerState.from_conserved(initial),
        1.4,
        0.2,
        spacing=(1 / 32, 1 / 32),
        boundary=boundary,
    ).conserved
    # Every face does the same arithmetic in x and in y, so symmetry is kept bit for bit.
    torch.testing.assert_close(swap_xy(result), result, rtol=0, atol=0)
    assert not torch.allclose(result, initial)


def test_floors_engage_below_the_floor_and_are_counted():
    """Cells with pressure under the floor are lifted to it, and each lift is counted."""
    primitive = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 4, 1, 1).repeat(1, 1, 16, 16)
    primitive[0, 3, 4:6, 4:6] = 1e-9  # four cells far below PRESSURE_FLOOR
    state = eq.EulerState.from_conserved(eq.conserved(primitive, 1.4))
    result = eq.integrate(state, 1.4, 1e-3, spacing=(1 / 16, 1 / 16))
    assert int(result.floor_activations[0]) >= 4
    pressure = eq.primitives(result.conserved, 1.4)[:, 3]
    assert torch.isfinite(result.conserved).all()
    assert float(pressure.min()) >= 0.99 * eq.PRESSURE_FLOOR


# -- the System contract ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def system() -> eq.EulerQuadrants:
    return get_system("euler_quadrants", grid=(32, 32))  # type: ignore[return-value]


def test_spec_describes_the_stored_data():
    system = get_system("euler_quadrants")
    spec = system.spec
    assert spec.channel_names == ("energy", "density", "pressure", "momentum_x", "momentum_y")
    assert spec.grid.shape == (64, 64) and spec.grid.extent == (1.0, 1.0)
    assert (spec.frame_dt, spec.n_frames) == (0.03, 51)
    assert spec.parameter("gamma").train_range == (1.1, 1.8)
    assert system.boundary_conditions({"boundary": "open"}) == ("open", "open")
    assert system.boundary_conditions({}) == ("periodic", "periodic")
    assert "HLLC" in spec.source and "Toro" in spec.references


def test_initial_frame_is_four_quadrants_in_x_y_order(system):
    seed, gamma = 11, 1.25
    frame = system.simulate([{"gamma": gamma}], [seed], n_frames=1)[0, 0].double()
    draws = torch.rand(
        18, generator=seed_generator(seed, STREAM_INITIAL_CONDITION), dtype=torch.float64
    )
    cx, cy = (0.3 + 0.4 * draws[:2]).tolist()
    x = (np.arange(32) + 0.5) / 32
    energy, density, pressure, mx, my = frame
    # Index order [x, y]; cx = 0.39 and cy = 0.46 differ, so [y, x] would fail.
    lower_left = (x < cx)[:, None] & (x < cy)[None, :]
    rho, u, v, p = 0.1 + 1.9 * draws[2], -0.5 + draws[3], -0.5 + draws[4], 0.1 + 1.9 * draws[5]
    for field, value in ((density, rho), (mx, rho * u), (my, rho * v), (pressure, p)):
        expected = torch.full_like(field[lower_left], float(value))
        torch.testing.assert_close(field[lower_left], expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(
        energy, pressure / (gamma - 1) + 0.5 * (mx**2 + my**2) / density, rtol=1e-6, atol=0
    )
    assert len(torch.unique(density)) == 4


def test_same_seed_gives_identical_frames(system):
    conditions = [{"gamma": 1.3, "boundary": "open"}, {"gamma": 1.6, "boundary": "open"}]
    first = system.simulate(conditions, [5, 6], n_frames=3)
    second = system.simulate(conditions, [5, 6], n_frames=3)
    assert torch.equal(first, second)
    assert not torch.equal(first[0], first[1])


def test_trajectory_does_not_depend_on_its_batch(system, monkeypatch):
    alone = system.simulate([{"gamma": 1.4}], [7], n_frames=4)
    # Neighbours with other speeds (other seeds and gammas) arrive at other sub-steps; a
    # group size of 2 also moves the trajectory across the CPU working-set groups.
    monkeypatch.setattr(eq, "CPU_CHUNK", 2)
    batch = system.simulate(
        [{"gamma": 1.15}, {"gamma": 1.4}, {"gamma": 1.75}], [3, 7, 9], n_frames=4
    )
    assert torch.equal(batch[1], alone[0])


@pytest.mark.parametrize("device", DEVICES)
def test_device_and_dtype_follow_the_request(system, device):
    single = system.simulate([{"gamma": 1.4}], [2], n_frames=2, device=device)
    double = system.simulate([{"gamma": 1.4}], [2], n_frames=2, device=device, dtype="float64")
    assert single.dtype == torch.float32 and double.dtype == torch.float64
    assert single.device.type == double.device.type == device
    torch.testing.assert_close(single.double(), double, rtol=1e-4, atol=1e-5)


# -- bad input --------------------------------------------------------------------------------
def test_gamma_at_the_ends_of_the_valid_range_is_accepted(system):
    frames = system.simulate([{"gamma": 1.01}, {"gamma": 3.0}], [0, 1], n_frames=2)
    assert frames.shape == (2, 2, 5, 32, 32)


@pytest.mark.parametrize("gamma", [1.0, -2.0])
def test_gamma_outside_valid_range_is_rejected(system, gamma):
    with pytest.raises(ParameterError, match=r"gamma=.*\[1\.01, 3\]") as error:
        system.simulate([{"gamma": gamma}], [0], n_frames=1)
    assert error.value.name == "gamma" and error.value.value == gamma
    state = quadrant_states([1.4], torch.float64)
    with pytest.raises(ParameterError, match=r"gamma=.*\[1\.01, 3\]"):
        eq.integrate(state, gamma, 0.01, spacing=(1 / 32, 1 / 32))


def test_unknown_boundary_is_rejected(system):
    with pytest.raises(ParameterError, match=r"boundary='wall'.*periodic, open"):
        system.simulate([{"boundary": "wall"}], [0], n_frames=1)
    state = quadrant_states([1.4], torch.float32)
    with pytest.raises(ParameterError, match=r"boundary='reflect'.*periodic, open"):
        eq.integrate(state, 1.4, 0.01, spacing=(1 / 32, 1 / 32), boundary=("open", "reflect"))


@pytest.mark.parametrize("grid", [(60, 64), (64,), (8, 8), (2048, 64)])
def test_wrong_grid_is_rejected(grid):
    with pytest.raises(ParameterError, match=r"grid=.*multiples of 16"):
        get_system("euler_quadrants", grid=grid)


def test_negative_pressure_raises_with_trajectory_parameters_and_time(system, monkeypatch):
    """A solver state with negative pressure in one trajectory stops the run, named."""
    integrate = eq.integrate

    def losing_internal_energy(state, gamma, duration, **kwargs):
        result = integrate(state, gamma, duration, **kwargs)
        rho, mx, my, _ = result.conserved[1, :, 3, 4]
        result.conserved[1, 3, 3, 4] = 0.5 * 0.5 * (mx**2 + my**2) / rho  # half the kinetic
        return result

    monkeypatch.setattr(eq, "integrate", losing_internal_energy)
    with pytest.raises(SolverDivergedError) as error:
        system.simulate([{"gamma": 1.2}, {"gamma": 1.7}], [0, 1], n_frames=3)
    assert error.value.trajectory == 1
    assert error.value.parameters == {"gamma": 1.7, "boundary": "periodic"}
    assert error.value.time == pytest.approx(0.03)
    assert "pressure must stay positive" in str(error.value)
    assert "trajectory 1 (gamma=1.7, boundary=periodic) at t=0.03" in str(error.value)
