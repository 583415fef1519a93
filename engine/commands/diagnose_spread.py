"""`latentsim diagnose-spread MODEL`: is a diffusion ensemble's spread noise it cannot remove?"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diagnose-spread",
        help="split a diffusion emulator's ensemble spread by what its output layer can reach",
        description=(
            "Sample one emulator step MEMBERS times from frames of a test trajectory and print "
            "(JSON) the per-direction variance of member - mean, of the mean's error and of the "
            "truth, inside and outside the span of the network's output layer. Spread outside "
            "the span that the truth does not have is noise the sampler cannot remove."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="zoo name or emulator model file")
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument(
        "--trajectory",
        type=int,
        default=0,
        help="which of the test trajectories (evenly spaced picks, 8 in all)",
    )
    parser.add_argument(
        "--starts", nargs="+", type=int, default=[0, 20], help="context frames to step from (0 20)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", metavar="DIR", help="dataset root (default ./data)")
    parser.add_argument("--assets", metavar="DIR", help="zoo root (default assets/)")
    parser.add_argument("--output", metavar="FILE", help="also write the JSON here")
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.evaluation.reach import spread_by_reach
    from engine.evaluation.report import write_json
    from engine.paths import data_root
    from engine.pipeline import Pipeline
    from engine.stages.common import dataset_dir
    from engine.stages.testset import load_test_trajectories
    from engine.zoo import load_zoo

    zoo = load_zoo(args.assets)
    if args.model in zoo.entries:
        pipeline = zoo.pipeline(args.model, args.device)
    else:
        pipeline = Pipeline.load(args.model, device=args.device)
    test = load_test_trajectories(dataset_dir(args.data or data_root(), pipeline.spec.name), 8)
    result = {
        "model": args.model,
        **spread_by_reach(
            pipeline,
            test,
            trajectory=args.trajectory,
            starts=args.starts,
            members=args.members,
            seed=args.seed,
        ),
    }
    print(json.dumps(result, indent=1))
    if args.output:
        write_json(result, args.output)
    return 0
