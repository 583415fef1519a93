"""Restarting a solver from its own stored frame continues the same trajectory."""

from __future__ import annotations

import pytest
import torch

from engine.errors import ParameterError
from engine.systems import get_system

FRAMES = 5


@pytest.mark.parametrize("name", ["kolmogorov", "euler_quadrants", "rayleigh_benard"])
@pytest.mark.parametrize("start", [0, 2])
def test_restart_from_a_stored_frame_continues_the_trajectory(name, start):
    system = get_system(name, (32, 32))
    conditions = [system.sample_conditions(7)]
    stored = system.simulate(conditions, [7], n_frames=FRAMES)[0]  # (T, C, X, Y)
    times = system.spec.frame_times(FRAMES)[start:]
    restarted = torch.cat(list(system.restart(stored[start][None], conditions, times)))
    expected = stored[start + 1 :]
    scale = expected.abs().amax(dim=(0, 2, 3), keepdim=True)
    # Kolmogorov and Euler read their state off the frame exactly; Rayleigh-Benard's
    # node fields are recovered from cell-centred ones, exact up to rounding.
    torch.testing.assert_close(restarted / scale, expected / scale, rtol=0, atol=1e-5)


def test_restart_refuses_a_frame_batch_that_does_not_match_the_conditions():
    system = get_system("kolmogorov", (32, 32))
    frame = torch.zeros(2, 3, 32, 32)
    with pytest.raises(ParameterError, match=r"frame\.shape"):
        next(system.restart(frame, [system.default_conditions()], [10.0, 10.2]))
