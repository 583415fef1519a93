"""Which sources a session may open, and which one (and which part of it) it shows.

`SourceCatalog` is the server's list: the paths `latentsim view` was started on, what
lies under the allowed roots, and in-memory datasets of `app.explore`. A URL or a menu
can only pick an entry of this list (engine.sources.AllowedRoots refuses anything else).
`SourceState` is the selection, plain parameters without Panel like app/state.py:
source, split, trajectory, start frame, 3-D slice, and an emulator registered for the
dataset. Opening is done by the engine; a bad file becomes `problem`, never an exception.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import param
import xarray

from app.url import refusal
from engine.errors import LatentsimError
from engine.sources import (
    AllowedRoots,
    MemoryWell,
    ModelFolder,
    RolloutFile,
    SolverSource,
    Source,
    WellSource,
    emulators_for,
    load_entry_points,
    open_rollout,
    open_source,
)
from engine.sources.emulators import import_emulator_modules, registered_emulators
from engine.systems import SYSTEM_NAMES

BUILTIN = "built-in systems (zoo)"
NO_EMULATOR = "none (truth only)"
EMULATORS_VARIABLE = "LATENTSIM_VIEW_EMULATORS"  # modules or .py files that register some
PATHS_VARIABLE = "LATENTSIM_VIEW_PATHS"  # os.pathsep-separated: what `latentsim view` got
MEMORY = "memory:"
SYSTEM = "system:"  # a built-in system's solver, offered when an emulator targets it
DATASETS = (WellSource, MemoryWell, SolverSource)  # truth sources an emulator can run on
OPENED_KEPT = 8  # opened sources kept in memory per server, newest last
log = logging.getLogger(__name__)
QUERY_KEYS = ("source", "split", "trajectory", "start", "axis", "index", "emulator")


class SourceCatalog:
    """The sources a session may open: keys (resolved paths or `memory:<name>`) -> label."""

    def __init__(
        self,
        roots: AllowedRoots,
        paths: tuple[str | os.PathLike[str], ...] = (),
        datasets: Mapping[str, xarray.Dataset] | None = None,
    ):
        self.roots = roots
        self.datasets = dict(datasets or {})
        self._opened: dict[tuple[str, int], Source] = {}
        started = [roots.check(p) for p in paths]
        listed = [p for p in roots.candidates() if not (p / "manifest.json").is_file()]
        self.entries: dict[str, str] = {f"{MEMORY}{name}": name for name in self.datasets}
        for path in dict.fromkeys([*started, *listed]):
            self.entries[str(path)] = self._label(path)
        for system in sorted({e.target for e in registered_emulators().values()}):
            if system in SYSTEM_NAMES:
                self.entries[f"{SYSTEM}{system}"] = f"{system} (solver, your emulators)"
        self.initial = (
            str(started[0]) if started else next(iter(self.entries)) if self.datasets else None
        )

    @classmethod
    def from_environment(cls, args: tuple[str, ...] = ()) -> SourceCatalog | None:
        """The catalog of `latentsim view` (environment variables) and of
        `panel serve app --args PATH...` (`args`; their directories become roots)."""
        listed = [p for p in os.environ.get(PATHS_VARIABLE, "").split(os.pathsep) if p]
        listed += list(args)
        holders = [Path(p).resolve() for p in args]
        roots = AllowedRoots.from_environment([p.parent if p.is_file() else p for p in holders])
        targets = {e.target for e in registered_emulators().values()}
        if not listed and not roots.roots and not targets & set(SYSTEM_NAMES):
            return None
        return cls(roots, tuple(listed))

    def _label(self, path: Path) -> str:
        for root in self.roots.roots:
            if path.is_relative_to(root.parent):
                return str(path.relative_to(root.parent))
        return path.name

    def open(self, key: str) -> Source:
        """Open entry `key`; anything not listed is refused with the valid choices."""
        if key not in self.entries:
            raise LatentsimError(
                f"source {key!r} is not one this server offers "
                f"({', '.join(self.entries.values()) or 'none'})"
            )
        if key.startswith(SYSTEM):
            return SolverSource(key[len(SYSTEM) :])
        if key.startswith(MEMORY):
            dataset = self.datasets[key[len(MEMORY) :]]
            return MemoryWell(dataset) if MemoryWell.accepts(dataset) else open_rollout(dataset)
        stamp = (key, _modified(Path(key)))
        if stamp not in self._opened:  # sessions share what was read (files are not changed)
            if len(self._opened) >= OPENED_KEPT:
                self._opened.pop(next(iter(self._opened)))
            self._opened[stamp] = open_source(key, self.roots)
        return self._opened[stamp]


def server_catalog(args: tuple[str, ...]) -> SourceCatalog | None:
    """The server's catalog, built on its first session and shared by later ones."""
    for name, problem in entry_point_problems().items():  # registers them first
        log.warning("emulator entry point %s: %s", name, problem)
    if args not in _CATALOGS:
        _CATALOGS[args] = SourceCatalog.from_environment(args)
    return _CATALOGS[args]


