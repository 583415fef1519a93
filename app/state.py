"""What the user has chosen, as plain parameters: no Panel, so it is tested headless.

`ZooMenus` derives every menu (systems, compression rates, emulator kinds) from the zoo,
so a model published tomorrow shows up without a code change. `ExplorerState` holds the
selection, keeps it consistent (a system change re-derives rates, fields, conditions and
bounds), validates values coming from the URL (bad ones are replaced by sane ones and
reported as warnings, never raised; the query codec is app/url.py), and turns the
selection into a `RunRequest`, the immutable description of one job that app/runner.py
executes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any

import param

from app import url
from app.url import QUERY_PARAMS as QUERY_PARAMS  # re-exported: defined here before
from engine.diffusion.samplers import SAMPLERS
from engine.emulator.base import KINDS
from engine.errors import LatentsimError
from engine.pipeline import out_of_training_range
from engine.systems import get_system
from engine.systems.base import SystemSpec
from engine.zoo import Zoo, ZooEntry

PIXEL = "pixel"
DEFAULT_SYSTEM = "rayleigh_benard"
DEFAULT_HORIZON = 40
COMPARE_MODES = {"none": "none", "compression rates": "rates", "samplers / steps": "samplers"}
COMPARE_STEPS = (4, 8, 16, 32)
DEFAULT_COMPARE_SAMPLERS = ("ab/4", "ab/8", "ab/16", "ddim/16")


def sampler_names() -> list[str]:
    """Registered samplers, aliases of an already listed class left out ("lms" = "ab")."""
    seen: set[type] = set()
    names = []
    for name, cls in SAMPLERS.items():
        if cls not in seen:
            seen.add(cls)
            names.append(name)
    return names


SAMPLER_CHOICES = sampler_names()
COMPARE_SAMPLER_CHOICES = [f"{s}/{n}" for s in SAMPLER_CHOICES for n in COMPARE_STEPS]


@cache
def system_spec(name: str) -> SystemSpec:
    """The spec on the system's default grid (names, ranges and cadence do not depend on it)."""
    return get_system(name).spec


def rate_label(rate: int | str) -> str:
    return "pixel space" if rate == PIXEL else f"latent ×{rate}"


class ZooMenus:
    """Menus derived from the zoo's usable emulators."""

    def __init__(self, zoo: Zoo):
        self.zoo = zoo

    @property
    def problems(self) -> dict[str, str]:
        return dict(self.zoo.problems)

    def systems(self) -> list[str]:
        return self.zoo.systems()

    def rates(self, system: str) -> list[int | str]:
        """Latent rates (lowest first), then "pixel" when a pixel-space emulator exists."""
        rates: list[int | str] = list(self.zoo.rates(system))
        if self.zoo.available(kind="emulator", system=system, space="pixel"):
            rates.append(PIXEL)
        return rates

    def kinds(self, system: str, rate: int | str) -> list[str]:
        found = {e.method for e in self._emulators(system, rate)}
        return [kind for kind in KINDS if kind in found]

    def emulator(self, system: str, kind: str, rate: int | str) -> ZooEntry:
        return self.zoo.emulator(system, kind, None if rate == PIXEL else int(rate))

    def card(self, entry: ZooEntry) -> dict[str, Any]:
        return self.zoo.card(entry.name)

    def _emulators(self, system: str, rate: int | str) -> list[ZooEntry]:
        if rate == PIXEL:
            return self.zoo.available(kind="emulator", system=system, space="pixel")
        return self.zoo.available(kind="emulator", system=system, space="latent", rate=rate)


@dataclass(frozen=True)
class SeriesSpec:
    """One rollout of a job. `key`: "main", "reference" (the other kind at the same rate)
    or "rate:<rate>" / "sampler:<name>/<steps>" for comparison rows."""

    key: str
    label: str
    emulator: str  # zoo name
    kind: str
    rate: int | str
    sampler: str
    steps: int
    members: int
    frame_stride: int  # stored frames per emulator step, from the emulator's card


@dataclass(frozen=True)
class RunRequest:
    """Everything one job needs, fixed when Run is pressed."""

    system: str
    conditions: dict[str, Any]
    seed: int
    context: int
    horizon: int
    series: tuple[SeriesSpec, ...]
    compare: str = "none"  # "none" | "rates" | "samplers"
    compare_keys: tuple[str, ...] = field(default=())  # series shown as comparison rows

    @property
    def main(self) -> SeriesSpec:
        return self.series[0]

    def key(self) -> Hashable:
        """Every field, hashable (dicts as sorted items): two requests with equal keys
        compute the same numbers, so sessions can share one run (app/shared_runs.py)."""
        return tuple((f.name, _hashable(getattr(self, f.name))) for f in fields(self))


