"""Training hyper-parameters, their validation, and the learning-rate schedule they imply.

The config is stored in every checkpoint. Fields that shape the optimisation trajectory
(`TRAJECTORY_FIELDS`) must match on resume, otherwise "resume" would silently become a
different run; the bookkeeping fields (how often to log, validate, checkpoint, and on
which device) may change between sessions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from engine.errors import ParameterError, check_integer, check_positive, reject_unknown_fields

TRAJECTORY_FIELDS = (
    "optimizer",
    "steps",
    "batch_size",
    "lr",
    "betas",
    "weight_decay",
    "warmup_steps",
    "grad_clip",
    "ema_decay",
    "bf16",
    "seed",
)

OPTIMIZERS = ("adamw", "psgd_kron")
_DEVICE_CHOICES = "'auto', 'cpu', 'cuda' or 'cuda:N'"


@dataclass(frozen=True)
class TrainConfig:
    """Everything the trainer needs besides the model, the loss and the data.

    `steps` counts loop iterations, skipped (non-finite) ones included, so the schedule and
    the data order do not depend on how many steps were skipped. `batch_size` is the
    global batch: under DDP each of the W ranks takes `batch_size / W` samples of it.
    `checkpoint_every` / `validate_every` = 0 mean "only at the end".
    Defaults follow the paper's emulator optimisation (AdamW, betas (0.9, 0.99), no weight
    decay, clip 1, cosine to 0); `optimizer` "psgd_kron" is the paper's autoencoder
    optimiser (engine.training.optimizers), under the same schedule and clipping.
    """

    steps: int
    optimizer: str = "adamw"
    batch_size: int = 64
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    # Exponential moving average of the weights (None: off). The averaged weights are
    # validated and returned; diffusion denoisers in particular are far smoother averaged
    # over the last ~1/(1 - decay) updates than at the final, noisy iterate.
    ema_decay: float | None = None
    # Forward and loss under bfloat16 autocast (weights, optimiser and gradients stay
    # float32): convolutions run ~1.8x faster on CPUs with bf16 support (docs/zoo.md).
    bf16: bool = False
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    validate_every: int = 0
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        # Accept lists (JSON round trip) for betas while keeping the field hashable.
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.optimizer not in OPTIMIZERS:
            raise ParameterError("optimizer", self.optimizer, f"one of {', '.join(OPTIMIZERS)}")
        check_integer("steps", self.steps, 1)
        check_integer("batch_size", self.batch_size, 1)
        check_integer("warmup_steps", self.warmup_steps, 0, self.steps)
        check_integer("checkpoint_every", self.checkpoint_every, 0)
        check_integer("keep_checkpoints", self.keep_checkpoints, 1)
        check_integer("log_every", self.log_every, 1)
        check_integer("validate_every", self.validate_every, 0)
        check_integer("seed", self.seed, 0, 2**63 - 1)
        check_positive("lr", self.lr)
        if len(self.betas) != 2 or not all(_is_real(b) and 0 <= b < 1 for b in self.betas):
            raise ParameterError("betas", self.betas, "two numbers in [0, 1)")
        if not (_is_real(self.weight_decay) and 0 <= self.weight_decay < math.inf):
            raise ParameterError("weight_decay", self.weight_decay, "a finite number >= 0")
        if self.grad_clip is not None and not (
            _is_real(self.grad_clip) and 0 < self.grad_clip < math.inf
        ):
            raise ParameterError("grad_clip", self.grad_clip, "a finite number > 0, or None")
        if self.ema_decay is not None and not (_is_real(self.ema_decay) and 0 < self.ema_decay < 1):
            raise ParameterError("ema_decay", self.ema_decay, "a number in (0, 1), or None")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda")
            or (self.device.startswith("cuda:") and self.device[5:].isdigit())
        ):
            raise ParameterError("device", self.device, _DEVICE_CHOICES)

    def lr_at(self, step: int) -> float:
        """Learning rate of the update that takes the weights from `step` to `step + 1`.

        Linear warmup over `warmup_steps` updates (the first update already uses
        lr / warmup_steps, so no step is wasted at lr 0), then a half cosine that reaches 0
        at `steps`, i.e. just after the last update.
        """
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        decay_steps = self.steps - self.warmup_steps
        if decay_steps == 0:
            return self.lr
        progress = min(step - self.warmup_steps, decay_steps) / decay_steps
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (betas as a list)."""
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are an error rather than silently dropped."""
        reject_unknown_fields(cls, data, "config")
        if "steps" not in data:
            raise ParameterError("config", data, "a mapping with at least 'steps'")
        return cls(**data)

    def trajectory_mismatches(self, other: TrainConfig) -> list[str]:
        """Human-readable differences in the fields that must match for an exact resume."""
        return [
            f"{name} (checkpoint {getattr(other, name)!r}, now {getattr(self, name)!r})"
            for name in TRAJECTORY_FIELDS
            if getattr(self, name) != getattr(other, name)
        ]


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
