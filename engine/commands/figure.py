"""`latentsim figure NAME --out FILE`: regenerate a documentation figure."""

from __future__ import annotations

import argparse

FIGURES = ("systems",)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("figure", help="draw a documentation figure (PNG)")
    parser.add_argument("name", choices=FIGURES, help="which figure")
    parser.add_argument("--out", required=True, metavar="FILE", help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0, help="trajectory seed (0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.plots import save_figure, systems_figure
    from engine.systems import SYSTEM_NAMES

    path = save_figure(systems_figure(SYSTEM_NAMES, seed=args.seed), args.out)
    print(f"wrote {path}")
    return 0
