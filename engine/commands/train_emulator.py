"""`latentsim train-emulator SYSTEM --rate R --kind K`: train a latent (or pixel) emulator."""

from __future__ import annotations

import argparse


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
    parser.add_argument("--rate", type=float,
                        help="compression rate of the autoencoder (latent space), e.g. 48")
    parser.add_argument("--kind", required=True, choices=("diffusion", "deterministic"))
    parser.add_argument("--space", default="latent", choices=("latent", "pixel"),
                        help="latent (default) or pixel (baseline, no autoencoder)")
    parser.add_argument("--autoencoder", metavar="PATH",
                        help="autoencoder model file (default assets/autoencoders/SYSTEM-aeRATE)")
    parser.add_argument("--patch", type=int,
                        help="pixel space: patch size in pixels (default 8)")
    parser.add_argument("--config", default="small", choices=("small", "paper"),
                        help="backbone and optimisation preset (small)")
    parser.add_argument("--steps", type=int, help="override the preset's number of steps")
    parser.add_argument("--batch-size", type=int, help="override the preset's global batch")
    parser.add_argument("--lr", type=float, help="override the preset's peak learning rate")
    parser.add_argument("--frame-stride", type=int, default=1,
                        help="stored frames per emulator step, Δ (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", metavar="DIR", help="dataset root (default ./data)")
    parser.add_argument("--run-dir", metavar="DIR",
                        help="checkpoints and log (default runs/emulators/SYSTEM-KIND-...-CONFIG)")
    parser.add_argument("--output", metavar="PATH",
                        help="model file stem to write (default RUN_DIR/model)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.emulator.training import train_emulator
    from engine.paths import data_root, runs_root

    if args.space == "latent":
        where = f"ae{args.rate:g}" if args.rate is not None else "ae"
    else:
        where = "pixel" if args.patch is None else f"pixel-p{args.patch}"
    stride = f"-s{args.frame_stride}" if args.frame_stride != 1 else ""
    run_name = f"{args.system}-{args.kind}-{where}{stride}-{args.config}"
    card = train_emulator(
        args.system,
        args.rate,
        kind=args.kind,
        space=args.space,
        autoencoder=args.autoencoder,
        patch=args.patch,
        data_root=args.data or data_root(),
        run_dir=args.run_dir or runs_root() / "emulators" / run_name,
        preset=args.config,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
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
