"""The evaluation protocol's settings (`latentsim evaluate`'s options), checked up front."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass
from typing import Any

from engine.device import resolve_device
from engine.diffusion.samplers import SAMPLER_NAMES, SAMPLERS
from engine.errors import UnknownNameError, check_integer
from engine.evaluation.buckets import MIN_LEADS
from engine.rollout import RolloutConfig


@dataclass(frozen=True)
class EvaluationSettings:
    """The protocol: test trajectories, ensemble size, horizon (stored frames), context,
    sampler (`order` is passed to the samplers that take one: ab, lms, dpmpp), seed;
    `shift`: also re-run the latent emulators on the test trajectories out of the
    training range (engine/evaluation/shift.py)."""

    trajectories: int = 8
    members: int = 16
    horizon: int = 48
    context: int = 1
    sampler: str = "ab"
    order: int = 3
    steps: int = 16
    seed: int = 0
    device: str = "auto"
    card_check: bool = True
    shift: bool = True

    def __post_init__(self) -> None:
        for name, low in (
            ("trajectories", 1),
            ("members", 1),
            ("context", 1),
            ("steps", 1),
            ("order", 1),
            ("seed", 0),
        ):
            check_integer(name, getattr(self, name), low)
        check_integer(
            "horizon", self.horizon, MIN_LEADS, why=" (one lead per short/mid/long bucket)"
        )
        if self.sampler not in SAMPLER_NAMES:
            raise UnknownNameError("sampler", self.sampler, SAMPLER_NAMES)
        self.rollout_config(1)  # sampler options are checked now, not after hours
        resolve_device(self.device)

    def sampler_options(self) -> dict[str, int]:
        takes_order = "order" in inspect.signature(SAMPLERS[self.sampler]).parameters
        return {"order": self.order} if takes_order else {}

    def rollout_config(self, horizon: int) -> RolloutConfig:
        return RolloutConfig(
            members=self.members,
            context=self.context,
            horizon=horizon,
            sampler=self.sampler,
            steps=self.steps,
            sampler_options=self.sampler_options(),
            seed=self.seed,
        )

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "sampler_options": self.sampler_options()}

    def model_record(self) -> dict[str, Any]:
        """The settings one model's record depends on: all but `shift`, which decides
        whether a second record is measured, not what either holds."""
        return {k: v for k, v in self.record().items() if k != "shift"}
