"""Symmetry augmentation: exact against the solver, resumable, and only where declared."""

from __future__ import annotations

import pytest
import torch

from engine.augmentation import (
    apply_random_symmetries,
    mirror,
    symmetries_of,
    symmetry_augmentation,
    transpose,
)
from engine.systems import get_system
from engine.systems.euler_quadrants import EulerQuadrants, EulerState
from engine.systems.kolmogorov import Kolmogorov


@pytest.mark.parametrize("boundary", ["open", "periodic"])
def test_euler_symmetries_map_solver_trajectories_onto_solver_trajectories(boundary):
    """Mirror / transpose the first frame, run the solver: the result is the transformed
    trajectory. This is what makes the augmentation exact rather than a plausible guess."""
    system = EulerQuadrants(grid=(32, 32))
    conditions = [{"gamma": 1.4, "boundary": boundary}, {"gamma": 1.3, "boundary": boundary}]
    frames = system.simulate(conditions, seeds=[3, 4], n_frames=1, dtype="float64")
    symmetries = symmetries_of(system.spec, (False, False))
    components = symmetries.vector_components
    transforms = [lambda f, a=a: mirror(f, a, components[a]) for a in symmetries.mirror_axes]
    transforms.append(lambda f: transpose(f, components))
    assert len(transforms) == 3
    validated = system.validate_conditions(conditions)

    def step(frame: torch.Tensor) -> torch.Tensor:
        """Three frame intervals of the solver from a frame (E, rho, p, rho u, rho v)."""
        state = EulerState.from_conserved(frame[:, [1, 3, 4, 0]])
        return system.observe(
            system.advance(state, validated, 0.0, 3 * system.spec.frame_dt), validated
        )

    reference = step(frames[:, 0])
    assert (reference - frames[:, 0]).abs().max() > 0.1  # the shocks moved
    for transform in transforms:
        torch.testing.assert_close(
            step(transform(frames[:, 0])), transform(reference), rtol=1e-9, atol=1e-9
        )


def test_mirror_and_transpose_are_involutions_that_move_vector_components():
    spec = get_system("euler_quadrants").spec
    symmetries = symmetries_of(spec, (False, False))
    x, y = spec.channel_names.index("momentum_x"), spec.channel_names.index("momentum_y")
    assert symmetries.vector_components == ((x,), (y,))
    frames = torch.randn(3, len(spec.channel_names), 8, 8)
    for axis in (0, 1):
        once = mirror(frames, axis, symmetries.vector_components[axis])
        torch.testing.assert_close(mirror(once, axis, symmetries.vector_components[axis]), frames)
        other = (x, y)[1 - axis]
        torch.testing.assert_close(once[:, other], frames[:, other].flip(-2 + axis))
        torch.testing.assert_close(once[:, (x, y)[axis]], -frames[:, (x, y)[axis]].flip(-2 + axis))
    swapped = transpose(frames, symmetries.vector_components)
    torch.testing.assert_close(swapped[:, x], frames[:, y].transpose(-2, -1))
    torch.testing.assert_close(transpose(swapped, symmetries.vector_components), frames)


def test_augmentation_is_a_function_of_the_generator_and_changes_samples_independently():
    spec = get_system("euler_quadrants").spec
    symmetries = symmetries_of(spec, (False, False))
    frames = torch.randn(64, len(spec.channel_names), 8, 8)
    first = apply_random_symmetries(frames, symmetries, torch.Generator().manual_seed(5))
    again = apply_random_symmetries(frames, symmetries, torch.Generator().manual_seed(5))
    torch.testing.assert_close(first, again)
    changed = (first != frames).flatten(1).any(dim=1)
    assert 0 < int(changed.sum()) < len(frames)  # each sample draws its own transformation
    assert symmetries.describe() == "mirror x, mirror y, transpose x<->y"


def test_systems_without_declared_symmetries_only_roll_their_periodic_axes():
    spec = get_system("kolmogorov").spec
    assert symmetry_augmentation(symmetries_of(spec, (False, False))) is None
    symmetries = symmetries_of(spec, (True, False))
    assert symmetries.describe() == "rolls along x"
    frames = torch.randn(8, len(spec.channel_names), 8, 8)
    rolled = apply_random_symmetries(frames, symmetries, torch.Generator().manual_seed(0))
    for before, after in zip(frames, rolled, strict=True):
        assert any(torch.equal(torch.roll(before, s, dims=-2), after) for s in range(8))


def test_kolmogorov_rolls_along_its_forcing_only_by_whole_periods():
    """sin(k_f y) forcing: a roll in y by one forcing period commutes with the solver, half
    a period does not, so the augmentation draws only whole periods in y (any roll in x)."""
    system = get_system("kolmogorov", grid=(32, 32))
    conditions = [{"Reynolds": 250.0}, {"Reynolds": 400.0}]
    frames = system.simulate(conditions, seeds=[1, 2], n_frames=1, dtype="float64")[:, 0]
    validated = system.validate_conditions(conditions)
    period = 32 // system.forcing_wavenumber
    symmetries = symmetries_of(system.spec, (True, True))
    assert symmetries.roll_steps == (1, period)
    assert symmetries.describe() == f"rolls along x, rolls along y by multiples of {period} cells"

    def step(frame: torch.Tensor) -> torch.Tensor:
        state = system.state_from_frame(frame, validated)
        return system.observe(
            system.advance(state, validated, 0.0, 3 * system.spec.frame_dt), validated
        )

    reference = step(frames)
    for shift, exact in ((period, True), (period // 2, False), (3, False)):
        rolled = step(torch.roll(frames, shift, dims=-1))
        error = (rolled - torch.roll(reference, shift, dims=-1)).abs().max()
        assert (error < 1e-9) if exact else (error > 1e-2), (shift, float(error))
    x_only = step(torch.roll(frames, 5, dims=-2))
    torch.testing.assert_close(x_only, torch.roll(reference, 5, dims=-2), rtol=1e-9, atol=1e-9)

    samples = frames.float().repeat(16, 1, 1, 1)
    rolled = apply_random_symmetries(samples, symmetries, torch.Generator().manual_seed(0))
    for before, after in zip(samples, rolled, strict=True):
        assert any(
            torch.equal(torch.roll(before, (sx, sy), dims=(-2, -1)), after)
            for sx in range(32)
            for sy in range(0, 32, period)
        )


def test_a_forcing_that_does_not_divide_the_grid_leaves_that_axis_unrolled():
    spec = Kolmogorov(grid=(32, 32), forcing_wavenumber=3).spec  # 32 cells, 3 periods
    assert symmetries_of(spec, (True, True)).describe() == "rolls along x"
