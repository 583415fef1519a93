"""What a session shows, as plain data: to compare two sessions' stores exactly."""

from __future__ import annotations

import asyncio

import numpy as np

from app.runner import Runner
from app.shared_runs import SharedRuns
from app.store import RunStore


def alone(tiny_zoo, request, **options) -> RunStore:
    """The store of a session that ran `request` by itself (nothing shared)."""
    store = RunStore()
    runner = Runner(store, zoo=lambda: tiny_zoo, runs=SharedRuns(keep=0), **options)
    asyncio.run(runner.run(request))
    return store


def snapshot(store: RunStore) -> dict:
    """What a session shows: every series' frames, scores, floor, reconstructions,
    latents, rank histogram and status, the truth, the colour limits and the progress."""
    out = {
        "status": store.status,
        "progress": store.progress,
        "running": store.running,
        "truth": [f.frame.numpy() for f in store.truth.frames] if store.truth else None,
        "clims": {name: store.clim(name) for name in store.spec.channel_names},
    }
    for key, series in store.series.items():
        out[key] = {
            "status": series.status,
            "ready": series.ready,
            "members": series.members,
            "leads": [b.lead.tolist() for b in series.blocks],
            "frames": [b.frames.numpy() for b in series.blocks],
            "scores": series.scores,
            "floor": series.floor,
            "recon": series.recon,
            "latents": series.truth_latents,
            "rank": (series.rank_sum, series.rank_leads),
            "download": without_timing(series.dataset()),
        }
    return out


def without_timing(dataset):
    """The download, less its compute time (which differs between two computations)."""
    dataset.attrs.pop("elapsed_s")
    return dataset


def assert_same(actual, expected, where="store") -> None:
    if isinstance(expected, dict):
        assert set(actual) == set(expected), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(actual, expected, err_msg=where)
    elif hasattr(expected, "identical"):  # an xarray Dataset
        assert actual.identical(expected), where
    else:
        assert actual == expected, where
