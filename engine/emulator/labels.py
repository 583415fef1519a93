"""The conditioning label θ fed to emulators: simulation parameters as a fixed-size vector.

Layout: one entry per continuous parameter, in the spec's order, then a one-hot block per
categorical choice, in the spec's order.

- A continuous value v goes through `ParameterSpec.label` (log10 where `log_scale`: Reynolds
  or Rayleigh numbers span decades, and a linear label would squash most of the training
  range against one end), then the affine map that sends the training range to [-1, 1].
  Values outside the training range but inside the valid range map outside [-1, 1]: that
  is what an out-of-distribution query is, and the network is free to extrapolate.
- The official code (PolymathicAI/lola) decided "log or not" by comparing a lower-cased
  name against a list holding "T0", so one parameter was never log-scaled. Here the
  decision is the spec's `log_scale` flag and nothing else.

A `LabelSpec` holds the parameter and choice specs the label depends on. It is stored in
every emulator model card, so a saved emulator keeps encoding labels exactly as during its
training even if a system's training ranges are later changed in code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from engine.errors import DataFormatError, ParameterError
from engine.systems.base import ChoiceSpec, ParameterSpec, SystemSpec


@dataclass(frozen=True)
class LabelSpec:
    """What a label is made of; build it with `LabelSpec.from_system(spec)`."""

    parameters: tuple[ParameterSpec, ...] = ()
    choices: tuple[ChoiceSpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", tuple(self.parameters))
        object.__setattr__(self, "choices", tuple(self.choices))
        names = [p.name for p in self.parameters] + [c.name for c in self.choices]
        if len(set(names)) != len(names):
            raise ParameterError("label names", names, "distinct parameter and choice names")
        for p in self.parameters:
            lo, hi = (p.label(v) for v in p.train_range)
            if not lo < hi:
                raise ParameterError(
                    f"{p.name} train_range", p.train_range, "lo < hi (and lo > 0 if log_scale)"
                )
        for c in self.choices:
            if not c.choices or len(set(c.choices)) != len(c.choices):
                raise ParameterError(f"{c.name} choices", c.choices, "distinct names, at least 1")

    @classmethod
    def from_system(cls, spec: SystemSpec) -> LabelSpec:
        return cls(spec.parameters, spec.choices)

    @property
    def dim(self) -> int:
        return len(self.parameters) + sum(len(c.choices) for c in self.choices)

    @property
    def names(self) -> tuple[str, ...]:
        """One name per label entry: the parameter name, or 'choice=value' for one-hots."""
        return tuple(p.name for p in self.parameters) + tuple(
            f"{c.name}={value}" for c in self.choices for value in c.choices
        )

    def encode(self, conditions: Mapping[str, Any]) -> torch.Tensor:
        """The (P,) float32 label of one trajectory's conditions.

        Missing entries take their defaults (as `System.validate_conditions` does); unknown
        names and values outside a parameter's valid range are errors.
        """
        known = {p.name for p in self.parameters} | {c.name for c in self.choices}
        unknown = sorted(set(conditions) - known)
        if unknown:
            raise ParameterError("condition", unknown[0], f"one of {', '.join(sorted(known))}")
        entries: list[float] = []
        for p in self.parameters:
            value = p.check(conditions.get(p.name, p.default))
            lo, hi = (p.label(v) for v in p.train_range)
            entries.append(2.0 * (p.label(value) - lo) / (hi - lo) - 1.0)
        for c in self.choices:
            value = c.check(conditions.get(c.name, c.default))
            entries.extend(1.0 if value == option else 0.0 for option in c.choices)
        return torch.tensor(entries, dtype=torch.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field of every spec, plus the resulting dim and entry names."""
        return {
            "dim": self.dim,
            "names": list(self.names),
            "parameters": [
                {
                    "name": p.name,
                    "long_name": p.long_name,
                    "train_range": list(p.train_range),
                    "valid_range": list(p.valid_range),
                    "default": p.default,
                    "log_scale": p.log_scale,
                }
                for p in self.parameters
            ],
            "choices": [
                {
                    "name": c.name,
                    "long_name": c.long_name,
                    "choices": list(c.choices),
                    "default": c.default,
                }
                for c in self.choices
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSpec:
        """Inverse of `to_dict`; a dict whose stored dim disagrees with its specs is refused."""
        try:
            parameters = tuple(
                ParameterSpec(
                    name=str(p["name"]),
                    long_name=str(p["long_name"]),
                    train_range=(float(p["train_range"][0]), float(p["train_range"][1])),
                    valid_range=(float(p["valid_range"][0]), float(p["valid_range"][1])),
                    default=float(p["default"]),
                    log_scale=bool(p["log_scale"]),
                )
                for p in data["parameters"]
            )
            choices = tuple(
                ChoiceSpec(
                    name=str(c["name"]),
                    long_name=str(c["long_name"]),
                    choices=tuple(str(v) for v in c["choices"]),
                    default=str(c["default"]),
                )
                for c in data["choices"]
            )
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise ParameterError(
                "label spec", data, f"the layout of LabelSpec.to_dict ({err})"
            ) from err
        spec = cls(parameters, choices)
        if data.get("dim", spec.dim) != spec.dim:
            raise ParameterError("label spec dim", data.get("dim"), f"{spec.dim} from its specs")
        return spec

    def check_matches(self, other: LabelSpec, where: object) -> None:
        """DataFormatError naming the first difference (a model trained on other labels)."""
        if self == other:
            return
        mine, theirs = self.to_dict(), other.to_dict()
        for key in ("names", "parameters", "choices"):
            if mine[key] != theirs[key]:
                raise DataFormatError(
                    where, f"label {key} {mine[key]!r} differ from the system's {theirs[key]!r}"
                )


def _label_spec(spec: SystemSpec | LabelSpec) -> LabelSpec:
    return spec if isinstance(spec, LabelSpec) else LabelSpec.from_system(spec)


def condition_label(spec: SystemSpec | LabelSpec, conditions: Mapping[str, Any]) -> torch.Tensor:
    """The (P,) float32 label of one set of conditions (see the module docstring)."""
    return _label_spec(spec).encode(conditions)


def condition_labels(
    spec: SystemSpec | LabelSpec, conditions: Sequence[Mapping[str, Any]]
) -> torch.Tensor:
    """(B, P) labels of several trajectories' conditions."""
    label_spec = _label_spec(spec)
    if not conditions:
        return torch.zeros(0, label_spec.dim)
    return torch.stack([label_spec.encode(c) for c in conditions])


def label_dim(spec: SystemSpec | LabelSpec) -> int:
    """P: continuous parameters plus one entry per option of each categorical choice."""
    return _label_spec(spec).dim
