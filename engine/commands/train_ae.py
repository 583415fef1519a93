"""`latentsim train-ae SYSTEM --rate R`: train one autoencoder of a compression ladder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-ae",
        help="train an autoencoder at one compression rate",
        description=(
            "Train an autoencoder of SYSTEM at compression RATE on the generated dataset, "
            "then score it on the test split and save safetensors + a JSON card. Runs alone "
            "or under `torchrun --nproc_per_node N -m engine.cli train-ae ...`."
        ),
    )
    parser.add_argument("system", metavar="SYSTEM")
    parser.add_argument("--rate", type=float, required=True, help="compression rate, e.g. 80")
    parser.add_argument("--config", default="small", choices=("small", "paper"),
                        help="model and optimisation preset (small)")
    parser.add_argument("--steps", type=int, help="override the preset's number of steps")
    parser.add_argument("--batch-size", type=int, help="override the preset's global batch")
    parser.add_argument("--lr", type=float, help="override the preset's peak learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", metavar="DIR", help="dataset root (default ./data)")
    parser.add_argument("--run-dir", metavar="DIR",
                        help="checkpoints and log (default runs/ae/SYSTEM-rRATE-CONFIG)")
    parser.add_argument("--output", metavar="PATH",
                        help="model file stem to write (default RUN_DIR/model)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.autoencoder.training import train_autoencoder
    from engine.paths import data_root, runs_root

    run_dir = args.run_dir or runs_root() / "ae" / f"{args.system}-r{args.rate:g}-{args.config}"
    card = train_autoencoder(
        args.system,
        args.rate,
        data_root=args.data or data_root(),
        run_dir=run_dir,
        preset=args.config,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        resume=args.resume,
        device=args.device,
        progress=not args.quiet,
        output=args.output,
    )
    if card is not None:
        print(f"wrote {card}")
    return 0
