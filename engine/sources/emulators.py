"""Your own emulator, run by the explorer like the zoo's: the protocol and the registry.

The protocol (docs/sources.md has a worked example): an emulator is any callable, a
torch module included,

    emulator(context, conditions, members) -> frames

- `context`: float32 tensor (K, c, C, X, Y): the last c frames of each of K members in
  physical units, channels in the target's order (at the start, the truth's first c
  frames repeated K times);
- `conditions`: dict of the trajectory's parameters (may be empty);
- `members`: K, the ensemble size asked for (1 unless the entry says `ensemble=True`);
- returns a block of n >= 1 new frames per member, (K, n, C, X, Y) (a tensor or array);
  the next call's context is the last c frames so far.

It is registered for a target (a system name, or a Well dataset's `dataset_name`, or
"*" for any) with `register_emulator`, or from an installed package through the entry
point group `latentsim.emulators`, whose value is an `EmulatorEntry` (or a function
returning one or a list of them). `run_emulator` checks every block: a wrong shape or a
non-finite value stops the run with a message naming the emulator and the problem.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import runpy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from engine.errors import LatentsimError, ParameterError, check_integer

ENTRY_POINT_GROUP = "latentsim.emulators"
MAX_MEMBERS = 64


class EmulatorProtocol(Protocol):
    def __call__(
        self, context: torch.Tensor, conditions: Mapping[str, Any], members: int
    ) -> torch.Tensor | np.ndarray: ...


class EmulatorError(LatentsimError):
    """A user emulator that failed or broke the protocol; names it and the problem."""

    def __init__(self, name: str, problem: str):
        self.name, self.problem = name, problem
        super().__init__(f"emulator {name!r}: {problem}")


@dataclass(frozen=True)
class EmulatorEntry:
    """A registered emulator: what it predicts (`target`) and how it is called."""

    name: str
    emulator: Callable[..., Any]
    target: str  # a system name, a Well dataset_name, or "*"
    context: int = 1
    ensemble: bool = False  # True: it samples `members` different futures
    description: str = ""

    def matches(self, target: str) -> bool:
        return self.target in ("*", target)


_REGISTRY: dict[str, EmulatorEntry] = {}
_PROBLEMS: dict[str, str] = {}


def register_emulator(
    name: str,
    emulator: Callable[..., Any],
    *,
    target: str,
    context: int = 1,
    ensemble: bool = False,
    description: str = "",
) -> EmulatorEntry:
    """Make `emulator` appear in the explorer's menus for `target` (replaces a
    registration under the same name)."""
    if not callable(emulator):
        raise ParameterError("emulator", type(emulator).__name__, "a callable or torch module")
    if not name or not isinstance(name, str):
        raise ParameterError("emulator name", name, "a non-empty string")
    entry = EmulatorEntry(
        name=name,
        emulator=emulator,
        target=target,
        context=check_integer("context", context, 1, 64),
        ensemble=bool(ensemble),
        description=description,
    )
    _REGISTRY[name] = entry
    return entry


def registered_emulators() -> dict[str, EmulatorEntry]:
    return dict(_REGISTRY)


def emulators_for(target: str) -> list[EmulatorEntry]:
    return [entry for entry in _REGISTRY.values() if entry.matches(target)]


def load_entry_points() -> dict[str, str]:
    """Register the emulators of installed packages; returns {entry point: problem} for
    those that failed (a broken package must not take the explorer down)."""
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
            found = loaded if isinstance(loaded, EmulatorEntry) else loaded()
            entries = [found] if isinstance(found, EmulatorEntry) else list(found)
            for entry in entries:
                if not isinstance(entry, EmulatorEntry):
                    raise TypeError(f"gave {type(entry).__name__}, not an EmulatorEntry")
                _REGISTRY[entry.name] = entry
        except Exception as err:  # any failure of foreign code is reported, not raised
            _PROBLEMS[point.name] = (
                f"entry point {point.name} = {point.value} ({ENTRY_POINT_GROUP}): "
                f"{type(err).__name__}: {err}"
            )
        else:
            _PROBLEMS.pop(point.name, None)
    return dict(_PROBLEMS)


def import_emulator_modules(modules: list[str]) -> dict[str, str]:
    """Run Python files (`path.py`) or import modules that call `register_emulator`
    (`latentsim view --emulators`); returns {module: problem} for those that failed."""
    problems = {}
    for module in modules:
        try:
            if module.endswith(".py"):
                runpy.run_path(module, run_name="latentsim_emulators")
            else:
                importlib.import_module(module)
        except Exception as err:  # foreign code: report, keep serving
            problems[module] = f"emulators from {module}: {type(err).__name__}: {err}"
    return problems


def run_emulator(
    entry: EmulatorEntry,
    context: torch.Tensor | np.ndarray,
    conditions: Mapping[str, Any],
    horizon: int,
    members: int = 1,
) -> Iterator[np.ndarray]:
    """Roll `entry` out from `context` (c, C, X, Y); yields blocks (K, n, C, X, Y)
    float32 until `horizon` frames, each checked for shape and finiteness."""
    context = torch.as_tensor(np.asarray(context), dtype=torch.float32)
    if context.ndim != 4 or context.shape[0] < entry.context:
        raise ParameterError(
            "context shape", tuple(context.shape), f"(c >= {entry.context}, C, X, Y)"
        )
    members = check_integer("members", members, 1, MAX_MEMBERS) if entry.ensemble else 1
    horizon = check_integer("horizon", horizon, 1)
    window = context[-entry.context :].unsqueeze(0).repeat(members, 1, 1, 1, 1)
    module = entry.emulator
    if isinstance(module, torch.nn.Module):
        module.eval()
    produced = 0
    while produced < horizon:
        block = _call(entry, window, conditions, members)
        block = block[:, : horizon - produced]
        produced += block.shape[1]
        window = torch.cat([window, block], dim=1)[:, -entry.context :]
        yield block.numpy()


def _call(
    entry: EmulatorEntry, window: torch.Tensor, conditions: Mapping[str, Any], members: int
) -> torch.Tensor:
    try:
        with torch.no_grad():
            out = entry.emulator(window.clone(), dict(conditions), members)
    except Exception as err:  # the user's code: report it with its name
        raise EmulatorError(entry.name, f"raised {type(err).__name__}: {err}") from err
    if not isinstance(out, torch.Tensor | np.ndarray):
        raise EmulatorError(entry.name, f"returned {type(out).__name__}, not a tensor or array")
    block = torch.as_tensor(np.asarray(out) if isinstance(out, np.ndarray) else out.detach())
    block = block.to("cpu", torch.float32)
    tail = tuple(window.shape[2:])
    if (
        block.ndim != 5
        or block.shape[0] != members
        or tuple(block.shape[2:]) != tail
        or not len(block[0])
    ):
        raise EmulatorError(
            entry.name,
            f"returned shape {tuple(block.shape)}; expected ({members}, n >= 1, "
            f"{', '.join(str(s) for s in tail)}) = (members, frames, channels, x, y)",
        )
    if not bool(torch.isfinite(block).all()):
        bad = int((~torch.isfinite(block)).flatten(2).any(2).any(0).nonzero()[0])
        raise EmulatorError(entry.name, f"returned NaN or inf (frame {bad} of its block)")
    return block
