"""SHA-256 of a file, read in 1 MiB blocks so large weights and datasets never sit in memory.

Model cards, the zoo manifest, checkpoints and the latent cache all record file hashes;
they compute them here, so a hash written by one is checked by another.
"""

from __future__ import annotations

import hashlib
import os

BLOCK = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()
