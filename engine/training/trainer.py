"""A generic, resumable, DDP-ready training loop for any model with a scalar loss.

Callers supply a model, `loss_fn(model, batch) -> scalar`, an in-memory data source and
a `TrainConfig`; the trainer owns everything that must be identical between a run and
its resumption: the optimiser (AdamW or PSGD-Kron, warmup + cosine, clipping, non-finite
skipping), the data order, every random stream, logging and checkpoints.

Determinism: the data order is a pure function of (seed, epoch); the dropout stream
(torch's global RNG) and the augmentation generator are seeded from (seed, rank) and
checkpointed, so killing a run and resuming it gives bitwise the same weights on CPU.

Why one long module: everything in it is state a resumption must restore exactly (order,
generators, optimiser, schedule, skipped steps); kept together, what is saved and what
is restored can be compared line by line.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from engine.device import resolve_device
from engine.errors import DataFormatError, LatentsimError, ParameterError
from engine.training.checkpoint import (
    CHECKPOINT_DIR,
    latest_checkpoint,
    list_checkpoints,
    open_checkpoint,
    save_checkpoint,
)
from engine.training.config import TrainConfig
from engine.training.distributed import DistContext, init_distributed
from engine.training.log import LOG_NAME, JsonlLog, Progress
from engine.training.optimizers import build_optimizer
from engine.training.precision import EMULATED_BF16, cpu_has_native_bf16

LossFn = Callable[[nn.Module, dict[str, Tensor]], Tensor]
ValidateFn = Callable[[nn.Module, Any], Mapping[str, float]]

# Independent random streams derived from the run seed.
_STREAM_DATA_ORDER = 0
_STREAM_TORCH = 1
_STREAM_AUGMENT = 2
_STREAM_VALIDATION = 3


class TensorSource(Protocol):
    """In-memory training data: `batch` gathers samples and may augment them, drawing
    all its randomness from `generator` (the trainer checkpoints that generator)."""

    def __len__(self) -> int: ...

    def batch(self, indices: Tensor, generator: torch.Generator) -> dict[str, Tensor]: ...


class TensorDictSource:
    """Named tensors that share their first (sample) dimension, plus optional augmentation.

    `augment(batch, generator) -> batch` runs on the gathered CPU batch.
    """

    def __init__(
        self,
        tensors: Mapping[str, Tensor],
        augment: Callable[[dict[str, Tensor], torch.Generator], dict[str, Tensor]] | None = None,
    ):
        if not tensors:
            raise ParameterError("tensors", {}, "at least one named tensor")
        lengths = {name: len(t) for name, t in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ParameterError("tensors", lengths, "tensors with the same number of samples")
        self.tensors = dict(tensors)
        self.augment = augment
        self._length = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._length

    def batch(self, indices: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        gathered = {name: t[indices] for name, t in self.tensors.items()}
        return gathered if self.augment is None else self.augment(gathered, generator)


def derive_seed(seed: int, *keys: int) -> int:
    """A 64-bit seed for the stream (seed, *keys), statistically independent of the others."""
    words = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2, np.uint32)
    return int(words[0]) << 32 | int(words[1])


class EpochSampler:
    """Deterministic, resumable order: epoch e visits a permutation drawn from (seed, e).

    Global batches are consecutive slices of the permutation (an incomplete tail is
    dropped, so every step sees `batch_size` samples); rank r of W takes the r-th of W
    equal parts of each global batch. The position (epoch, offset) is all the state there
    is, and it does not depend on the world size.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        position: tuple[int, int] = (0, 0),
    ):
        if batch_size % world_size:
            raise ParameterError(
                "batch_size", batch_size, f"a multiple of the world size {world_size}"
            )
        if batch_size > num_samples:
            raise ParameterError(
                "batch_size", batch_size, f"at most the training-set size {num_samples}"
            )
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.local_size = batch_size // world_size
        self._local = slice(rank * self.local_size, (rank + 1) * self.local_size)
        self.epoch, self.offset = position
        self._permutation = self._draw(self.epoch)

    @property
    def position(self) -> tuple[int, int]:
        return self.epoch, self.offset

    def next_indices(self) -> Tensor:
        """This rank's indices for the next global batch, advancing the position."""
        if self.offset + self.batch_size > self.num_samples:
            self.epoch, self.offset = self.epoch + 1, 0
            self._permutation = self._draw(self.epoch)
        global_batch = self._permutation[self.offset : self.offset + self.batch_size]
        self.offset += self.batch_size
        return global_batch[self._local]

    def _draw(self, epoch: int) -> Tensor:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, _STREAM_DATA_ORDER, epoch))
        return torch.randperm(self.num_samples, generator=generator)


