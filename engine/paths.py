"""Where latentsim reads and writes by default; every path can be overridden.

Generated data and training runs are large and reproducible, so they live outside the
package (./data, ./runs, or the LATENTSIM_DATA / LATENTSIM_RUNS variables); the shipped
models live in the repository's assets/ directory.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    return Path(os.environ.get("LATENTSIM_DATA", "data"))


def runs_root() -> Path:
    return Path(os.environ.get("LATENTSIM_RUNS", "runs"))


def assets_root() -> Path:
    return Path(os.environ.get("LATENTSIM_ASSETS", REPO_ROOT / "assets"))
