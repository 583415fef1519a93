"""A tiny regression task for the training tests, and its command-line entry point.

The same `main` runs in-process, as a plain subprocess (to be SIGKILLed and resumed) and
under `torchrun`, so every mode trains exactly the same thing.

Target: y = sin(x W / 2) for a fixed W. It is odd in x, so the augmentation (x, y) -> (-x, -y)
keeps labels exact while consuming the augmentation generator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from engine.training import TensorDictSource, TrainConfig, run_training

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = 64
IN_FEATURES, OUT_FEATURES = 4, 2


class TinyNet(nn.Module):
    def __init__(self, width: int = 16, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(IN_FEATURES, width),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(width, OUT_FEATURES),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_data(dtype: torch.dtype = torch.float32, poison: Sequence[int] = ()) -> dict[str, Tensor]:
    """Samples listed in `poison` carry an infinite, gradient-free loss penalty: the loss
    is non-finite on whichever rank draws them while the gradients stay finite."""
    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(SAMPLES, IN_FEATURES, generator=generator, dtype=torch.float64)
    weights = torch.randn(IN_FEATURES, OUT_FEATURES, generator=generator, dtype=torch.float64)
    penalty = torch.zeros(SAMPLES, dtype=torch.float64)
    penalty[list(poison)] = float("inf")
    y = torch.sin(0.5 * x @ weights)
    return {"x": x.to(dtype), "y": y.to(dtype), "penalty": penalty.to(dtype)}


def flip_signs(batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
    sign = torch.randint(0, 2, (len(batch["x"]), 1), generator=generator) * 2 - 1
    return {**batch, "x": batch["x"] * sign, "y": batch["y"] * sign}


def make_source(
    dtype: torch.dtype = torch.float32, poison: Sequence[int] = (), augment: bool = True
) -> TensorDictSource:
    return TensorDictSource(make_data(dtype, poison), flip_signs if augment else None)


def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    return F.mse_loss(model(batch["x"]), batch["y"]) + batch["penalty"].sum()


def validate_fn(model: nn.Module, source: TensorDictSource) -> dict[str, float]:
    data = source.tensors
    return {"mse": float(F.mse_loss(model(data["x"]), data["y"]))}


def make_config(**overrides: object) -> TrainConfig:
    settings: dict[str, object] = {
        "steps": 20,
        "batch_size": 8,
        "lr": 1e-2,
        "warmup_steps": 3,
        "checkpoint_every": 5,
        "log_every": 5,
        "seed": 7,
        "device": "cpu",
    }
    settings.update(overrides)
    return TrainConfig(**settings)  # type: ignore[arg-type]


def command(*args: str, torchrun_ranks: int = 0) -> list[str]:
    """Command line running `main` in a child process, optionally under torchrun."""
    launcher = [sys.executable]
    if torchrun_ranks:
        launcher += ["-m", "torch.distributed.run", "--standalone"]
        launcher += ["--nproc_per_node", str(torchrun_ranks)]
    return [*launcher, __file__, *args]


def child_env() -> dict[str, str]:
    """Environment for child processes: the repo importable, one thread each, no
    inherited torchrun variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--float64", action="store_true")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--poison", type=int, nargs="*", default=())
    parser.add_argument("--step-delay", type=float, default=0.0, help="seconds slept per step")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--export", type=Path, help="write this rank's final weights here")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # bitwise comparisons need the same reduction order everywhere
    dtype = torch.float64 if args.float64 else torch.float32

    def model_factory() -> nn.Module:
        return TinyNet(dropout=args.dropout).to(dtype)

    def slow_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        time.sleep(args.step_delay)
        return loss_fn(model, batch)

    result = run_training(
        model_factory,
        slow_loss,
        make_source(dtype, args.poison, augment=not args.no_augment),
        make_config(steps=args.steps, checkpoint_every=args.checkpoint_every),
        args.run_dir,
        resume=args.resume,
        progress=False,
    )
    if args.export is not None:
        rank = int(os.environ.get("RANK", "0"))
        args.export.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in result.model.state_dict().items()}
        save_file(state, args.export / f"rank{rank}.safetensors")
        summary = {"step": result.step, "skipped_steps": result.skipped_steps}
        (args.export / f"rank{rank}.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
