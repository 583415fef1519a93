"""`latentsim view PATH...`: the explorer on your own Well datasets, rollout files and
model folders.

Every path is opened (read-only) and checked before the server starts, so a bad file
fails here with its name and problem instead of in the browser. Rollout files and Well
datasets become the explorer's sources; a model folder (a directory with a zoo
manifest) replaces the shipped zoo. The browser may open only these paths and what lies
under the allowed roots (`--root`, default: the directories holding the paths).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from engine.errors import ParameterError
from engine.paths import REPO_ROOT


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "view",
        help="open Well datasets, rollout files or model folders in the explorer",
        description=(
            "Serve the explorer on PATHs: Well-format datasets (an HDF5 file, a directory "
            "of them or a dataset root with data/<split>/), rollout files (NetCDF or Zarr, "
            "schema in docs/sources.md) and model folders (a directory with a zoo "
            "manifest.json, used instead of the shipped zoo). Prints the URL."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="what to open")
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory whose sources the page may list and open (repeatable; "
        "default: the directories holding PATHs)",
    )
    parser.add_argument(
        "--emulators",
        action="append",
        default=[],
        metavar="MODULE",
        help="a Python file (.py) or module that registers emulators with "
        "engine.sources.register_emulator (repeatable; docs/sources.md)",
    )
    parser.add_argument("--address", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=5006, help="port (0: any free port)")
    parser.add_argument("--show", action="store_true", help="open a browser tab")
    parser.set_defaults(func=run)


def environment(paths: list[str], roots: list[str]) -> dict[str, str]:
    """The variables app/main.py reads: sources, allowed roots and the zoo to use.

    Each source is opened against the same allowed roots the server will use, so a rollout
    whose truth file lies outside them fails here rather than in the browser."""
    from engine.sources import AllowedRoots, open_source
    from engine.zoo import load_zoo
    from engine.zoo.manifest import MANIFEST_NAME

    resolved = [Path(raw).resolve() for raw in paths]
    folders = [path for path in resolved if (path / MANIFEST_NAME).is_file()]
    views = [path for path in resolved if path not in folders]
    holders = [str(path.parent if path.is_file() else path) for path in views]
    allowed = AllowedRoots([*roots, *holders])
    for path in views:
        open_source(path, allowed)  # raises DataFormatError naming the file
    for folder in folders:
        load_zoo(folder)  # a manifest that does not load fails here
    env = {
        "LATENTSIM_VIEW_PATHS": os.pathsep.join(str(path) for path in views),
        "LATENTSIM_VIEW_ROOTS": allowed.to_environment(),
    }
    if folders:
        env["LATENTSIM_ASSETS"] = str(folders[-1])
    return env


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port < 65536:
        raise ParameterError("--port", args.port, "0..65535")
    env = {**os.environ, **environment(args.paths, args.root)}
    modules = [str(Path(m).resolve()) if m.endswith(".py") else m for m in args.emulators]
    env["LATENTSIM_VIEW_EMULATORS"] = os.pathsep.join(modules)
    port = args.port or free_port(args.address)
    origin = f"{args.address}:{port}"
    command = [
        sys.executable,
        "-m",
        "panel",
        "serve",
        str(REPO_ROOT / "app"),
        "--address",
        args.address,
        "--port",
        str(port),
        f"--allow-websocket-origin={origin}",
        f"--allow-websocket-origin=localhost:{port}",
    ]
    if args.show:
        command.append("--show")
    print(f"latentsim view: http://{origin}/app", flush=True)
    # Become the server rather than wait for it: a signal to `latentsim view` (Ctrl-C, a
    # service manager's SIGTERM) then reaches the server and its compute workers, instead
    # of leaving them running as orphans.
    os.execve(command[0], command, env)
