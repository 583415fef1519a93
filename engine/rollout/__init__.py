"""Autoregressive emulator rollouts, ground-truth runs, reconstructions and their scores.

The app, notebooks and the CLI all go through this module, so its conventions are fixed:

- Frames are physical, channels in the system's order, shaped (..., C, X, Y) in the
  Well's [x, y] order; everything handed back is float32 on the CPU.
- One emulator step is Δ stored frames (the emulator's frame stride, usually 1), so
  Δ·frame_dt of simulation time.
- Lead index ℓ = 1, 2, ... counts emulator steps after the last context frame; lead
  time = ℓ·Δ·frame_dt.
- Alignment with the truth: the context is truth frames s, s+Δ, ..., s+(c−1)Δ (s is the
  context start), and lead ℓ is truth frame s + (c − 1 + ℓ)Δ. With Δ = 1, prediction
  j = ℓ − 1 (0-based) is truth frame s + c + j. Predictions carry this index as their
  `frame` coordinate and `score_rollout` aligns on it.
- Deterministic emulators ignore `members` > 1 (their members would be identical): the
  rollout has one member and says so in `coercions` / the `coercions` attribute.
- Computation runs under torch.inference_mode(), entered around each step and never held
  across a step: inference mode is thread-local state, and holding it while the consumer
  runs would leak it into the caller's code. Yielded tensors are ordinary (non-inference)
  CPU tensors.

One module per job: `config` (RolloutConfig, RolloutDivergedError), `stream` (emulator
rollouts and their picklable records), `batch` (several rollouts' next blocks in one
network call), `truth` (solver runs and reconstructions), `scores` (score_rollout) and
`cf` (Datasets with CF metadata). Everything public is re-exported here.
"""

from engine.rollout.batch import advance_together
from engine.rollout.cf import CONVENTIONS
from engine.rollout.config import SEED_LIMIT, STREAM_ENSEMBLE, RolloutConfig, RolloutDivergedError
from engine.rollout.scores import (
    COVERAGE_LEVELS,
    FIELD_MEAN_SCORES,
    SCALE_FREE_SCORES,
    SCORE_VARIABLES,
    SCORED_ATTRS,
    score_rollout,
)
from engine.rollout.stream import (
    RolloutBlock,
    RolloutRecord,
    RolloutStream,
    rollout,
    stream_rollout,
)
from engine.rollout.truth import (
    TruthFrame,
    TruthRecord,
    TruthStream,
    reconstruct,
    stream_truth,
    truth_dataset,
)

__all__ = [
    "CONVENTIONS",
    "COVERAGE_LEVELS",
    "FIELD_MEAN_SCORES",
    "SCALE_FREE_SCORES",
    "SCORED_ATTRS",
    "SCORE_VARIABLES",
    "SEED_LIMIT",
    "STREAM_ENSEMBLE",
    "RolloutBlock",
    "RolloutConfig",
    "RolloutDivergedError",
    "RolloutRecord",
    "RolloutStream",
    "TruthFrame",
    "TruthRecord",
    "TruthStream",
    "advance_together",
    "reconstruct",
    "rollout",
    "score_rollout",
    "stream_rollout",
    "stream_truth",
    "truth_dataset",
]
