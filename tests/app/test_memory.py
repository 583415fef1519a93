"""The server hands the memory of closed sessions back (app/memory.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app import memory

needs_glibc = pytest.mark.skipif(memory._TRIM is None, reason="malloc_trim is glibc's")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@needs_glibc
def test_freed_heap_goes_back_to_the_system():
    # 1 kB objects come from malloc's heap; keeping every 16th alive leaves the freed ones
    # between live chunks, where free() alone does not give the pages back.
    blocks = [bytes(1024) + i.to_bytes(4, "little") for i in range(150_000)]
    kept = blocks[::16]
    del blocks
    before = rss_mb()
    assert memory.release_freed_memory() is True
    after = rss_mb()
    assert before - after > 50, (before, after)
    del kept  # alive until after the measurement


def test_sessions_closing_together_share_one_trim(monkeypatch):
    trims = []
    monkeypatch.setattr(memory, "TRIM_DELAY_S", 0.05)
    monkeypatch.setattr(memory, "_TRIM", lambda pad: trims.append(pad) or 1)

    async def close_three_sessions() -> None:
        for _ in range(3):
            memory.release_after_session(object())
        await asyncio.sleep(0.2)
        memory.release_after_session(object())  # a later close trims again
        await asyncio.sleep(0.2)

    asyncio.run(close_three_sessions())
    assert trims == [0, 0]
