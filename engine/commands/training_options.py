"""Command-line options shared by every training command (train-ae, train-emulator)."""

from __future__ import annotations

import argparse

from engine.training.config import OPTIMIZERS


def add_training_options(
    parser: argparse.ArgumentParser, *, run_dir_default: str, presets: tuple[str, ...]
) -> None:
    """Preset (one of the command's `presets`), optimisation overrides, locations,
    resumption and device."""
    parser.add_argument(
        "--config",
        default="small",
        choices=presets,
        help=f"model and optimisation preset: {', '.join(presets)} (small)",
    )
    parser.add_argument("--steps", type=int, help="override the preset's number of steps")
    parser.add_argument("--batch-size", type=int, help="override the preset's global batch")
    parser.add_argument("--lr", type=float, help="override the preset's peak learning rate")
    parser.add_argument(
        "--optimizer",
        default="adamw",
        choices=OPTIMIZERS,
        help="adamw (the paper's emulator optimiser) or psgd_kron (its autoencoder one)",
    )
    parser.add_argument(
        "--ema-decay",
        type=float,
        help="keep and deliver an exponential moving average of the weights",
    )
    parser.add_argument(
        "--bf16", action="store_true", help="forward pass under bfloat16 autocast (float32 weights)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", metavar="DIR", help="dataset root (default ./data)")
    parser.add_argument(
        "--run-dir", metavar="DIR", help=f"checkpoints and log (default {run_dir_default})"
    )
    parser.add_argument(
        "--output", metavar="PATH", help="model file stem to write (default RUN_DIR/model)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
