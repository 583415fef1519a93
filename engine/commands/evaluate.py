"""`latentsim evaluate SYSTEM... | --all`: the zoo's emulators on held-out test trajectories.

Writes OUTPUT/RESULTS.md (the paper's table layout, the findings), OUTPUT/results/
results.json (everything, per field) and OUTPUT/results/vrmse-SYSTEM.png; OUTPUT is
runs/evaluate, or docs/ with --all (docs/RESULTS.md is the project's results page).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = "runs/evaluate"
ALL_OUTPUT = "docs"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="roll out every available zoo emulator on test trajectories and score it",
        description=(
            "Roll every available emulator of the zoo (assets/manifest.json) out from the same "
            "held-out test trajectories, score it by lead-time bucket against the truth and "
            "the autoencoder floor, re-measure each model card's test metrics, re-run the "
            "latent emulators on the test trajectories out of the training range, check the "
            "findings (the paper's four, robustness out of range, interval coverage), and "
            "write Markdown, JSON and PNG plots. Models not trained yet are listed as missing."
        ),
    )
    parser.add_argument("systems", nargs="*", metavar="SYSTEM", help="systems to evaluate")
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"every system; output defaults to {ALL_OUTPUT}/ (RESULTS.md)",
    )
    parser.add_argument(
        "--models", nargs="+", default=(), metavar="NAME", help="only these zoo emulators"
    )
    parser.add_argument(
        "--trajectories",
        type=int,
        default=8,
        help="test trajectories per system, evenly spaced over the split (8)",
    )
    parser.add_argument("--members", type=int, default=16, help="diffusion ensemble size (16)")
    parser.add_argument(
        "--horizon",
        type=int,
        default=48,
        help="frames to predict, cut to what the trajectories hold (48)",
    )
    parser.add_argument("--context", type=int, default=1, help="context frames (1)")
    parser.add_argument("--sampler", default="ab", help="diffusion sampler (ab)")
    parser.add_argument(
        "--order", type=int, default=3, help="order of the multistep samplers ab/lms/dpmpp (3)"
    )
    parser.add_argument("--steps", type=int, default=16, help="sampler steps (16)")
    parser.add_argument("--seed", type=int, default=0, help="ensemble noise seed (0)")
    parser.add_argument("--data", metavar="DIR", help="dataset root (default ./data)")
    parser.add_argument("--assets", metavar="DIR", help="zoo root (default assets/)")
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help=f"where to write (default {DEFAULT_OUTPUT}; {ALL_OUTPUT} with --all)",
    )
    parser.add_argument(
        "--no-card-check", action="store_true", help="skip re-measuring each card's test metrics"
    )
    parser.add_argument(
        "--no-shift",
        action="store_true",
        help="skip re-running the latent emulators on the test trajectories out of the "
        "training range (distribution shift)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="reuse emulator records measured with the same weights, settings, "
        "test frames and engine code (default runs/evaluation-cache)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="measure every emulator again (and store nothing)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from engine.device import resolve_device
    from engine.errors import ParameterError
    from engine.evaluation.figures import write_figures
    from engine.evaluation.findings import check_findings
    from engine.evaluation.report import (
        document,
        json_safe,
        markdown,
        write_json,
        write_markdown,
    )
    from engine.evaluation.runner import EvaluationSettings, evaluate
    from engine.paths import data_root, runs_root
    from engine.systems import SYSTEM_NAMES
    from engine.zoo import load_zoo

    if args.all and args.systems:
        raise ParameterError("systems", args.systems, "none together with --all")
    systems = list(SYSTEM_NAMES) if args.all else args.systems
    if not systems:
        raise ParameterError("systems", [], f"one or more of {', '.join(SYSTEM_NAMES)}, or --all")
    settings = EvaluationSettings(
        trajectories=args.trajectories,
        members=args.members,
        horizon=args.horizon,
        context=args.context,
        sampler=args.sampler,
        order=args.order,
        steps=args.steps,
        seed=args.seed,
        device=args.device,
        card_check=not args.no_card_check,
        shift=not args.no_shift,
    )
    output = Path(args.output_dir or (ALL_OUTPUT if args.all else DEFAULT_OUTPUT))
    started = time.perf_counter()
    results = evaluate(
        systems,
        settings,
        zoo=load_zoo(args.assets),
        data_root=args.data or data_root(),
        models=args.models,
        log=lambda line: print(line, flush=True),
        cache_dir=None if args.no_cache else (args.cache_dir or runs_root() / "evaluation-cache"),
    )
    machine = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(resolve_device(args.device)),
    }
    run_info = {
        "command": command_line(args),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_time_s": time.perf_counter() - started,
        "machine": machine,
    }
    findings = check_findings(results)
    data = json_safe(document(run_info, settings.record(), results, findings))
    figures = write_figures(results, output / "results")
    json_path = write_json(data, output / "results" / "results.json")
    links = {name: path.relative_to(output).as_posix() for name, path in figures.items()}
    markdown_path = write_markdown(markdown(data, links), output / "RESULTS.md")
    for finding in findings:
        print(f"finding {finding.number} ({finding.title}): {finding.statement}")
    print(f"wrote {markdown_path}, {json_path} and {len(figures)} figure(s)")
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The command with every setting spelled out (defaults included), to rerun it."""
    words: list[Any] = ["latentsim", "evaluate", *(["--all"] if args.all else args.systems)]
    if args.models:
        words += ["--models", *args.models]
    for option in (
        "trajectories",
        "members",
        "horizon",
        "context",
        "sampler",
        "order",
        "steps",
        "seed",
        "data",
        "assets",
        "output_dir",
        "device",
    ):
        value = getattr(args, option)
        if value is not None:
            words += [f"--{option.replace('_', '-')}", value]
    if args.no_card_check:
        words.append("--no-card-check")
    if args.no_shift:
        words.append("--no-shift")
    return shlex.join(str(word) for word in words)
