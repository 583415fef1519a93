"""Process-wide model access: the verified zoo and loaded pipelines, shared by all sessions.

`panel serve` re-runs main.py for every browser session but imports this module once per
process, and so does each compute worker process (app/cluster.py): what lives here is
loaded once per process: the zoo (re-read only when the manifest file changes, so models
published while the server runs appear in new sessions) and the pipelines (weights are
read once, then kept: a process runs model units on one thread, so sharing them is
thread-safe). The web process itself reads only the manifest when workers compute.
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine.pipeline import Pipeline
from engine.zoo import Zoo, load_zoo
from engine.zoo.manifest import manifest_path

_lock = threading.Lock()
_zoo: tuple[tuple[Path, float, int], Zoo] | None = None
_pipelines: dict[tuple[Path, str, str], Pipeline] = {}


def _manifest_key() -> tuple[Path, float, int]:
    path = manifest_path().resolve()
    try:
        stat = path.stat()
    except FileNotFoundError:
        return path, 0.0, -1
    return path, stat.st_mtime, stat.st_size


def current_zoo() -> Zoo:
    """The zoo under engine.paths.assets_root(), verified again when its manifest changes."""
    global _zoo
    key = _manifest_key()
    with _lock:
        if _zoo is None or _zoo[0] != key:
            _zoo = (key, load_zoo(key[0].parent))
        return _zoo[1]


def load_pipeline(zoo: Zoo, name: str) -> Pipeline:
    """The pipeline of emulator `name` on CUDA if present, else the CPU; loaded once per
    process and set of weights.

    The key includes the weights' hash, so a model republished under the same name is
    loaded afresh rather than served stale.
    """
    entry = zoo.get(name)
    key = (zoo.root, name, entry.weights_sha256)
    with _lock:
        if key not in _pipelines:
            _pipelines[key] = zoo.pipeline(name, device="auto")
        return _pipelines[key]