@cache
def entry_point_problems() -> dict[str, str]:
    """Load the `latentsim.emulators` entry points and the modules `latentsim view
    --emulators` names, once per process; what failed (shown to every session)."""
    modules = [m for m in os.environ.get(EMULATORS_VARIABLE, "").split(os.pathsep) if m]
    return load_entry_points() | import_emulator_modules(modules)


_CATALOGS: dict[tuple[str, ...], SourceCatalog | None] = {}


class SourceState(param.Parameterized):
    """The selected source and the part of it shown; every value is kept valid."""

    source = param.Selector(default=BUILTIN, objects=[BUILTIN], doc="what to show")
    split = param.Selector(default=None, objects=[], allow_None=True, check_on_set=True)
    trajectory = param.Integer(default=0, bounds=(0, 0), doc="trajectory within the split")
    start = param.Integer(default=0, bounds=(0, 0), doc="first frame (the context starts here)")
    axis = param.Selector(default=None, objects=[], allow_None=True, check_on_set=True)
    index = param.Integer(default=0, bounds=(0, 0), doc="slice index along `axis` (3-D data)")
    emulator = param.Selector(default=NO_EMULATOR, objects=[NO_EMULATOR], check_on_set=True)
    members = param.Integer(default=4, bounds=(1, 32), doc="ensemble size (ensemble emulators)")
    problem = param.String(default="", doc="why the selected source cannot be shown")

    def __init__(self, catalog: SourceCatalog, **params: Any):
        self.catalog = catalog
        self.opened: Source | None = None
        super().__init__()
        self.param.source.objects = [BUILTIN, *catalog.entries]
        self.param.source.names = {BUILTIN: BUILTIN} | {
            label: key for key, label in catalog.entries.items()
        }
        self.param.update(source=catalog.initial or BUILTIN, **params)

    @property
    def builtin(self) -> bool:
        return self.source == BUILTIN

    @property
    def emulator_ensemble(self) -> bool:
        """Whether the chosen emulator samples an ensemble (then `members` applies)."""
        entry = registered_emulators().get(self.emulator)
        return entry is not None and entry.ensemble

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(getattr(self.opened, "channels", ()))

    def extent(self) -> tuple[int, int]:
        """(leads, members) the selection will show."""
        opened = self.opened
        if isinstance(opened, RolloutFile):
            return opened.members.shape[1], opened.members.shape[0]
        if isinstance(opened, DATASETS):
            entry = registered_emulators().get(self.emulator)
            context = entry.context if entry is not None else 0
            members = self.members if entry is not None and entry.ensemble else 1
            return opened.n_steps - self.start - context, members
        return 1, 1

    @property
    def label(self) -> str:
        return self.catalog.entries.get(self.source, self.source)

    @param.depends("source", watch=True, on_init=True)
    def _source_changed(self) -> None:
        self.opened, self.problem = None, ""
        if self.builtin:
            return
        try:
            self.opened = self.catalog.open(self.source)
        except LatentsimError as err:
            self.problem = str(err)
            return
        except OSError as err:  # permissions, vanished files: the message names the path
            self.problem = f"{self.label}: {err}"
            return
        opened = self.opened
        if isinstance(opened, ModelFolder):
            self.problem = (
                f"{self.label} is a model folder: start `latentsim view {opened.path}` "
                "to use its models instead of the shipped zoo"
            )
            return
        if isinstance(opened, DATASETS):
            self.param.split.objects = list(opened.splits)
            self.split = opened.splits[0]
            three_d = len(opened.spatial_dims) == 3
            self.param.axis.objects = list(opened.spatial_dims) if three_d else []
            self.axis = opened.spatial_dims[-1] if three_d else None
            names = [e.name for e in emulators_for(opened.name)]
            self.param.emulator.objects = [NO_EMULATOR, *names]
            self.emulator = NO_EMULATOR
            self._split_changed()
            self._axis_changed()

    @param.depends("split", watch=True)
    def _split_changed(self) -> None:
        if isinstance(self.opened, DATASETS) and self.split is not None:
            count = len(self.opened.trajectories(self.split))
            self.param.trajectory.bounds = (0, count - 1)
            self.trajectory = min(self.trajectory, count - 1)
            self.param.start.bounds = (0, max(self.opened.n_steps - 2, 0))
            self.start = min(self.start, self.opened.n_steps - 2)

    @param.depends("axis", watch=True)
    def _axis_changed(self) -> None:
        if isinstance(self.opened, DATASETS) and self.axis is not None:
            size = self.opened.shape[self.opened.spatial_dims.index(self.axis)]
            self.param.index.bounds = (0, size - 1)
            self.index = size // 2

    def describe(self) -> str:
        """Markdown: what the source is and what the views can show of it."""
        opened = self.opened
        if self.problem:
            return f"**Cannot show {self.label}**: {self.problem}"
        if isinstance(opened, RolloutFile):
            k, leads = opened.members.shape[:2]
            lines = [
                f"**Rollout file** `{self.label}`: {k} member{'s' * (k > 1)}, {leads} leads, "
                f"fields {', '.join(opened.channels)}, grid {opened.grid.grid_shape}.",
                *(f"- {note}" for note in opened.notes),
                "- Not available for a rollout file: the autoencoder reconstruction, the "
                "latents and the comparison rows (no model to run).",
            ]
            return "\n".join(lines)
        if isinstance(opened, DATASETS):
            bcs = ", ".join(f"{d}: {b}" for d, b in opened.boundary_conditions.items())
            lines = [
                f"**Well dataset** `{opened.name}` ({self.label}): fields "
                f"{', '.join(opened.channels)}; {opened.n_steps} frames; "
                f"dims {', '.join(opened.spatial_dims)}; boundaries {bcs or 'n/a'}.",
            ]
            if self.split is not None:
                parameters = opened.parameters(self.split, self.trajectory)
                shown = ", ".join(f"{k} = {v:.4g}" for k, v in parameters.items() if _num(v))
                lines.append(f"- parameters: {shown or 'none stored'}")
            if self.emulator == NO_EMULATOR:
                lines.append(
                    "- Truth only: no prediction, so no error, spread or scores. Register "
                    "an emulator for this dataset (docs/sources.md) to run one here."
                )
            lines.append("- Not available: the autoencoder reconstruction and latents.")
            return "\n".join(lines)
        return ""

    def apply_query(self, query: Mapping[str, Any]) -> list[str]:
        """URL values for the source keys; a source not offered is refused and explained."""
        warnings = []
        for name in QUERY_KEYS:
            if name not in query:
                continue
            raw = query[name]
            try:
                value = int(raw) if self.param[name].__class__ is param.Integer else str(raw)
                setattr(self, name, value)
            except (TypeError, ValueError) as err:
                warnings.append(refusal(name, raw, self.param[name], err, getattr(self, name)))
        return warnings

    def to_query(self) -> dict[str, str]:
        if self.builtin:
            return {}
        values = {name: getattr(self, name) for name in QUERY_KEYS}
        return {k: str(v) for k, v in values.items() if v is not None}


def _modified(path: Path) -> int:
    """A stamp that changes when the file (or a Zarr store's root) is rewritten."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
