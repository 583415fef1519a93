"""The System contract: validation, determinism plumbing and divergence reporting.

Uses a one-line ODE system (exponential decay of a positive field) so the checks are about
the shared machinery, not about any solver.
"""

import math

import pytest
import torch

from engine.errors import ParameterError, SolverDivergedError, UnknownNameError
from engine.systems import SYSTEM_NAMES, get_system
from engine.systems.base import (
    ChoiceSpec,
    FieldSpec,
    ParameterSpec,
    System,
    SystemSpec,
    seed_generator,
)


class Decay(System):
    """u(t) = u0 exp(-rate t) with u0 ~ U(1, 2) per trajectory; rate may be negative."""

    default_grid = (16, 16)
    default_extent = (1.0, 1.0)

    def __init__(self, grid=None):
        super().__init__(grid)
        self.spec = SystemSpec(
            name="decay",
            title="decay",
            fields=(
                FieldSpec("velocity", "velocity", tensor_order=1),
                FieldSpec("density", "density", positive=True),
            ),
            parameters=(
                ParameterSpec(
                    "rate", "decay rate", (0.1, 10.0), (-50.0, 50.0), 1.0, log_scale=True
                ),
            ),
            choices=(ChoiceSpec("boundary", "boundary", ("periodic", "open"), "periodic"),),
            grid=self.grid,
            frame_dt=1.0,
            n_frames=4,
        )

    def initial_state(self, conditions, generators, device, dtype):
        u0 = torch.stack([1 + torch.rand((), generator=g, dtype=torch.float64) for g in generators])
        return u0.to(device=device, dtype=dtype)

    def advance(self, state, conditions, t0, t1):
        rate = conditions.parameters["rate"].to(state)
        return state * torch.exp(-rate * (t1 - t0))

    def observe(self, state, conditions):
        b = state.shape[0]
        density = state[:, None, None, None].expand(b, 1, *self.grid.shape)
        velocity = torch.zeros(b, 2, *self.grid.shape, dtype=state.dtype)
        return torch.cat([density, velocity], dim=1)


def test_channel_order_puts_scalars_before_vector_components():
    assert Decay().spec.channel_names == ("density", "velocity_x", "velocity_y")


def test_simulate_matches_the_exact_solution():
    system = Decay()
    out = system.simulate([{"rate": 2.0}, {"rate": 0.5}], seeds=[1, 2], dtype="float64")
    assert out.shape == (2, 4, 3, 16, 16)
    times = torch.tensor(system.spec.frame_times(), dtype=torch.float64)
    for i, rate in enumerate((2.0, 0.5)):
        expected = out[i, 0, 0, 0, 0] * torch.exp(-rate * times)
        torch.testing.assert_close(out[i, :, 0, 0, 0], expected)


def test_trajectory_depends_only_on_its_seed():
    system = Decay()
    alone = system.simulate([{"rate": 1.0}], seeds=[7])
    batched = system.simulate([{"rate": 3.0}, {"rate": 1.0}], seeds=[8, 7])
    torch.testing.assert_close(alone[0], batched[1], rtol=0, atol=0)
    assert not torch.equal(batched[0, 0], batched[1, 0])


def test_sampled_conditions_are_deterministic_and_in_training_range():
    system = Decay()
    first = [system.sample_conditions(seed) for seed in range(50)]
    assert first == [system.sample_conditions(seed) for seed in range(50)]
    rates = [c["rate"] for c in first]
    assert all(0.1 <= r <= 10.0 for r in rates)
    # log-uniform: about half the draws below the geometric midpoint 1.0
    assert 15 <= sum(r < 1.0 for r in rates) <= 35
    assert {c["boundary"] for c in first} == {"periodic", "open"}


def test_seed_streams_are_independent_and_seeds_validated():
    a = torch.rand(3, generator=seed_generator(5, 0))
    b = torch.rand(3, generator=seed_generator(5, 1))
    assert not torch.equal(a, b)
    with pytest.raises(ParameterError, match="seed"):
        seed_generator(-1, 0)


@pytest.mark.parametrize(
    ("conditions", "match"),
    [
        ([{"rate": 99.0}], r"rate=99.0 is invalid; valid: \[-50, 50\]"),
        ([{"rate": math.nan}], "rate=nan"),
        ([{"viscosity": 1.0}], "viscosity"),
        ([{"boundary": "wall"}], "boundary='wall'.*periodic, open"),
        ([{"boundary": "open"}, {"boundary": "periodic"}], "single value"),
        ([], "at least one"),
    ],
)
def test_bad_conditions_name_the_value_and_valid_range(conditions, match):
    with pytest.raises(ParameterError, match=match):
        Decay().simulate(conditions, seeds=list(range(len(conditions))))


@pytest.mark.parametrize("grid", [(15, 16), (16,), (0, 16), (2048, 16)])
def test_bad_grid_is_refused(grid):
    with pytest.raises(ParameterError, match="grid"):
        Decay(grid=grid)


def test_divergence_names_trajectory_parameters_and_time():
    system = Decay()
    frames = system.frames([{"rate": 1.0}, {"rate": -50.0}], seeds=[0, 1], dtype="float32")
    with pytest.raises(SolverDivergedError) as info:
        list(frames)
    err = info.value
    assert err.trajectory == 1 and err.parameters["rate"] == -50.0 and err.time > 0
    assert "trajectory 1" in str(err) and "rate=-50.0" in str(err) and "non-finite" in str(err)


def test_frames_can_be_stopped_early():
    frames = Decay().frames([{"rate": 1.0}], seeds=[0])
    first = next(frames)
    frames.close()
    assert first.shape == (1, 3, 16, 16)


def test_unknown_system_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="euler_quadrants"):
        get_system("navier")
    assert set(SYSTEM_NAMES) == {"euler_quadrants", "rayleigh_benard", "kolmogorov"}


def test_non_positive_density_is_reported_by_field(monkeypatch):
    system = Decay()
    observe = system.observe

    def negative_second(state, conditions):
        frame = observe(state, conditions).clone()
        frame[1, 0, 3, 3] = -0.25
        return frame

    monkeypatch.setattr(system, "observe", negative_second)
    with pytest.raises(SolverDivergedError, match=r"trajectory 1 .*density must stay positive"):
        system.simulate([{"rate": 1.0}, {"rate": 2.0}], seeds=[0, 1])
