"""`latentsim movie SOURCE --out FILE`: an MP4 or GIF of a rollout, for slides.

SOURCE is a zoo emulator (then the solver runs the truth for --seed and the conditions,
and the emulator rolls out from its first frame(s), as the explorer does), or a rollout
NetCDF file written by the explorer's Share tab or by `rollout(...).to_netcdf()` (with
--truth for the truth and error panels).
"""

from __future__ import annotations

import argparse

from engine.movie.encode import FORMATS
from engine.movie.panels import PANELS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "movie",
        help="MP4/GIF of a rollout's panels over lead time (truth, mean, members, std, error)",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="zoo emulator name (e.g. rayleigh_benard-diffusion-ae64) or a rollout NetCDF file",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="movie file (.mp4 or .gif)")
    parser.add_argument("--format", choices=FORMATS, help="default: from the --out suffix")
    parser.add_argument(
        "--panels",
        nargs="+",
        metavar="PANEL",
        help=f"some of {' '.join(PANELS)} (default: all the inputs allow)",
    )
    parser.add_argument("--field", help="channel to show (default: the system's showcase field)")
    parser.add_argument("--fps", type=float, default=5.0, help="leads per second (5)")
    parser.add_argument("--width", type=int, default=1280, help="frame width in pixels (1280)")
    parser.add_argument(
        "--truth",
        metavar="FILE",
        help="truth NetCDF file of a rollout file (the Share tab's truth file)",
    )
    model = parser.add_argument_group("rollout of a zoo model (SOURCE is a zoo name)")
    model.add_argument(
        "--seed",
        type=int,
        default=0,
        help="initial condition and ensemble noise, as in the explorer (0)",
    )
    model.add_argument("--members", type=int, default=8)
    model.add_argument("--horizon", type=int, default=40)
    model.add_argument("--context", type=int, default=1)
    model.add_argument("--sampler", default="ab")
    model.add_argument("--steps", type=int, default=16)
    model.add_argument(
        "--condition",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a system parameter or choice, e.g. Rayleigh=1e7 (repeatable)",
    )
    model.add_argument("--assets", metavar="DIR", help="zoo root (default assets/)")
    model.add_argument("--device", default="auto")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.movie import MovieConfig, check_encoder, movie_format, write_movie

    config = MovieConfig(
        panels=tuple(args.panels) if args.panels else None,
        field=args.field,
        fps=args.fps,
        width=args.width,
    )
    check_encoder(movie_format(args.out, args.format))  # before minutes of rollout
    if Path(args.source).suffix == ".nc" or Path(args.source).is_file():
        rollout, truth = args.source, args.truth
    else:
        rollout, truth = zoo_rollout(args)
    info = write_movie(
        rollout, args.out, truth=truth, config=config, fmt=args.format, progress=True
    )
    width, height = info.size
    print(
        f"wrote {info.path}: {info.frames} frames of {width}x{height} ({info.format}), "
        f"{info.field}, panels {' '.join(info.panels)}"
    )
    return 0


def zoo_rollout(args: argparse.Namespace):
    """(rollout, truth) Datasets of a zoo emulator from the solver's trajectory `args.seed`."""
    import numpy as np
    from tqdm.auto import tqdm

    from engine.errors import ParameterError, UnknownNameError
    from engine.rollout import RolloutConfig, stream_rollout, truth_dataset
    from engine.zoo import load_zoo

    zoo = load_zoo(args.assets)
    emulators = [e.name for e in zoo.available(kind="emulator")]
    if args.source not in emulators:
        raise UnknownNameError("zoo emulator or rollout file", args.source, emulators)
    if args.truth:
        raise ParameterError("--truth", args.truth, "none with a zoo model (its truth is computed)")
    conditions = {}
    for item in args.condition:
        name, sep, value = item.partition("=")
        if not sep:
            raise ParameterError("--condition", item, "NAME=VALUE, e.g. Rayleigh=1e7")
        try:
            conditions[name] = float(value)
        except ValueError:
            conditions[name] = value
    pipeline = zoo.pipeline(args.source, args.device)
    config = RolloutConfig(
        members=args.members,
        context=args.context,
        horizon=args.horizon,
        sampler=args.sampler,
        steps=args.steps,
        seed=args.seed,
    )
    stride = pipeline.frame_stride
    frames = (args.context - 1 + args.horizon) * stride + 1
    spec = pipeline.spec
    truth = truth_dataset(spec.name, conditions, args.seed, frames, grid=spec.grid.shape)
    context = truth.isel(time=list(np.arange(args.context) * stride))
    stream = stream_rollout(pipeline, context, conditions, config)
    with tqdm(total=args.horizon, desc=f"rollout {args.source}", unit="frame") as bar:
        for block in stream:
            bar.update(len(block.lead))
    return stream.dataset(), truth
