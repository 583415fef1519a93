"""What a `train-ae` / `train-emulator` run directory was started with, so `--resume`
continues only the same run.

On resume the trainer checks what its optimiser state depends on (steps, batch, learning
rate, optimiser, seed: engine/training/config.py). The rest of a command can change the
model's meaning without changing any tensor's shape: the loss floor, the denoiser's
prediction, the frame stride, the dataset, the autoencoder whose latents an emulator
learns. Resumed with another of those, a run would go on silently and its card would claim
the new settings. The command therefore records its arguments and what its data are in
the run directory and refuses a resume that differs. (`latentsim zoo train` keeps its own
record per zoo model: engine/zoo/build.py.)
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from engine.data.atomic import atomic_open
from engine.errors import DataFormatError
from engine.hashing import file_sha256
from engine.model_format import model_paths
from engine.training.checkpoint import list_checkpoints

RUN_RECORD = "run-arguments.json"
# Arguments that say where a run's files go or how it reports, not what it trains. The
# dataset's location is one of them: its identity is the hash of its metadata.
PLACEMENT = frozenset({"resume", "run_dir", "output", "quiet", "device", "data", "func", "command"})


def run_record(
    args: argparse.Namespace, dataset_metadata: Path, autoencoder: Path | None = None
) -> dict[str, Any]:
    """The command's training arguments, the dataset's metadata hash and, for a latent
    emulator, the autoencoder's weights hash (None for what does not exist yet: the
    stage then fails with its own message)."""
    weights = model_paths(autoencoder)[0] if autoencoder is not None else None
    return {
        "arguments": {k: v for k, v in sorted(vars(args).items()) if k not in PLACEMENT},
        "dataset_sha256": _sha256_if_file(dataset_metadata),
        "autoencoder_sha256": _sha256_if_file(weights) if weights is not None else None,
    }


def claim_run_dir(run_dir: Path, record: dict[str, Any], *, resume: bool) -> None:
    """Refuse `--resume` of a run recorded with another `record`; record a new run.

    A run directory with checkpoints keeps its record: without --resume the trainer
    refuses it anyway, and overwriting the record would let a later resume with the
    refused arguments through. A run from before records existed is adopted on resume."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_RECORD
    started = bool(list_checkpoints(run_dir / "checkpoints"))
    if started and path.exists():
        if resume:
            differences = _differences(_read(path), record)
            if differences:
                raise DataFormatError(
                    run_dir,
                    "was started with other settings, so --resume would not continue it: "
                    + "; ".join(differences)
                    + ". Resume with the settings it was started with, or start afresh "
                    "in another --run-dir",
                )
        return
    if started and not resume:
        return
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one writer
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "w") as handle:
            json.dump(record, handle, indent=1)


def _read(path: Path) -> dict[str, Any]:
    try:
        recorded = json.loads(path.read_text())
        problem = "" if isinstance(recorded, dict) else "not a JSON object"
    except (OSError, ValueError) as err:
        problem = str(err)
    if problem:
        raise DataFormatError(path, f"unreadable run record ({problem}); delete it to resume")
    return recorded


def _differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    then_args, now_args = recorded.get("arguments") or {}, now["arguments"]
    differences = [
        f"--{name.replace('_', '-')} {then_args.get(name)!r} then, {now_args.get(name)!r} now"
        for name in sorted(set(then_args) | set(now_args))
        if then_args.get(name) != now_args.get(name)
    ]
    if recorded.get("dataset_sha256") != now["dataset_sha256"]:
        differences.append("another dataset (its metadata file differs)")
    if recorded.get("autoencoder_sha256") != now["autoencoder_sha256"]:
        differences.append("another autoencoder (its weights differ)")
    return differences


def _sha256_if_file(path: Path) -> str | None:
    return file_sha256(path) if path.is_file() else None
