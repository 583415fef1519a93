"""Registry of the physical systems latentsim emulates.

Systems are imported lazily so that asking for one does not build the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from engine.errors import UnknownNameError
from engine.systems.base import (
    ChoiceSpec,
    Conditions,
    FieldSpec,
    GridSpec,
    ParameterSpec,
    System,
    SystemSpec,
)

# name -> (module, class)
_REGISTRY: dict[str, tuple[str, str]] = {
    "euler_quadrants": ("engine.systems.euler_quadrants", "EulerQuadrants"),
    "rayleigh_benard": ("engine.systems.rayleigh_benard", "RayleighBenard"),
    "kolmogorov": ("engine.systems.kolmogorov", "Kolmogorov"),
}

SYSTEM_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_system(name: str, grid: Sequence[int] | None = None) -> System:
    """Instantiate a system by name, optionally on a non-default grid (x, y)."""
    if name not in _REGISTRY:
        raise UnknownNameError("system", name, SYSTEM_NAMES)
    module_name, class_name = _REGISTRY[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(grid=grid)


__all__ = [
    "SYSTEM_NAMES",
    "ChoiceSpec",
    "Conditions",
    "FieldSpec",
    "GridSpec",
    "ParameterSpec",
    "System",
    "SystemSpec",
    "get_system",
]
