"""Atomic file replacement: a reader sees the old file, the new file, or nothing — never half.

Everything the engine writes (HDF5 chunks, stats/metadata YAML, JSON, checkpoints) goes
through `atomic_path`: the content is written to a hidden temporary name in the target's
directory (same filesystem, so `os.replace` is an atomic rename), flushed to disk with
fsync, and only then renamed over the target. On any exception — including
KeyboardInterrupt — the temporary file is removed and the target is left untouched.

A process killed with SIGKILL cannot clean up after itself; its temporary name embeds
its pid so `remove_stale_temporaries` can later delete exactly the leftovers of dead
writers. Temporary names end in `.tmp`, so they never match `*.hdf5`/`*.h5` globs (ours
or the_well's) or `*.yaml`.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def _temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _fsync_path(path: Path) -> None:
    """Flush a file (or directory entry table) to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `target` atomically.

    For libraries that open files by name (h5py, torch.save, safetensors):

        with atomic_path("chunk.hdf5") as tmp:
            with h5py.File(tmp, "w") as f: ...

    The writer must have closed the temporary file before the block ends.
    """
    target = Path(target)
    temporary = _temporary_name(target)
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"atomic write of {target}: nothing was written")
        _fsync_path(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_path(target.parent)


@contextmanager
def atomic_open(
    target: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a file for writing that appears at `target` only if the block succeeds."""
    if not mode.startswith(("w", "x")):
        raise ValueError(f"atomic_open writes whole files; mode {mode!r} is not 'w' or 'wb'")
    with atomic_path(target) as temporary:
        binary = "b" in mode
        with open(temporary, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporaries left by writers that no longer run; return what was removed.

    Temporaries of live processes (a concurrent writer, or this process) are kept.
    """
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        match = _TEMP_PATTERN.match(entry.name)
        if match and entry.is_file() and not _pid_alive(int(match["pid"])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
