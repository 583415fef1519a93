"""Give the memory of closed sessions back to the operating system.

A session's rollout is many medium-sized arrays (frames, latents, Bokeh buffers). When the
session closes CPython frees them, but glibc's malloc keeps freed pages in its arenas, so
without a trim the server's resident memory stays at its peak after a class has left
(measured in docs/app.md, "Many sessions at once"). `malloc_trim(0)` hands them back. It is
glibc's: elsewhere (macOS, musl) nothing is trimmed and the allocator's own policy holds.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
from collections.abc import Callable

# Bokeh drops a destroyed session's document after its on_session_destroyed callbacks run,
# so the trim waits for that; sessions closing together share one trim.
TRIM_DELAY_S = 2.0


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()
_scheduled: asyncio.TimerHandle | None = None


def release_freed_memory() -> bool:
    """Collect cycles, then return free heap pages to the OS; True if any were returned."""
    global _scheduled
    _scheduled = None
    gc.collect()
    return bool(_TRIM(0)) if _TRIM is not None else False


def release_after_session(*_: object) -> None:
    """on_session_destroyed callback: trim once the session's document is gone."""
    global _scheduled
    if _scheduled is None:
        _scheduled = asyncio.get_event_loop().call_later(TRIM_DELAY_S, release_freed_memory)
