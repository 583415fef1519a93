"""`latentsim generate SYSTEM ...`: write a Well-format dataset for a system."""

from __future__ import annotations

import argparse
import os
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="simulate a system and write a Well-format dataset",
        description=(
            "Simulate trajectories of SYSTEM and write <out>/<SYSTEM>/ in The Well's layout: "
            "data/{train,valid,test}/*.hdf5, stats.yaml and <SYSTEM>.yaml. Re-running resumes: "
            "chunk files that validate are kept."
        ),
    )
    parser.add_argument("system", metavar="SYSTEM", help="system name, e.g. kolmogorov")
    for split in ("train", "valid", "test"):
        parser.add_argument(
            f"--{split}",
            type=int,
            metavar="N",
            help=f"{split} trajectories (0 if another split is given; without any, the "
            "system's default dataset)",
        )
    parser.add_argument(
        "--out", metavar="DIR", help="root directory (default ./data, or $LATENTSIM_DATA)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="W",
        help="processes, one torch thread each (default: one per core)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="base seed (0)")
    parser.add_argument(
        "--grid", type=int, nargs=2, metavar=("X", "Y"), help="grid size (system default)"
    )
    parser.add_argument("--frames", type=int, metavar="T", help="frames per trajectory")
    parser.add_argument(
        "--batch-size", type=int, default=16, metavar="B", help="trajectories per chunk file (16)"
    )
    parser.add_argument("--device", default="cpu", metavar="D", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def split_counts(args: argparse.Namespace) -> tuple[int, int, int]:
    """Counts as given (missing ones 0), or the system's default dataset if none is given."""
    from engine.data.generate import DEFAULT_SPLITS

    if args.train is None and args.valid is None and args.test is None:
        return DEFAULT_SPLITS.get(args.system, (0, 0, 0))  # unknown systems fail by name later
    return (args.train or 0, args.valid or 0, args.test or 0)


def run(args: argparse.Namespace) -> int:
    from engine.data.generate import generate_dataset
    from engine.paths import data_root

    counts = split_counts(args)
    started = time.perf_counter()
    path = generate_dataset(
        args.system,
        data_root() if args.out is None else args.out,
        *counts,
        seed=args.seed,
        workers=args.workers,
        batch_size=args.batch_size,
        grid=args.grid,
        n_frames=args.frames,
        device=args.device,
        progress=not args.quiet,
    )
    total = sum(counts)
    elapsed = time.perf_counter() - started
    print(f"wrote {total} trajectories to {path} in {elapsed:.1f} s")
    return 0
