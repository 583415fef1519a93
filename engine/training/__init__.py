"""Shared training engine: config, loop, checkpoints, torchrun/DDP, logging.

`run_training` is the entry point for commands (`latentsim train-ae`, `train-emulator`):
they build the model, the loss and the data, and hand them over. The same command line
runs alone or data-parallel:

    latentsim train-ae ...                                       # one process
    torchrun --standalone --nproc_per_node 8 -m engine.cli train-ae ...   # DDP, 8 ranks

`batch_size` is global in both cases, so the two follow the same data order.
"""

from engine.training.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_model_weights,
    open_checkpoint,
)
from engine.training.config import TrainConfig
from engine.training.distributed import DistContext, init_distributed
from engine.training.log import read_log
from engine.training.trainer import (
    EpochSampler,
    StepOutcome,
    TensorDictSource,
    TensorSource,
    Trainer,
    TrainResult,
    derive_seed,
    run_training,
)

__all__ = [
    "Checkpoint",
    "DistContext",
    "EpochSampler",
    "StepOutcome",
    "TensorDictSource",
    "TensorSource",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "derive_seed",
    "init_distributed",
    "latest_checkpoint",
    "list_checkpoints",
    "load_model_weights",
    "open_checkpoint",
    "read_log",
    "run_training",
]
