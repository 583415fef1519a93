"""`latentsim encode MODEL`: cache the latents of a dataset under one autoencoder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "encode",
        help="encode a dataset's splits into a latent cache (HDF5)",
        description=(
            "Encode every trajectory of the autoencoder's system dataset and write "
            "DATA/SYSTEM/latents/MODEL/{train,valid,test}.h5 with the parameters and seeds. "
            "Caches that still match the autoencoder and the dataset are kept."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="autoencoder file (stem or .json)")
    parser.add_argument("--data", metavar="DIR", help="dataset root (default ./data)")
    parser.add_argument("--splits", nargs="+", default=["train", "valid", "test"])
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.latents import encode_dataset
    from engine.model_files import load_model_card
    from engine.paths import data_root

    system = load_model_card(args.model)["system"]
    root = Path(args.data) if args.data else data_root()
    paths = encode_dataset(args.model, root / system, splits=tuple(args.splits), device=args.device)
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0
