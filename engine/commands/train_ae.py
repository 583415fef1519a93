"""`latentsim train-ae SYSTEM --rate R`: train one autoencoder of a compression ladder."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.commands.run_record import claim_run_dir, run_record
from engine.commands.training_options import add_training_options


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
    add_training_options(
        parser,
        run_dir_default="runs/ae/SYSTEM-rRATE-CONFIG",
        presets=("small", "wide8", "wide8deep", "paper"),
    )
    parser.add_argument(
        "--loss-eps", type=float, help="variance floor of the VMSE loss (preset's: 0.01)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.errors import check_positive
    from engine.paths import data_root, runs_root
    from engine.stages.autoencoder import train_autoencoder

    if args.loss_eps is not None:  # the recipe's rule, before the run directory is claimed
        check_positive("--loss-eps", args.loss_eps)

    run_dir = args.run_dir or runs_root() / "ae" / f"{args.system}-r{args.rate:g}-{args.config}"
    data = Path(args.data or data_root())
    record = run_record(args, data / args.system / f"{args.system}.yaml")
    claim_run_dir(Path(run_dir), record, resume=args.resume)
    card = train_autoencoder(
        args.system,
        args.rate,
        data_root=data,
        run_dir=run_dir,
        preset=args.config,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        ema_decay=args.ema_decay,
        bf16=args.bf16,
        optimizer=args.optimizer,
        loss_eps=args.loss_eps,
        seed=args.seed,
        resume=args.resume,
        device=args.device,
        progress=not args.quiet,
        output=args.output,
    )
    if card is not None:
        print(f"wrote {card}")
    return 0