def _hashable(value: Any) -> Hashable:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


class ExplorerState(param.Parameterized):
    """The explorer's selection. Construct with the menus; every value is kept valid."""

    # Menus start empty and are filled from the zoo: check_on_set must then be explicit.
    system = param.Selector(
        default=None, objects=[], allow_None=True, check_on_set=True, doc="physical system"
    )
    rate = param.Selector(
        default=None,
        objects=[],
        allow_None=True,
        check_on_set=True,
        doc="compression rate of the latent space, or 'pixel'",
    )
    kind = param.Selector(
        default=None, objects=[], allow_None=True, check_on_set=True, doc="emulator kind"
    )
    sampler = param.Selector(default="ab", objects=SAMPLER_CHOICES, doc="diffusion sampler")
    steps = param.Integer(default=16, bounds=(1, 64), doc="sampler steps per emulator call")
    members = param.Integer(default=8, bounds=(1, 32), doc="ensemble size")
    context = param.Integer(default=1, bounds=(1, 4), doc="context frames per emulator call")
    horizon = param.Integer(default=DEFAULT_HORIZON, bounds=(1, 200), doc="frames to predict")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1), doc="initial condition and noise")
    conditions = param.Dict(default={}, doc="the system's parameters and choices")
    field = param.Selector(
        default=None, objects=[], allow_None=True, check_on_set=True, doc="field shown"
    )
    time_index = param.Integer(
        default=0,
        bounds=(0, DEFAULT_HORIZON - 1),
        doc="lead index shown (0 = first predicted frame)",
    )
    follow = param.Boolean(default=True, doc="jump to the newest frame while streaming")
    member = param.Integer(default=0, bounds=(0, 7), doc="member shown when not a mosaic")
    mosaic = param.Boolean(default=True, doc="show all members tiled instead of one")
    compare = param.Selector(default="none", objects=COMPARE_MODES, doc="comparison rows")
    compare_samplers = param.ListSelector(
        default=list(DEFAULT_COMPARE_SAMPLERS), objects=COMPARE_SAMPLER_CHOICES
    )
    reference = param.Boolean(
        default=True, doc="also run the other emulator kind, for the diagnostics"
    )

    def __init__(self, menus: ZooMenus, **params: Any):
        self.menus = menus
        super().__init__()
        systems = menus.systems()
        self.param.system.objects = systems
        if systems:
            self.system = params.pop("system", self._default_system(systems))
        self.param.update(**params)

    def _default_system(self, systems: list[str]) -> str:
        """Rayleigh-Benard if it can run, else the first system with latent diffusion."""
        if DEFAULT_SYSTEM in systems:
            return DEFAULT_SYSTEM
        zoo = self.menus.zoo
        diffusion = [
            s
            for s in systems
            if zoo.available(kind="emulator", system=s, method="diffusion", space="latent")
        ]
        return (diffusion or systems)[0]

    # -- derived ---------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """Whether any emulator can be run at all."""
        return self.system is not None

    @property
    def spec(self) -> SystemSpec:
        return system_spec(self.system)

    @property
    def emulator(self) -> ZooEntry:
        return self.menus.emulator(self.system, self.kind, self.rate)

    def out_of_distribution(self) -> list[str]:
        """Condition names outside the models' training range (allowed, but flagged)."""
        return out_of_training_range(self.spec, self.conditions)

    # -- consistency -------------------------------------------------------------------------
    def _choose(self, name: str, objects: list | dict, preferred: Any) -> None:
        self.param[name].objects = objects
        values = list(objects.values()) if isinstance(objects, dict) else list(objects)
        if getattr(self, name) not in values or preferred in values:
            setattr(self, name, preferred if preferred in values else values[0])

    @param.depends("system", watch=True)
    def _system_changed(self) -> None:
        spec = self.spec
        rates = self.menus.rates(self.system)
        labels = {rate_label(rate): rate for rate in rates}
        self._choose("rate", labels, self.rate if self.rate in rates else rates[0])
        self._choose("field", list(spec.channel_names), self.field)
        defaults = {p.name: p.default for p in spec.parameters}
        defaults.update({c.name: c.default for c in spec.choices})
        self.conditions = defaults
        self._rate_changed()

    @param.depends("rate", watch=True)
    def _rate_changed(self) -> None:
        if self.system is None or self.rate is None:
            return
        kinds = self.menus.kinds(self.system, self.rate)
        self._choose("kind", kinds, self.kind if self.kind in kinds else kinds[0])
        self._model_changed()

    @param.depends("kind", watch=True)
    def _model_changed(self) -> None:
        if self.kind is None:
            return
        window, stride = self.emulator.window, self.emulator.frame_stride
        self.param.context.bounds = (1, window - 1)
        self.context = min(self.context, window - 1)
        self._context_changed(stride)

    @param.depends("context", watch=True)
    def _context_changed(self, stride: int | None = None) -> None:
        if self.kind is None:
            return
        if stride is None:
            stride = self.emulator.frame_stride
        longest = max(1, (self.spec.n_frames - 1) // stride - (self.context - 1))
        self.param.horizon.bounds = (1, longest)
        self.horizon = min(self.horizon, longest)

    @param.depends("horizon", watch=True, on_init=True)
    def _horizon_changed(self) -> None:
        self.param.time_index.bounds = (0, self.horizon - 1)
        self.time_index = min(self.time_index, self.horizon - 1)

    @param.depends("members", watch=True, on_init=True)
    def _members_changed(self) -> None:
        self.param.member.bounds = (0, self.members - 1)
        self.member = min(self.member, self.members - 1)

    # -- conditions ---------------------------------------------------------------------------
    def set_condition(self, name: str, value: Any) -> str | None:
        """Set one condition if valid; otherwise keep the old value and return why."""
        spec = self.spec
        known = {p.name: p for p in spec.parameters} | {c.name: c for c in spec.choices}
        if name not in known:
            return f"{spec.name} has no condition {name!r} (it has {', '.join(known) or 'none'})"
        try:
            checked = known[name].check(value)
        except (LatentsimError, TypeError, ValueError) as err:
            return f"{err}; kept {name}={self.conditions.get(name)!r}"
        self.conditions = {**self.conditions, name: checked}
        return None

    # -- URL (app/url.py) ------------------------------------------------------------------
    def apply_query(self, query: Mapping[str, Any]) -> list[str]:
        """Apply URL query values; invalid ones are skipped and explained (app/url.py)."""
        return url.apply_query(self, query)

    def to_query(self) -> dict[str, str]:
        """Query-string values that reproduce this state (app/url.py)."""
        return url.to_query(self)

    # -- jobs ------------------------------------------------------------------------------------
    def request(self) -> tuple[RunRequest, list[str]]:
        """The job for the current selection, and notes on what was left out of it."""
        notes: list[str] = []
        main = self._series("main", self.kind, self.rate, self.sampler, self.steps)
        series = [main]
        if self.reference:
            other = [k for k in self.menus.kinds(self.system, self.rate) if k != self.kind]
            if other:
                series.append(
                    self._series("reference", other[0], self.rate, self.sampler, self.steps)
                )
        keys: list[str] = []
        if self.compare == "rates":
            for rate in self.menus.rates(self.system):
                if rate == self.rate:
                    keys.append(main.key)
                elif self.kind in self.menus.kinds(self.system, rate):
                    series.append(
                        self._series(f"rate:{rate}", self.kind, rate, self.sampler, self.steps)
                    )
                    keys.append(series[-1].key)
        elif self.compare == "samplers" and self.kind != "diffusion":
            notes.append("sampler comparison needs a diffusion emulator; none was run")
        elif self.compare == "samplers":
            for choice in dict.fromkeys(self.compare_samplers):  # a URL may repeat one
                sampler, steps = choice.split("/")
                if (sampler, int(steps)) == (self.sampler, self.steps):
                    keys.append(main.key)
                else:
                    series.append(
                        self._series(f"sampler:{choice}", self.kind, self.rate, sampler, int(steps))
                    )
                    keys.append(series[-1].key)
        request = RunRequest(
            system=self.system,
            conditions=dict(self.conditions),
            seed=self.seed,
            context=self.context,
            horizon=self.horizon,
            series=tuple(series),
            compare=self.compare,
            compare_keys=tuple(keys),
        )
        return request, notes

    def _series(self, key: str, kind: str, rate: int | str, sampler: str, steps: int) -> SeriesSpec:
        entry = self.menus.emulator(self.system, kind, rate)
        diffusion = kind == "diffusion"
        label = f"{kind}, {rate_label(rate)}"
        if diffusion:
            label += f", {sampler} {steps} steps"
        return SeriesSpec(
            key=key,
            label=label,
            emulator=entry.name,
            kind=kind,
            rate=rate,
            sampler=sampler,
            steps=steps,
            members=self.members if diffusion else 1,
            frame_stride=entry.frame_stride,
        )
