"""What a rollout is asked to do (`RolloutConfig`) and how it fails (`RolloutDivergedError`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from engine.device import resolve_device
from engine.diffusion.samplers import SAMPLER_NAMES, Sampler, get_sampler
from engine.errors import LatentsimError, ParameterError, UnknownNameError, check_integer
from engine.pipeline import Pipeline

# seed_generator streams 0 and 1 draw conditions and initial conditions (systems/base.py);
# ensemble noise gets its own, so a rollout seed equal to a truth seed shares nothing.
STREAM_ENSEMBLE = 2
SEED_LIMIT = 2**63


class RolloutDivergedError(LatentsimError, FloatingPointError):
    """An emulator produced non-finite values; the blocks before this one were valid."""

    def __init__(self, member: int, lead: int, lead_time: float, where: list[str]):
        self.member, self.lead, self.lead_time, self.where = member, lead, lead_time, where
        super().__init__(
            f"rollout diverged: member {member} is non-finite at lead {lead} "
            f"(lead time {lead_time:.6g}) in {', '.join(where)}"
        )


@dataclass(frozen=True)
class RolloutConfig:
    """How to roll an emulator out. Values are checked on construction.

    members: ensemble size K (rows of one batch). Deterministic emulators run 1 member
        whatever K is, and report the coercion.
    context: c frames conditioning each emulator call, 1..L−1 (checked against the
        emulator's window L when the rollout starts); each call generates L − c frames.
    horizon: frames to predict (the last block is truncated to it).
    sampler, steps, sampler_options: a sampler of engine.diffusion (ignored by
        deterministic emulators), e.g. sampler="ab", sampler_options={"order": 3}.
    seed: seeds the ensemble noise; the same seed, K and config reproduce a rollout.
    device: None runs on the pipeline's device; otherwise the pipeline is moved there.
    """

    members: int = 1
    context: int = 1
    horizon: int = 20
    sampler: str = "ab"
    steps: int = 16
    sampler_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        for name in ("members", "context", "horizon", "steps"):
            object.__setattr__(self, name, check_integer(name, getattr(self, name), 1))
        object.__setattr__(self, "seed", check_integer("seed", self.seed, 0, SEED_LIMIT - 1))
        if self.sampler not in SAMPLER_NAMES:
            raise UnknownNameError("sampler", self.sampler, SAMPLER_NAMES)
        if not isinstance(self.sampler_options, Mapping):
            raise ParameterError("sampler_options", self.sampler_options, "a mapping")
        # Read-only, so the checked options cannot change after this check.
        object.__setattr__(self, "sampler_options", MappingProxyType(dict(self.sampler_options)))
        if "steps" in self.sampler_options:
            raise ParameterError("sampler option", "steps", "set RolloutConfig.steps instead")
        self.make_sampler()  # unknown or out-of-range options fail now, not mid-rollout
        if self.device is not None:
            resolve_device(self.device)

    def make_sampler(self) -> Sampler:
        return get_sampler(self.sampler, steps=self.steps, **self.sampler_options)

    def resolve(self, pipeline: Pipeline) -> tuple[RolloutConfig, tuple[str, ...]]:
        """(the config this pipeline runs, the coercions applied to get it)."""
        window = pipeline.window
        why = f" (the emulator's window is {window} and generates at least 1 frame per call)"
        check_integer("context", self.context, 1, window - 1, why)
        if pipeline.kind == "deterministic" and self.members > 1:
            note = (
                f"members {self.members} -> 1: a deterministic emulator's members "
                "would be identical"
            )
            return replace(self, members=1), (note,)
        return self, ()
