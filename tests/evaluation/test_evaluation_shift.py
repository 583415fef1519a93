"""The out-of-range rule on each system's declared ranges, and models it does not fit."""

from __future__ import annotations

import math

import pytest

from engine.emulator.labels import LabelSpec
from engine.errors import ParameterError
from engine.evaluation.shift import shifted_parameters, shifted_value, unfit
from engine.systems import ParameterSpec, get_system


def test_each_system_moves_to_the_label_scale_midpoint_above_its_training_range():
    assert shifted_parameters("euler_quadrants") == {"gamma": pytest.approx((1.8 + 3.0) / 2)}
    assert shifted_parameters("kolmogorov") == {"Reynolds": pytest.approx(math.sqrt(500 * 5000))}
    assert shifted_parameters("rayleigh_benard") == {
        "Rayleigh": pytest.approx(math.sqrt(3e6 * 1e7)),
        "Prandtl": pytest.approx(math.sqrt(2.0 * 10.0)),
    }
    for system in ("euler_quadrants", "kolmogorov", "rayleigh_benard"):
        spec = get_system(system).spec
        for name, value in shifted_parameters(system).items():
            parameter = spec.parameter(name)
            assert not parameter.in_training_range(value)
            assert parameter.check(value) == value  # valid for the solver


def test_a_parameter_without_room_above_its_training_range_is_refused():
    flat = ParameterSpec("k", "k", train_range=(1.0, 2.0), valid_range=(0.5, 2.0), default=1.0)
    with pytest.raises(ParameterError, match=r"k valid_range.*above the training range's 2"):
        shifted_value(flat)


def test_a_model_trained_on_wider_ranges_is_not_scored_out_of_range():
    spec = get_system("kolmogorov").spec
    values = shifted_parameters("kolmogorov")
    assert unfit(LabelSpec.from_system(spec).to_dict(), values) is None
    wide = ParameterSpec(
        "Reynolds", "Re", train_range=(100.0, 2000.0), valid_range=(10.0, 5000.0), default=250.0
    )
    reason = unfit(LabelSpec((wide,)).to_dict(), values)
    assert reason.startswith("Reynolds 1581 is not outside this model's training range 100–2000")
