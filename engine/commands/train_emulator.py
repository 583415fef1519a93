"""`latentsim train-emulator SYSTEM --rate R --kind K`: train a latent (or pixel) emulator."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.commands.run_record import claim_run_dir, run_record
from engine.commands.training_options import add_training_options
from engine.emulator.base import KINDS, SPACES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-emulator",
        help="train a diffusion or deterministic emulator on latents (or pixels)",
        description=(
            "Train an emulator of SYSTEM on the latents of its autoencoder at compression "
            "RATE (encoded once into the dataset's latent cache), or on preprocessed pixels "
            "with --space pixel; then roll it out from a few test trajectories, score it and "
            "save safetensors + a JSON card. Runs alone or under "
            "`torchrun --nproc_per_node N -m engine.cli train-emulator ...`."
        ),
    )
    parser.add_argument("system", metavar="SYSTEM")
    parser.add_argument(
        "--rate", type=float, help="compression rate of the autoencoder (latent space), e.g. 48"
    )
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument(
        "--space",
        default="latent",
        choices=SPACES,
        help="latent (default) or pixel (baseline, no autoencoder)",
    )
    parser.add_argument(
        "--autoencoder",
        metavar="PATH",
        help="autoencoder model file (default assets/autoencoders/SYSTEM-aeRATE)",
    )
    parser.add_argument(
        "--patch",
        type=int,
        help="patch size in grid cells (pixel space: default 16; latent space: 1)",
    )
    parser.add_argument(
        "--prediction",
        choices=("edm", "data"),
        help="diffusion only: the denoiser predicts via the EDM skip (default, "
        "the paper's) or the clean data itself (for pixel patches with "
        "more values than the network is wide)",
    )
    parser.add_argument(
        "--frame-stride", type=int, default=1, help="stored frames per emulator step, Δ (default 1)"
    )
    add_training_options(
        parser,
        run_dir_default="runs/emulators/SYSTEM-KIND-...-CONFIG",
        presets=("small", "compact", "paper"),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.paths import data_root, runs_root
    from engine.stages.emulator import default_autoencoder_path, train_emulator

    if args.space == "latent":
        where = f"ae{args.rate:g}" if args.rate is not None else "ae"
    else:
        where = "pixel" if args.patch is None else f"pixel-p{args.patch}"
    stride = f"-s{args.frame_stride}" if args.frame_stride != 1 else ""
    prediction = f"-{args.prediction}" if args.prediction else ""
    run_name = f"{args.system}-{args.kind}-{where}{stride}{prediction}-{args.config}"
    run_dir = Path(args.run_dir or runs_root() / "emulators" / run_name)
    data = Path(args.data or data_root())
    autoencoder = None
    if args.space == "latent" and (args.autoencoder or args.rate is not None):
        autoencoder = Path(args.autoencoder or default_autoencoder_path(args.system, args.rate))
    record = run_record(args, data / args.system / f"{args.system}.yaml", autoencoder)
    claim_run_dir(run_dir, record, resume=args.resume)
    card = train_emulator(
        args.system,
        args.rate,
        kind=args.kind,
        space=args.space,
        autoencoder=args.autoencoder,
        patch=args.patch,
        prediction=args.prediction,
        data_root=data,
        run_dir=run_dir,
        preset=args.config,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        ema_decay=args.ema_decay,
        bf16=args.bf16,
        optimizer=args.optimizer,
        frame_stride=args.frame_stride,
        seed=args.seed,
        resume=args.resume,
        device=args.device,
        progress=not args.quiet,
        output=args.output,
    )
    if card is not None:
        print(f"wrote {card}")
    return 0
