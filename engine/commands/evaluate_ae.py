"""`latentsim evaluate-ae MODEL`: reconstruction scores of an autoencoder on a split."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate-ae",
        help="score an autoencoder's reconstructions (JSON)",
        description=(
            "Reconstruct every frame of a split and print VRMSE per field and its mean, and "
            "the power-spectrum error in low/mid/high bands, in physical units."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="model file (stem, .json or .safetensors)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--data", metavar="DIR", help="dataset root (default ./data)")
    parser.add_argument("--max-frames", type=int, help="evenly spaced subset of frames")
    parser.add_argument("--output", metavar="FILE", help="also write the JSON here")
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.autoencoder.training import dataset_dir, evaluate_on_split
    from engine.data.atomic import atomic_open
    from engine.model_files import load_autoencoder
    from engine.paths import data_root

    model, preprocessing, card = load_autoencoder(args.model, device=args.device)
    dataset = dataset_dir(args.data or data_root(), card["system"])
    scores = evaluate_on_split(model, preprocessing, dataset, args.split,
                               max_frames=args.max_frames)
    result = {"model": str(args.model), "system": card["system"], "rate": card["rate"], **scores}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        with atomic_open(args.output) as handle:
            handle.write(text + "\n")
    return 0
