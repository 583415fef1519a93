"""Which zoo models an evaluation measures, and why each of the others is missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from engine.errors import ParameterError, UnknownNameError
from engine.zoo.manifest import Zoo, ZooEntry
from engine.zoo.plan import ZooModel, zoo_plan


@dataclass(frozen=True)
class Role:
    """What a model is, whether or not it is available: for the tables and findings."""

    name: str
    kind: str
    system: str
    method: str | None
    space: str | None
    rate: int | None

    def record(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key not in ("name",)}


@dataclass(frozen=True)
class Selection:
    """Per system: emulators and autoencoders to evaluate, and what is missing and why."""

    emulators: dict[str, list[ZooEntry]]
    autoencoders: dict[str, list[ZooEntry]]
    missing: dict[str, dict[str, dict[str, Any]]]
    rates: dict[str, list[int]]


def role_of(model: ZooModel | ZooEntry) -> Role:
    return Role(model.name, model.kind, model.system, model.method, model.space, model.rate)


def select_models(
    zoo: Zoo,
    systems: Sequence[str],
    names: Sequence[str] = (),
    plan: Sequence[ZooModel] | None = None,
) -> Selection:
    """The zoo's usable models of `systems` (only the emulators `names`, if given).

    Every model of the plan (default: the shipped zoo's, engine/zoo/plan.py) or of the
    manifest that is not evaluated is listed with its reason: not trained yet, unusable
    (the manifest check's reason), or not selected.
    """
    plan = zoo_plan() if plan is None else list(plan)
    roles = {m.name: role_of(m) for m in plan} | {n: role_of(e) for n, e in zoo.entries.items()}
    for name in names:
        if name not in roles:
            raise UnknownNameError("zoo model", name, roles)
        role = roles[name]
        if role.kind != "emulator":
            raise ParameterError(
                "model", name, "an emulator (autoencoder floors are always evaluated)"
            )
        if role.system not in systems:
            raise ParameterError(
                "model", name, f"a model of {', '.join(systems)} (it is a {role.system} model)"
            )
    available = {entry.name for entry in zoo.available()}
    selection = Selection({}, {}, {}, {})
    for system in systems:
        emulators, autoencoders, missing = [], [], {}
        # autoencoders, then latent before pixel, diffusion first, lowest rate first
        mine = sorted(
            (r for r in roles.values() if r.system == system),
            key=lambda r: (r.kind, r.space or "", r.method != "diffusion", r.rate or 0),
        )
        for role in mine:
            if role.name not in available:
                reason = zoo.problems.get(role.name, "not in the manifest (not trained yet)")
            elif role.kind == "emulator" and names and role.name not in names:
                reason = "not selected (--models)"
            else:
                group = emulators if role.kind == "emulator" else autoencoders
                group.append(zoo.get(role.name))
                continue
            missing[role.name] = {**role.record(), "reason": reason}
        selection.emulators[system] = emulators
        selection.autoencoders[system] = autoencoders
        selection.missing[system] = missing
        selection.rates[system] = sorted(
            {r.rate for r in mine if r.kind == "autoencoder" and r.rate is not None}
        )
    if not any(selection.emulators.values()):
        absent = sorted(
            n for s in systems for n, m in selection.missing[s].items() if m["kind"] == "emulator"
        )
        raise ParameterError(
            "available emulators",
            f"none for {', '.join(systems)}{' among ' + ', '.join(names) if names else ''}",
            f"at least one in the zoo at {zoo.root} (missing: {', '.join(absent) or 'none'})",
        )
    return selection
