"""The `latentsim` command line: a thin shell over the engine's public functions.

Each subcommand lives in `engine.commands.<name>` with `register(subparsers)`; heavy
imports happen inside the command so `latentsim --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# OpenMP threads otherwise busy-wait at barriers; on a shared CPU that slows torch 10-100x.
# Must be set before torch initialises OpenMP, hence before any engine import below.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from engine import __version__
from engine.errors import LatentsimError

COMMAND_MODULES = (
    "engine.commands.generate",
    "engine.commands.bench",
    "engine.commands.figure",
    "engine.commands.train_ae",
    "engine.commands.train_emulator",
    "engine.commands.evaluate_ae",
    "engine.commands.evaluate",
    "engine.commands.diagnose_spread",
    "engine.commands.diagnose_predictability",
    "engine.commands.encode",
    "engine.commands.zoo",
    "engine.commands.movie",
    "engine.commands.view",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentsim",
        description="Latent diffusion emulators of physics: data, models, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"latentsim {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LatentsimError as err:
        print(f"latentsim: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latentsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
