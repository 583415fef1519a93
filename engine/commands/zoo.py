"""`latentsim zoo list|train|publish`: the shipped models and how they are (re)built."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "zoo",
        help="list, verify, train or publish the shipped model zoo",
        description=(
            "The zoo is the plan of models shipped in assets/ (engine/zoo/plan.py). "
            "`list` shows each model's state (published, stale, missing, or what is wrong "
            "with its files); `train` generates data and trains whatever is not published, "
            "resuming where it stopped; `publish` adds a model trained elsewhere with the "
            "plan's exact settings."
        ),
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="state of every planned model")
    listing.add_argument("--system", help="only this system")
    listing.set_defaults(func=run_list)
    train = actions.add_parser("train", help="train and publish what is not published yet")
    train.add_argument("--system", help="only this system")
    train.add_argument("--only", nargs="+", default=(), metavar="NAME", help="only these models")
    train.add_argument("--force", action="store_true", help="retrain even if published")
    train.add_argument("--data", metavar="DIR", help="dataset root (default ./data)")
    train.set_defaults(func=run_train)
    publish = actions.add_parser("publish", help="publish a model trained with the plan's settings")
    publish.add_argument("name", metavar="NAME")
    publish.add_argument("source", metavar="MODEL", help="model file stem to publish")
    publish.set_defaults(func=run_publish)


def run_list(args: argparse.Namespace) -> int:
    from engine.zoo.build import select, status

    for model in select(args.system):
        print(f"{model.name:44s} {status(model)}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from engine.zoo.build import build, select

    build(select(args.system, args.only), data=args.data, force=args.force)
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from engine.zoo.build import publish
    from engine.zoo.plan import plan_entry

    entry = publish(plan_entry(args.name), args.source)
    print(f"published {entry.asset}")
    return 0
