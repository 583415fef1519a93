"""`latentsim bench TARGET`: benchmarks that print JSON (never timed tests)."""

from __future__ import annotations

import argparse
import json

from engine.errors import check_integer


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark and print JSON")
    targets = parser.add_subparsers(dest="target", required=True, metavar="TARGET")

    solvers = targets.add_parser("solvers", help="ms per simulated frame; dataset wall time")
    solvers.add_argument("--systems", nargs="+", default=None, help="default: all systems")
    solvers.add_argument("--batch", type=int, default=16)
    solvers.add_argument("--repeats", type=int, default=3)
    solvers.add_argument("--workers", type=int, default=2, help="processes for dataset timing")
    solvers.add_argument("--no-dataset", action="store_true", help="skip dataset generation")
    solvers.add_argument(
        "--data-root",
        metavar="DIR",
        help="generate the timed datasets here and keep them (default: a temporary directory)",
    )
    solvers.add_argument("--device", default="cpu")
    solvers.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for the per-frame timing (1: per-core cost)",
    )
    solvers.add_argument("--output", help="also write the JSON to this file")
    solvers.set_defaults(func=run_solvers)

    autoencoder = targets.add_parser(
        "autoencoder", help="encode/decode ms per frame and training throughput per rate"
    )
    autoencoder.add_argument("--systems", nargs="+", default=None, help="default: all systems")
    autoencoder.add_argument(
        "--preset", default="small", choices=("small", "wide8", "wide8deep", "paper")
    )
    autoencoder.add_argument("--batch", type=int, default=16)
    autoencoder.add_argument("--repeats", type=int, default=5)
    autoencoder.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    autoencoder.add_argument("--output", help="also write the JSON to this file")
    autoencoder.set_defaults(func=run_autoencoder)

    emulator = targets.add_parser(
        "emulator",
        help="seconds per member-frame by sampler, steps and ensemble size; latent vs pixel",
    )
    emulator.add_argument(
        "--systems", nargs="+", default=["kolmogorov"], help="default: kolmogorov"
    )
    emulator.add_argument("--members", nargs="+", type=int, default=[1, 4, 16])
    emulator.add_argument("--steps", nargs="+", type=int, default=[8, 16])
    emulator.add_argument("--samplers", nargs="+", default=["ab", "euler", "heun"])
    emulator.add_argument(
        "--preset",
        default="compact",
        choices=("small", "compact", "paper"),
        help="backbone preset (compact: the shipped zoo's)",
    )
    emulator.add_argument("--repeats", type=int, default=3)
    emulator.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    emulator.add_argument("--output", help="also write the JSON to this file")
    emulator.set_defaults(func=run_emulator)

    scaling = targets.add_parser(
        "scaling",
        help="seconds per frame vs grid size: solver, latent and pixel-space diffusion (+ PNG)",
    )
    scaling.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        default=[64, 128, 256, 512],
        help="N of the N x N grids, multiples of 32 (64 128 256 512)",
    )
    scaling.add_argument("--members", type=int, default=16)
    scaling.add_argument("--sampler", default="ab")
    scaling.add_argument("--steps", type=int, default=16)
    scaling.add_argument("--repeats", type=int, default=2)
    scaling.add_argument(
        "--device", default=None, help="default: the CPU, and CUDA too when present"
    )
    scaling.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: per-core cost, as bench solvers)"
    )
    scaling.add_argument("--output", help="also write the JSON to this file")
    scaling.add_argument("--plot", metavar="PNG", help="draw the plot here (default: none)")
    scaling.add_argument(
        "--from-json",
        metavar="FILE",
        help="measure nothing: redraw --plot from a JSON this command wrote",
    )
    scaling.set_defaults(func=run_scaling)


def _emit(result: dict, output: str | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if output:
        from engine.data.atomic import atomic_path

        with atomic_path(output) as tmp:
            tmp.write_text(text + "\n")


def run_solvers(args: argparse.Namespace) -> int:
    import torch

    from engine.bench.solvers import bench_solvers
    from engine.systems import SYSTEM_NAMES, get_system

    torch.set_num_threads(check_integer("threads", args.threads, 1))
    systems = args.systems or list(SYSTEM_NAMES)
    for name in systems:
        get_system(name)  # fail fast on an unknown name
    result = bench_solvers(
        systems,
        batch=check_integer("batch", args.batch, 1),
        repeats=check_integer("repeats", args.repeats, 1),
        dataset=not args.no_dataset,
        workers=check_integer("workers", args.workers, 1),
        device=args.device,
        keep_root=args.data_root,
    )
    _emit(result, args.output)
    return 0


def run_autoencoder(args: argparse.Namespace) -> int:
    import torch

    from engine.bench.autoencoder import bench_autoencoder
    from engine.systems import SYSTEM_NAMES, get_system

    if args.threads is not None:
        torch.set_num_threads(check_integer("threads", args.threads, 1))
    systems = args.systems or list(SYSTEM_NAMES)
    for name in systems:
        get_system(name)
    result = bench_autoencoder(
        systems,
        preset=args.preset,
        batch=check_integer("batch", args.batch, 1),
        repeats=check_integer("repeats", args.repeats, 1),
    )
    _emit(result, args.output)
    return 0


def run_emulator(args: argparse.Namespace) -> int:
    import torch

    from engine.bench.emulator import bench_emulator
    from engine.systems import get_system

    if args.threads is not None:
        torch.set_num_threads(check_integer("threads", args.threads, 1))
    for name in args.systems:
        get_system(name)
    result = bench_emulator(
        args.systems,
        samplers=args.samplers,
        steps=args.steps,
        members=args.members,
        repeats=check_integer("repeats", args.repeats, 1),
        preset=args.preset,
    )
    _emit(result, args.output)
    return 0


def run_scaling(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import torch

    from engine.bench.scaling import bench_scaling

    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
    else:
        torch.set_num_threads(check_integer("threads", args.threads, 1))
        result = bench_scaling(
            args.sizes,
            members=args.members,
            sampler=args.sampler,
            steps=args.steps,
            repeats=check_integer("repeats", args.repeats, 1),
            device=args.device,
            progress=lambda text: print(f"bench scaling: {text}", file=sys.stderr, flush=True),
        )
        _emit(result, args.output)
    if args.plot:
        from engine.bench.scaling_figure import scaling_figure
        from engine.plots import save_figure

        for device in result["devices"]:
            path = args.plot if device == "cpu" else args.plot.replace(".png", f"-{device}.png")
            save_figure(scaling_figure(result, device), path)
            print(f"wrote {path}", file=sys.stderr)
    return 0