class WithAverage(nn.Module):
    """The trained model next to its weight average, so one state dict (and therefore
    one checkpoint file) holds both and resumption restores the average exactly."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        self.model = model
        self.average = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True
        )


@dataclass(frozen=True)
class StepOutcome:
    """One loop iteration. `loss` is the mean over all ranks (None when non-finite)."""

    step: int
    loss: float | None
    grad_norm: float | None
    lr: float
    skipped: bool


@dataclass(frozen=True)
class TrainResult:
    model: nn.Module
    step: int
    skipped_steps: int
    last_loss: float | None
    validation: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None


class Trainer:
    """Owns the optimisation of one model in one run directory.

    `loss_fn` receives the (possibly DDP-wrapped) model and must call it (its forward),
    so DDP can average the gradients. `validate_fn` receives the bare model in eval mode
    under `torch.no_grad()`, with its own fixed random stream, so validation never shifts
    the training randomness. `dist` defaults to a single process on `config.device`;
    `run_training` passes the torchrun context instead.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train_source: TensorSource,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        val_source: Any = None,
        validate_fn: ValidateFn | None = None,
        resume: bool = False,
        dist: DistContext | None = None,
        progress: bool = True,
    ):
        if (val_source is None) != (validate_fn is None):
            raise ParameterError(
                "validate_fn", validate_fn, "given together with val_source, or both None"
            )
        self.config = config
        self.dist = dist or DistContext(device=resolve_device(config.device))
        self.loss_fn, self.train_source = loss_fn, train_source
        self.val_source, self.validate_fn = val_source, validate_fn
        self.run_dir = Path(run_dir)
        self.checkpoint_root = self.run_dir / CHECKPOINT_DIR
        self.show_progress = progress and self.dist.is_main
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = JsonlLog(self.run_dir / LOG_NAME, enabled=self.dist.is_main)

        self.model = model.to(self.dist.device)
        # What checkpoints hold: the model, or the model and its weight average.
        self.stored: nn.Module = (
            self.model if config.ema_decay is None else WithAverage(self.model, config.ema_decay)
        )
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise ParameterError("model", type(model).__name__, "a model with trainable parameters")
        self._params = trainable
        self.optimizer = build_optimizer(trainable, config)
        self.sampler = EpochSampler(
            len(train_source), config.batch_size, config.seed, self.dist.rank, self.dist.world_size
        )
        self.augment_generator = torch.Generator()
        self.step = 0
        self.skipped_steps = 0
        self.last_loss: float | None = None
        self.last_validation: dict[str, float] = {}
        self._wall_base = 0.0
        self._wall_start = time.perf_counter()
        self._last_checkpoint: Path | None = None
        if resume:
            self._resume()
        else:
            self._start()
        self._reset_window()
        self.ddp_model = self.dist.wrap(self.model)
        if config.bf16 and self.dist.device.type == "cpu" and not cpu_has_native_bf16():
            self._warn(EMULATED_BF16)

    # ------------------------------------------------------------------ the loop

    def fit(self, until: int | None = None) -> TrainResult:
        """Train up to step `until` (default: `config.steps`) and return where it stands."""
        target = self.config.steps if until is None else min(until, self.config.steps)
        bar = Progress(self.config.steps, self.step, self.show_progress)
        try:
            while self.step < target:
                outcome = self.train_step()
                bar.update(outcome.loss, outcome.lr)
        finally:
            bar.close()
        self.dist.barrier()
        return TrainResult(
            self.result_model,
            self.step,
            self.skipped_steps,
            self.last_loss,
            dict(self.last_validation),
            self._last_checkpoint,
        )

    @property
    def result_model(self) -> nn.Module:
        """The weights a run delivers: the average when there is one."""
        return self.stored.average.module if isinstance(self.stored, WithAverage) else self.model

    def train_step(self) -> StepOutcome:
        """One iteration: a batch, a gradient, one update or a collective skip, then any
        logging, validation and checkpointing due at the new step."""
        if self.step >= self.config.steps:
            raise LatentsimError(
                f"training already reached steps={self.config.steps}; nothing left to do"
            )
        lr = self.config.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()  # also undoes a caller's eval() between steps
        indices = self.sampler.next_indices()
        batch = {
            name: t.to(self.dist.device, non_blocking=True)
            for name, t in self.train_source.batch(indices, self.augment_generator).items()
        }
        with torch.autocast(self.dist.device.type, torch.bfloat16, enabled=self.config.bf16):
            loss = self.loss_fn(self.ddp_model, batch).float()
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ParameterError("loss_fn output", shape, "a scalar tensor")
        loss.backward()
        max_norm = self.config.grad_clip if self.config.grad_clip is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self._params, max_norm)
        # One collective: the summed loss and the number of ranks that saw a non-finite
        # loss or gradient. Every rank then takes the same decision.
        local_loss = loss.detach().reshape(()).to(torch.float64)
        nonfinite = ~(torch.isfinite(local_loss) & torch.isfinite(grad_norm))
        stats = torch.stack([local_loss, nonfinite.to(torch.float64)])
        loss_sum, bad_ranks = self.dist.all_reduce_sum(stats).tolist()
        skipped = bad_ranks > 0
        if not skipped:
            self.optimizer.step()
            if isinstance(self.stored, WithAverage):
                self.stored.average.update_parameters(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        mean_loss = None if skipped else loss_sum / self.dist.world_size
        norm = float(grad_norm)
        outcome = StepOutcome(self.step, mean_loss, norm if not skipped else None, lr, skipped)
        self._record(outcome, raw_loss=loss_sum / self.dist.world_size, raw_norm=norm)
        return outcome

    def validate(self) -> dict[str, float]:
        """Run `validate_fn` on every rank (ranks would otherwise idle at a barrier) and
        log rank 0's metrics."""
        if self.validate_fn is None:
            return {}
        devices = [self.dist.device] if self.dist.device.type == "cuda" else []
        model = self.result_model
        model.eval()
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(derive_seed(self.config.seed, _STREAM_VALIDATION))
                metrics = {k: float(v) for k, v in self.validate_fn(model, self.val_source).items()}
        finally:
            self.model.train()
        self.last_validation = metrics
        self.log.write("validation", step=self.step, wall_time=self._wall_time(), metrics=metrics)
        return metrics

    def save_checkpoint(self) -> Path | None:
        """Collective: gathers every rank's RNG states; rank 0 writes. Returns the path on
        rank 0, None elsewhere."""
        rng = self._gather_rng_states()
        if not self.dist.is_main:
            return None
        epoch, offset = self.sampler.position
        meta = {
            "config": self.config.to_dict(),
            "data_position": {"epoch": epoch, "offset": offset},
            "skipped_steps": self.skipped_steps,
            "wall_time": self._wall_time(),
            "world_size": self.dist.world_size,
            "device_type": self.dist.device.type,
            "next_lr": self.config.lr_at(self.step),
            "torch_version": torch.__version__,
        }
        self._last_checkpoint = save_checkpoint(
            self.checkpoint_root,
            self.step,
            model=self.stored,
            optimizer=self.optimizer,
            rng=rng,
            meta=meta,
            keep=self.config.keep_checkpoints,
        )
        return self._last_checkpoint

    # ------------------------------------------------------------------ bookkeeping

    def _record(self, outcome: StepOutcome, raw_loss: float, raw_norm: float) -> None:
        cfg, step = self.config, outcome.step
        window = self._window
        if outcome.skipped:
            self.skipped_steps += 1
            self.log.write(
                "skipped",
                step=step,
                loss=raw_loss,
                grad_norm=raw_norm,
                skipped_steps=self.skipped_steps,
            )
        else:
            self.last_loss = outcome.loss
            window["loss"] += outcome.loss
            window["grad_norm"] += raw_norm
            window["updates"] += 1
        window["steps"] += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            updates, elapsed = window["updates"], time.perf_counter() - window["start"]
            self.log.write(
                "train",
                step=step,
                loss=window["loss"] / updates if updates else None,
                grad_norm=window["grad_norm"] / updates if updates else None,
                lr=outcome.lr,
                skipped_steps=self.skipped_steps,
                steps_per_s=window["steps"] / elapsed if elapsed > 0 else None,
                wall_time=self._wall_time(),
            )
            self._reset_window()
        finished = step == cfg.steps
        if self.validate_fn is not None and (
            finished or (cfg.validate_every and step % cfg.validate_every == 0)
        ):
            self.validate()
        if finished or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
            self.save_checkpoint()
        if finished:
            self.log.write(
                "end", step=step, skipped_steps=self.skipped_steps, wall_time=self._wall_time()
            )

    def _reset_window(self) -> None:
        self._window = {
            "loss": 0.0,
            "grad_norm": 0.0,
            "updates": 0,
            "steps": 0,
            "start": time.perf_counter(),
        }

    def _wall_time(self) -> float:
        """Seconds of training across all sessions of this run."""
        return self._wall_base + time.perf_counter() - self._wall_start

    # ------------------------------------------------------------------ random streams

    def _rng_keys(self) -> list[str]:
        keys = ["torch_cpu", "augment"]
        if self.dist.device.type == "cuda":
            keys.append("cuda")
        return keys

    def _local_rng_states(self) -> dict[str, Tensor]:
        states = {"torch_cpu": torch.get_rng_state(), "augment": self.augment_generator.get_state()}
        if self.dist.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.dist.device)
        return states

    def _gather_rng_states(self) -> dict[str, Tensor]:
        gathered: dict[str, Tensor] = {}
        for key, state in self._local_rng_states().items():
            for rank, copy in enumerate(self.dist.all_gather(state)):
                gathered[f"{key}.rank{rank}"] = copy
        return gathered

    def _seed_streams(self, *extra: int) -> None:
        """Fresh per-rank streams: ranks must not share dropout masks or augmentations."""
        seed, rank = self.config.seed, self.dist.rank
        torch.manual_seed(derive_seed(seed, _STREAM_TORCH, rank, *extra))
        self.augment_generator.manual_seed(derive_seed(seed, _STREAM_AUGMENT, rank, *extra))

    def _restore_streams(self, states: dict[str, Tensor]) -> bool:
        rank = self.dist.rank
        wanted = {key: f"{key}.rank{rank}" for key in self._rng_keys()}
        if not all(name in states for name in wanted.values()):
            return False
        torch.set_rng_state(states[wanted["torch_cpu"]])
        self.augment_generator.set_state(states[wanted["augment"]])
        if "cuda" in wanted:
            torch.cuda.set_rng_state(states[wanted["cuda"]], self.dist.device)
        return True

    # ------------------------------------------------------------------ start / resume

    def _start(self) -> None:
        existing = list_checkpoints(self.checkpoint_root)
        if existing:
            raise LatentsimError(
                f"run directory {self.run_dir} already holds checkpoints (latest "
                f"{existing[-1].name}); pass resume=True to continue it, or choose a new "
                "run directory"
            )
        self._seed_streams()
        self.log.reset()
        self.log.write(
            "start",
            step=0,
            config=self.config.to_dict(),
            world_size=self.dist.world_size,
            device=str(self.dist.device),
            parameters=sum(p.numel() for p in self._params),
            train_samples=len(self.train_source),
        )

    def _resume(self) -> None:
        problems: list[str] = []
        failure: DataFormatError | None = None
        chosen = -1
        if self.dist.is_main:
            try:
                checkpoint, problems = latest_checkpoint(self.checkpoint_root)
                chosen = checkpoint.step
            except DataFormatError as err:
                failure = err
        # Rank 0 decides; the others follow, so all ranks load the same step.
        chosen = self.dist.broadcast_int(chosen)
        if chosen < 0:
            if failure is not None:
                raise failure
            raise DataFormatError(self.checkpoint_root, "no complete checkpoint (see rank 0)")
        checkpoint = open_checkpoint(self.checkpoint_root / f"step_{chosen:09d}")
        saved = TrainConfig.from_dict(checkpoint.meta["config"])
        mismatches = self.config.trajectory_mismatches(saved)
        if mismatches:
            raise LatentsimError(
                f"cannot resume from {checkpoint.path}: the config differs in "
                f"{', '.join(mismatches)}; resume with the original values or start a new "
                "run directory"
            )
        checkpoint.load_model(self.stored)
        checkpoint.load_optimizer(self.optimizer)
        meta = checkpoint.meta
        self.step = checkpoint.step
        self._last_checkpoint = checkpoint.path
        self.skipped_steps = int(meta["skipped_steps"])
        self._wall_base = float(meta["wall_time"])
        position = meta["data_position"]
        self.sampler = EpochSampler(
            len(self.train_source),
            self.config.batch_size,
            self.config.seed,
            self.dist.rank,
            self.dist.world_size,
            position=(int(position["epoch"]), int(position["offset"])),
        )
        self.log.truncate_after(self.step)
        for problem in problems:
            self._warn(f"skipped a damaged checkpoint: {problem}")
        restored = meta["world_size"] == self.dist.world_size and self._restore_streams(
            checkpoint.rng_states()
        )
        if not restored:
            self._seed_streams(self.step)
            self._warn(
                f"random streams re-seeded at step {self.step}: the checkpoint holds them for "
                f"{meta['world_size']} rank(s) on {meta['device_type']}, this run has "
                f"{self.dist.world_size} on {self.dist.device.type}; the resumed run is "
                "reproducible but not bitwise identical to an uninterrupted one"
            )
        self.log.write("resume", step=self.step, checkpoint=str(checkpoint.path))

    def _warn(self, message: str) -> None:
        if self.dist.is_main:
            warnings.warn(message, stacklevel=3)
            self.log.write("warning", step=self.step, message=message)


def run_training(
    model_factory: Callable[[], nn.Module],
    loss_fn: LossFn,
    train_source: TensorSource,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    val_source: Any = None,
    validate_fn: ValidateFn | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Set up (torchrun) distribution, build the model from `config.seed`, train, tear down.

    The model is built after `torch.manual_seed(config.seed)`, so the same seed gives the
    same initial weights on every rank and every run. The same call works alone and
    under `torchrun --nproc_per_node N`.
    """
    context = init_distributed(config.device)
    try:
        torch.manual_seed(config.seed)
        trainer = Trainer(
            model_factory(),
            loss_fn,
            train_source,
            config,
            run_dir,
            val_source=val_source,
            validate_fn=validate_fn,
            resume=resume,
            dist=context,
            progress=progress,
        )
        return trainer.fit()
    finally:
        context.destroy()
