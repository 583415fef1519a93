"""Distribution shift: the held-out test trajectories re-run outside the training range.

The emulators are conditioned on the simulation parameters and trained on `train_range`;
the solver is declared meaningful on the wider `valid_range` (engine/systems). Robustness
is measured on the very test trajectories of the in-range evaluation, run again by the
real solver (engine.stages.testset.resimulate: same test seeds, hence the same initial
conditions, same boundary choices) with every continuous parameter moved out of range:

    value = the midpoint, in the parameter's label scale (log10 where `log_scale`), of
            [top of train_range, top of valid_range]

so each trajectory has an in-range twin that differs only in its conditions, and the
out/in ratio of a model's VRMSE isolates the shift. The rule reads the declared ranges
only, is the same for every system and was fixed before any model was scored on it:
the midpoint keeps clear of both the training edge (barely out) and the solver's
validity edge; the upper side makes every system more strongly driven (higher Reynolds,
Rayleigh and Prandtl numbers, stiffer gas), where below the training range the driving
can fall under the onset of the dynamics (Rayleigh-Bénard convection starts at
Ra ≈ 1708) and leave nothing to predict. Categorical choices keep their recorded value.

Only latent emulators are re-run: the claim compares latent diffusion with the latent
deterministic emulator at the same rate, and the diffusion rollouts are what costs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.emulator.labels import LabelSpec
from engine.errors import ParameterError, SolverDivergedError
from engine.evaluation.selection import Role
from engine.stages.testset import TestTrajectories, resimulate
from engine.systems import ParameterSpec, get_system

SPACE = "latent"
RULE = (
    "every continuous parameter at the midpoint, in its label scale (log10 for log-scale "
    "parameters), between the top of its training range and the top of its valid range; "
    "same test seeds (same initial conditions) and choices, truth from the real solver"
)


def shifted_value(parameter: ParameterSpec) -> float:
    """The out-of-range value of one parameter (see the module docstring)."""
    top, limit = parameter.train_range[1], parameter.valid_range[1]
    if not limit > top:
        raise ParameterError(
            f"{parameter.name} valid_range",
            parameter.valid_range,
            f"an upper end above the training range's {top:g}, to test outside it",
        )
    if parameter.log_scale:
        return 10 ** ((math.log10(top) + math.log10(limit)) / 2)
    return (top + limit) / 2


def shifted_parameters(system: str) -> dict[str, float]:
    return {p.name: shifted_value(p) for p in get_system(system).spec.parameters}


def applies_to(role: Role) -> bool:
    """Whether an emulator is re-run on the shifted trajectories."""
    return role.kind == "emulator" and role.space == SPACE


def unfit(label: Mapping[str, Any], parameters: Mapping[str, float]) -> str | None:
    """Why `parameters` are no out-of-range test for an emulator whose card holds this
    `label` block, or None. The values follow the system's ranges in code, while a model
    keeps the ranges it was trained on (engine/emulator/labels.py): a model trained on
    wider ranges is skipped with this reason rather than scored "out of range" inside its
    own training range."""
    for spec in LabelSpec.from_dict(label).parameters:
        value = parameters[spec.name]
        low, high = spec.valid_range
        if spec.in_training_range(value) or not low <= value <= high:
            return (
                f"{spec.name} {value:.4g} is not outside this model's training range "
                f"{spec.train_range[0]:g}–{spec.train_range[1]:g} and inside its valid range "
                f"{low:g}–{high:g}"
            )
    return None


@dataclass(frozen=True)
class ShiftedTest:
    """The shifted trajectories, or why there are none (the solver diverged)."""

    parameters: dict[str, float]
    test: TestTrajectories | None
    solver_s: float
    error: str | None = None


def shifted_test(system: str, test: TestTrajectories) -> ShiftedTest:
    """Run `test`'s trajectories again out of range; a diverging solver is recorded."""
    parameters = shifted_parameters(system)
    started = time.perf_counter()
    try:
        shifted = resimulate(test, system, parameters)
    except SolverDivergedError as err:
        return ShiftedTest(parameters, None, time.perf_counter() - started, str(err))
    return ShiftedTest(parameters, shifted, time.perf_counter() - started)


def describe(system: str, shifted: ShiftedTest) -> dict[str, Any]:
    """results.json's `shift` header: the rule, each parameter's value and ranges, and its
    emulator label (the training range maps to [-1, 1], so |label| > 1 is outside)."""
    labels = LabelSpec.from_system(get_system(system).spec)
    parameters = {}
    for spec in labels.parameters:
        value = shifted.parameters[spec.name]
        parameters[spec.name] = {
            "value": value,
            "train_range": list(spec.train_range),
            "valid_range": list(spec.valid_range),
            "log_scale": spec.log_scale,
            "label": float(labels.encode({spec.name: value})[labels.names.index(spec.name)]),
        }
    record: dict[str, Any] = {
        "rule": RULE,
        "parameters": parameters,
        "solver_s": shifted.solver_s,
        "status": "ok" if shifted.error is None else f"solver diverged: {shifted.error}",
    }
    if shifted.test is not None:
        record["seeds"] = shifted.test.seed_list()
        record["conditions"] = shifted.test.conditions(labels)
    return record
