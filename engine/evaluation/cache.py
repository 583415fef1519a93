"""Reuse an emulator's evaluation when nothing that decides its numbers has changed.

`latentsim evaluate --all` rolls out every zoo emulator (one to two minutes each on a CPU),
so adding one model to the zoo should not re-measure the thirty others. A stored record is
used only if its key matches exactly: the record layout's version, the emulator's and its
autoencoder's weight hashes, the evaluation settings (device type included), which test
set (the stored test trajectories, or those re-run out of the training range), a hash of
its frames and a hash of the engine's source code (but the report's), so a code change
re-measures all. Anything unreadable or different is measured again and overwritten;
records are written atomically, one file per model and test set.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

import engine
from engine.device import resolve_device
from engine.errors import UnknownNameError
from engine.evaluation.report import json_safe, write_json
from engine.zoo.manifest import Zoo, ZooEntry

ENGINE_ROOT = Path(engine.__file__).resolve().parent
# The layout of a stored record: raise it whenever a record gains or changes a field, so
# that records of the old layout are measured again rather than misread.
# 2: coverage_50/90 per bucket; records of the out-of-range test set.
VERSION = 2
TEST_SETS = ("test", "shift")
# Code that only formats, reports or times records cannot change them: editing the report
# or the findings' wording must not re-measure the zoo. Nor can the zoo package (its plan,
# build and manifest say how models are trained, published and found) or the trainer: a
# retrained model changes its weight hash, already in the key with its autoencoder's, and
# evaluation never runs them. Nor can the explorer's sources: the import contracts in
# pyproject.toml keep engine.evaluation from importing engine.sources.
NOT_MEASUREMENT = (
    "commands/",
    "bench/",
    "training/",
    "zoo/",
    "sources/",
    "evaluation/report.py",
    "evaluation/findings.py",
    "evaluation/figures.py",
    "evaluation/paper.py",
)


@lru_cache(maxsize=1)
def engine_source_sha256() -> str:
    """SHA-256 over the engine's *.py files that take part in measuring (relative path and
    bytes, sorted): everything but `NOT_MEASUREMENT`."""
    digest = hashlib.sha256()
    for path in sorted(ENGINE_ROOT.rglob("*.py")):
        relative = path.relative_to(ENGINE_ROOT).as_posix()
        if relative.startswith(NOT_MEASUREMENT):
            continue
        digest.update(relative.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def frames_sha256(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()


def cache_key(
    zoo: Zoo,
    entry: ZooEntry,
    settings: dict[str, Any],
    test_frames_sha256: str,
    device: str,
    test_set: str = "test",
) -> dict[str, Any]:
    """What an evaluation record depends on, as plain JSON."""
    if test_set not in TEST_SETS:
        raise UnknownNameError("test set", test_set, TEST_SETS)
    autoencoder = zoo.entries[entry.autoencoder].weights_sha256 if entry.autoencoder else None
    key = {
        "version": VERSION,
        "model": entry.name,
        "test_set": test_set,
        "weights_sha256": entry.weights_sha256,
        "autoencoder_sha256": autoencoder,
        "settings": {**settings, "device": resolve_device(device).type},
        "test_frames_sha256": test_frames_sha256,
        "engine_sha256": engine_source_sha256(),
    }
    return json.loads(json.dumps(json_safe(key)))


class EvaluationCache:
    """One JSON file per model and test set under `root`; `root=None` stores and finds
    nothing."""

    def __init__(self, root: Path | None):
        self.root = root

    def _path(self, key: dict[str, Any]) -> Path | None:
        return None if self.root is None else self.root / f"{key['model']}.{key['test_set']}.json"

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("key") != key:
            return None
        return stored.get("record")

    def put(self, key: dict[str, Any], record: dict[str, Any]) -> None:
        path = self._path(key)
        if path is not None:
            write_json({"key": key, "record": record}, path)
