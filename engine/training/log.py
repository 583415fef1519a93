"""The run's JSON-lines log and the rank-0 progress bar.

One JSON object per line, each with an "event" ("start", "resume", "train", "skipped",
"validation", "end", "warning") and, where it applies, the "step" it describes. Non-finite
numbers are written as null so every line is strict JSON that any tool can read.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

LOG_NAME = "log.jsonl"


class JsonlLog:
    """Append-only event log; a disabled log (ranks other than 0) accepts and drops events."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def write(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"event": event, **{k: _jsonable(v) for k, v in fields.items()}}
        line = json.dumps(record, allow_nan=False)
        # Open per event: a killed run loses at most the line being written.
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def reset(self) -> None:
        """Start a fresh log (a new run in a directory whose last run never checkpointed)."""
        if self.enabled:
            self.path.unlink(missing_ok=True)

    def truncate_after(self, step: int) -> None:
        """Drop events past `step` (left by a run killed after its last checkpoint), so a
        resumed run's log reads like the uninterrupted one instead of repeating steps."""
        if not self.enabled or not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text(encoding="utf-8").splitlines(keepends=True)
            if line.endswith("\n") and json.loads(line).get("step", -1) <= step
        ]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, self.path)


def read_log(path: Path) -> list[dict[str, Any]]:
    """All events of a run's log, in order (a run directory or the log file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_NAME
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class Progress:
    """tqdm bar over training steps, shown on rank 0 only (tqdm reports steps/s itself)."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self._bar = tqdm(
            total=total, initial=initial, unit="step", disable=not enabled, dynamic_ncols=True
        )

    def update(self, loss: float | None, lr: float) -> None:
        shown = "skipped" if loss is None else f"{loss:.4g}"
        self._bar.set_postfix(loss=shown, lr=f"{lr:.3g}", refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
