"""One session's results: the truth, the rollouts and their scores, as they arrive.

The runner writes here (on the event loop, one block at a time) and the views read; no
Panel, so derived quantities (ensemble mean and spread, colour limits, spectra) are
tested headless. Heavy numerics (scores, reconstructions, rank histograms) arrive
precomputed by the compute. Rollout frames are not copied: a series keeps the run's
`RolloutRecord` (shared by every session showing the run), whose blocks are the frames,
and its `dataset()` is the download.
Views watch `revision`, bumped once per applied update."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import param
import torch
import xarray

from app.state import RunRequest, SeriesSpec
from engine.metrics import isotropic_power_spectrum
from engine.movie.panels import CLIM_PERCENTILES, ensemble_stats, mosaic
from engine.rollout import RolloutBlock, RolloutRecord, TruthRecord
from engine.systems.base import SystemSpec

__all__ = ["BlockUpdate", "RunStore", "Series", "ensemble_stats", "mosaic"]

SCORES = ("vrmse", "ssr", "crps", "spread", "rmse")


@dataclass
class Series:
    """One rollout: its blocks (the frames), scores per lead, AE floor and latents."""

    spec: SeriesSpec
    horizon: int
    fields: int
    record: RolloutRecord | None = None  # the download; a file source's has the same API
    blocks: list[RolloutBlock] = field(default_factory=list)
    status: str = "waiting"
    members: int = 0  # effective (a deterministic emulator runs one)
    space: str = ""
    rate: float | None = None
    seconds_per_frame: float = float("nan")
    nfe: int = 0
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (horizon, C)
    floor: dict[str, np.ndarray] = field(default_factory=dict)  # AE floor, same layout
    recon: dict[int, np.ndarray] = field(default_factory=dict)  # lead index -> (C, X, Y)
    truth_latents: dict[int, np.ndarray] = field(default_factory=dict)  # -> (C', h, w)
    rank_sum: np.ndarray | None = None  # (C, K + 1) block histograms weighted by their leads
    rank_leads: int = 0

    def __post_init__(self) -> None:
        blank = np.full((self.horizon, self.fields), np.nan, np.float32)
        self.scores = {name: blank.copy() for name in SCORES}
        self.floor = {name: blank.copy() for name in ("vrmse", "crps")}

    @property
    def ready(self) -> int:
        """Frames predicted so far."""
        return int(self.blocks[-1].lead[-1]) if self.blocks else 0

    def _locate(self, index: int) -> tuple[RolloutBlock, int] | None:
        for block in self.blocks:
            first = int(block.lead[0]) - 1
            if first <= index < first + len(block.lead):
                return block, index - first
        return None

    def members_at(self, index: int) -> np.ndarray | None:
        """All members at lead index `index` (0-based): (K, C, X, Y), or None if not yet."""
        found = self._locate(index)
        return None if found is None else found[0].frames[:, found[1]].numpy()

    def latents_at(self, index: int) -> np.ndarray | None:
        found = self._locate(index)
        if found is None or found[0].latents is None:
            return None
        return found[0].latents[:, found[1]].numpy()

    def frame_index(self, index: int) -> int | None:
        found = self._locate(index)
        return None if found is None else int(found[0].frame_index[found[1]])

    def dataset(self) -> xarray.Dataset | None:
        """The download: the blocks this series shows (its record may be shared with
        sessions that went on after this one stopped following it)."""
        if self.record is None or not self.blocks:
            return None
        return self.record.dataset(len(self.blocks))


@dataclass(frozen=True)
class BlockUpdate:
    """What one unit of work produced for a series (computed on the worker thread)."""

    key: str
    block: RolloutBlock
    scores: dict[str, np.ndarray]  # name -> (n, C)
    floor: dict[str, np.ndarray]
    recon: np.ndarray | None  # (n, C, X, Y) AE reconstruction of the matching truth
    truth_latents: np.ndarray | None  # (n, C', h, w)
    rank: np.ndarray | None  # (C, K + 1) rank histogram of this block; None for K = 1


class RunStore(param.Parameterized):
    """Results of the current job plus its progress; reset at the start of every job."""

    running = param.Boolean(default=False)
    progress = param.Number(default=0.0, bounds=(0.0, 1.0))
    status = param.String(default="idle")
    speed = param.String(default="")
    eta = param.String(default="")
    revision = param.Integer(default=0, doc="bumped whenever results change")
    notice = param.Parameter(default=None, doc="(level, message) for a notification")

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.request: RunRequest | None = None
        self.generation = 0  # counts runs: a view can tell a new run's frames from the last's
        self.spec: SystemSpec | None = None
        self.truth: TruthRecord | None = None
        self.series: dict[str, Series] = {}
        self.cards: dict[str, dict[str, Any]] = {}  # series key -> {"emulator": .., ...}
        self._clims: dict[str, tuple[float, float]] = {}
        self._clim_frames = 0

    # -- writes (runner) --------------------------------------------------------------
    def reset(self, request: RunRequest, spec: SystemSpec) -> None:
        self.request, self.spec, self.truth = request, spec, None
        self.generation += 1
        channels = len(spec.channel_names)
        self.series = {s.key: Series(s, request.horizon, channels) for s in request.series}
        self.cards = {}
        self._clims = {}
        self._clim_frames = 0
        self.param.update(progress=0.0, speed="", eta="", running=True)
        self.revision += 1

    def set_truth(self, truth: TruthRecord, frames: int | None = None) -> None:
        self.truth, self._clim_frames = truth, 0
        self.truth_updated(frames)

    def truth_updated(self, frames: int | None = None) -> None:
        """Truth frames were added: widen the colour limits to cover the new ones (the
        first `frames` only, if given: the solver may have gone on since, and the limits
        must not depend on when an update is applied)."""
        if self.truth is None or self.spec is None:
            return
        frames = len(self.truth.frames) if frames is None else frames
        new = self.truth.frames[self._clim_frames : frames]
        if not new:
            return
        self._clim_frames = frames
        frames = np.stack([f.frame.numpy() for f in new])
        lo, hi = np.nanpercentile(frames, CLIM_PERCENTILES, axis=(0, 2, 3))
        for i, name in enumerate(self.spec.channel_names):
            low, high = float(lo[i]), float(hi[i])
            if name in self._clims:
                low, high = min(low, self._clims[name][0]), max(high, self._clims[name][1])
            if high <= low:
                high = low + max(abs(low), 1.0) * 1e-3
            self._clims[name] = (low, high)

    def add_block(self, update: BlockUpdate) -> None:
        series = self.series[update.key]
        block = update.block
        series.blocks.append(block)
        rows = block.lead - 1
        for name, values in update.scores.items():
            series.scores[name][rows] = values
        for name, values in update.floor.items():
            series.floor[name][rows] = values
        for j, row in enumerate(rows):
            if update.recon is not None:
                series.recon[int(row)] = update.recon[j]
            if update.truth_latents is not None:
                series.truth_latents[int(row)] = update.truth_latents[j]
        if update.rank is not None:
            weighted = update.rank * len(rows)
            series.rank_sum = weighted if series.rank_sum is None else series.rank_sum + weighted
            series.rank_leads += len(rows)
        series.seconds_per_frame, series.nfe = block.seconds_per_frame, block.nfe
        series.status = "running"

    def bump(self) -> None:
        self.revision += 1

    def notify(self, level: str, message: str) -> None:
        self.notice = (level, message)

    # -- reads (views) -------------------------------------------------------------------
    @property
    def main(self) -> Series | None:
        return next(iter(self.series.values()), None)

    def clim(self, name: str) -> tuple[float, float] | None:
        return self._clims.get(name)

    def truth_frame(self, frame: int | None) -> np.ndarray | None:
        """Stored truth frame `frame` (C, X, Y), if the solver has produced it."""
        if frame is None or self.truth is None or frame >= len(self.truth.frames):
            return None
        return self.truth.frames[frame].frame.numpy()

    def truth_frame_for(self, index: int) -> tuple[int, np.ndarray | None]:
        """(stored frame index, truth frame) matching the main series' lead index."""
        request = self.request
        if request is None:
            return 0, None
        main = self.main
        frame = main.frame_index(index) if main is not None else None
        if frame is None:  # not predicted yet: Δ = 1 alignment of the engine's convention
            stride = request.main.frame_stride
            frame = (request.context + index) * stride
        return frame, self.truth_frame(frame)

    def channel(self, name: str) -> int:
        assert self.spec is not None
        return self.spec.channel_names.index(name)

    def spectra(self, key: str, index: int, name: str) -> dict[str, Any] | None:
        """Isotropic power spectra at lead index `index`: truth, reconstruction, members."""
        series = self.series.get(key)
        members = series.members_at(index) if series else None
        truth = self.truth_frame_for(index)[1]
        if members is None or truth is None:
            return None
        c = self.channel(name)
        k, truth_power = isotropic_power_spectrum(torch.from_numpy(truth[c]))
        _, member_power = isotropic_power_spectrum(torch.from_numpy(members[:, c]))
        result = {
            "k": k.numpy(),
            "truth": truth_power.numpy(),
            "members": member_power.numpy(),
            "recon": None,
        }
        if index in series.recon:
            result["recon"] = isotropic_power_spectrum(torch.from_numpy(series.recon[index][c]))[
                1
            ].numpy()
        return result

    def rank_counts(self, key: str, name: str) -> np.ndarray | None:
        """Rank histogram (K + 1 frequencies) of the truth among the members, pooled over
        every lead predicted so far, for one field; None with fewer than 2 members."""
        series = self.series.get(key)
        if series is None or series.rank_sum is None:
            return None
        return series.rank_sum[self.channel(name)] / series.rank_leads
