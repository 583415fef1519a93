"""`latentsim diagnose-predictability SYSTEM`: what the real solver scores from nearly right
initial frames (engine/evaluation/predictability.py)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diagnose-predictability",
        help="score the solver restarted from perturbed or autoencoded first frames",
        description=(
            "Restart the system's solver from the first frame of held-out test trajectories: "
            "as stored (a check), with small Gaussian noise (how fast nearby states separate; "
            "a perfect ensemble), and after each zoo autoencoder (the floor of a perfect "
            "emulator behind it). Prints JSON with VRMSE per short/mid/long lead bucket."
        ),
    )
    parser.add_argument("system")
    parser.add_argument("--trajectories", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=48)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument(
        "--perturbation", type=float, default=1e-3, help="noise std per field's spatial std"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-autoencoders", action="store_true", help="skip the zoo autoencoders' restarts"
    )
    parser.add_argument("--data", metavar="DIR", help="dataset root (default ./data)")
    parser.add_argument("--assets", metavar="DIR", help="zoo root (default assets/)")
    parser.add_argument("--output", metavar="FILE", help="also write the JSON here")
    parser.add_argument("--markdown", metavar="FILE", help="also write a Markdown table here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from engine.data.atomic import atomic_open
    from engine.evaluation.predictability import (
        PredictabilitySettings,
        predictability,
        predictability_table,
    )
    from engine.evaluation.report import write_json
    from engine.model_files import load_autoencoder
    from engine.paths import data_root
    from engine.stages.autoencoder import reconstruct
    from engine.stages.common import dataset_dir
    from engine.stages.testset import load_test_trajectories
    from engine.systems import get_system
    from engine.zoo import load_zoo

    settings = PredictabilitySettings(args.horizon, args.members, args.perturbation, args.seed)
    system = get_system(args.system)
    test = load_test_trajectories(
        dataset_dir(args.data or data_root(), args.system), args.trajectories
    )
    frame_maps = {}
    if not args.no_autoencoders:
        for entry in load_zoo(args.assets).available(kind="autoencoder", system=args.system):
            model, preprocessing, _ = load_autoencoder(entry.path, args.system, device="cpu")
            frame_maps[f"autoencoder x{entry.rate}"] = partial(reconstruct, model, preprocessing)
    report = predictability(system, test, settings, frame_maps)
    print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=1))
    print(predictability_table([report]))
    if args.output:
        write_json(report, args.output)
    if args.markdown:
        with atomic_open(args.markdown, "w") as handle:
            handle.write(predictability_table([report]))
    return 0
