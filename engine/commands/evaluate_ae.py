"""`latentsim evaluate-ae MODEL...`: reconstruction scores of autoencoders on a split."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate-ae",
        help="score autoencoders' reconstructions (JSON, optional Markdown table)",
        description=(
            "Reconstruct every frame of a split and print VRMSE per field and its mean, and "
            "the power-spectrum error in low/mid/high bands, in physical units."
        ),
    )
    parser.add_argument(
        "models", nargs="+", metavar="MODEL", help="model files (stem, .json or .safetensors)"
    )
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--data", metavar="DIR", help="dataset root (default ./data)")
    parser.add_argument("--max-frames", type=int, help="evenly spaced subset of frames")
    parser.add_argument("--output", metavar="FILE", help="also write the JSON here")
    parser.add_argument("--markdown", metavar="FILE", help="also write a Markdown table here")
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.data.atomic import atomic_open
    from engine.model_files import load_autoencoder
    from engine.paths import data_root
    from engine.stages.autoencoder import evaluate_on_split
    from engine.stages.common import dataset_dir

    results = []
    for path in args.models:
        model, preprocessing, card = load_autoencoder(path, device=args.device)
        dataset = dataset_dir(args.data or data_root(), card["system"])
        scores = evaluate_on_split(
            model, preprocessing, dataset, args.split, rate=card["rate"], max_frames=args.max_frames
        )
        results.append(
            {
                "model": str(path),
                "system": card["system"],
                "rate": card["rate"],
                "parameters": card["parameters"],
                "training": _training(card),
                **scores,
            }
        )
    text = json.dumps(results[0] if len(results) == 1 else results, indent=2)
    print(text)
    if args.output:
        with atomic_open(args.output) as handle:
            handle.write(text + "\n")
    if args.markdown:
        with atomic_open(args.markdown) as handle:
            handle.write(markdown_table(results))
    return 0


def _training(card: dict[str, Any]) -> dict[str, Any]:
    training = card.get("training", {})
    return {key: training.get(key) for key in ("preset", "steps", "wall_time_s_this_session")}


def markdown_table(results: list[dict[str, Any]]) -> str:
    """One row per model: mean and per-field VRMSE, mean spectral band errors."""
    lines = [
        "| system | rate | VRMSE (mean) | linear DCT code (its rate) | VRMSE per field |"
        " spectral error low / mid / high | parameters | steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["system"], r["rate"])):
        fields = ", ".join(f"{name} {value:.3f}" for name, value in r["vrmse"].items())
        bands = " / ".join(f"{r['spectral_error_mean'][b]:.3f}" for b in ("low", "mid", "high"))
        lines.append(
            f"| `{r['system']}` | {r['rate']:g} | **{r['vrmse_mean']:.4f}** "
            f"| {r['linear_code']['vrmse_mean']:.4f} (×{r['linear_code']['rate']:.0f}) | {fields} "
            f"| {bands} | {r['parameters']['total']:,} | {r['training']['steps']} |"
        )
    return "\n".join(lines) + "\n"
