"""The directories a served explorer may open files under, and nothing else.

A browser user picks a source from a list built here, and a URL may only name an entry
of that list: a path is resolved (symlinks and `..` included) before it is compared
with the roots, so no URL or menu can reach a file outside them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from engine.errors import DataFormatError

ROOTS_VARIABLE = "LATENTSIM_VIEW_ROOTS"  # os.pathsep-separated directories
SOURCE_SUFFIXES = (".nc", ".nc4", ".netcdf", ".zarr", ".hdf5", ".h5")
MAX_DEPTH = 3  # how deep `candidates` looks under each root
MAX_CANDIDATES = 200


class AllowedRoots:
    """Resolved root directories; `check` refuses any path outside them."""

    def __init__(self, roots: Iterable[str | os.PathLike[str]]):
        self.roots = tuple(dict.fromkeys(Path(r).resolve() for r in roots))

    @classmethod
    def from_environment(cls, extra: Iterable[str | os.PathLike[str]] = ()) -> AllowedRoots:
        listed = os.environ.get(ROOTS_VARIABLE, "")
        return cls([*extra, *(p for p in listed.split(os.pathsep) if p)])

    def to_environment(self) -> str:
        return os.pathsep.join(str(r) for r in self.roots)

    def check(self, path: str | os.PathLike[str]) -> Path:
        """The resolved path, if it lies under a root; else a DataFormatError naming it."""
        resolved = Path(path).resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(r) for r in self.roots) or "none configured"
            raise DataFormatError(path, f"outside the allowed roots ({allowed})")
        return resolved

    def candidates(self) -> list[Path]:
        """Files and directories under the roots that look like sources, sorted."""
        found: list[Path] = []
        for root in self.roots:
            if root.is_file():
                found.append(root)
            else:
                found.extend(_walk(root, MAX_DEPTH))
        return sorted(dict.fromkeys(found))[:MAX_CANDIDATES]


def looks_like_source(path: Path) -> bool:
    """A rollout file, a Well file, a Well dataset root or a model folder (by name)."""
    if path.suffix in SOURCE_SUFFIXES:
        return True
    return path.is_dir() and (
        (path / "manifest.json").is_file() or ((path / "data").is_dir() and path.name != "data")
    )


def _walk(directory: Path, depth: int) -> Iterator[Path]:
    if looks_like_source(directory):
        yield directory
        if directory.suffix == ".zarr" or (directory / "manifest.json").is_file():
            return
    if depth == 0:
        return
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(entry, depth - 1)
        elif looks_like_source(entry):
            yield entry
