"""VRMSE and spread-skill against lead time, one figure per system (PNG).

Left: VRMSE (mean over trajectories and fields) of every evaluated emulator and of the
autoencoder floors, colour by compression rate, line style by method (solid diffusion,
dashed deterministic, dotted reconstruction floor); pixel-space emulators in black,
persistence in grey. Right: the spread-skill ratio of the diffusion ensembles, with 1
(calibrated) and finding 4's band. Bucket edges are marked on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from engine.evaluation.findings import SSR_RANGE
from engine.plots import save_figure

STYLES = {"diffusion": "-", "deterministic": "--", "floor": ":"}


def _series(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _colour(rates: list[int], rate: int | None) -> Any:
    if rate is None or rate not in rates:
        return "black"
    return plt.get_cmap("viridis")(0.1 + 0.75 * rates.index(rate) / max(1, len(rates) - 1))


def _buckets(ax: plt.Axes, system: Mapping[str, Any]) -> None:
    """Bucket edges (half a frame after each bucket's last lead) and names."""
    half = 0.5 * system["frame_dt"]
    for bucket in system["buckets"]:
        start, end = bucket["lead_time"][0] - half, bucket["lead_time"][1] + half
        if bucket is not system["buckets"][-1]:
            ax.axvline(end, color="0.8", lw=0.8)
        ax.text(
            (start + end) / 2,
            1.0,
            bucket["name"],
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
            color="0.4",
        )


def system_figure(name: str, system: Mapping[str, Any]) -> plt.Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    rates, dt = system["rates"], system["frame_dt"]
    for record in system["models"].values():
        where = f"x{record['rate']}" if record["space"] == "latent" else "pixel"
        time = np.asarray(record["lead_frames"]) * dt
        style = dict(color=_colour(rates, record["rate"]), ls=STYLES[record["method"]], lw=1.5)
        left.plot(
            time, _series(record["vrmse_by_lead"]), label=f"{record['method']} {where}", **style
        )
        if "ssr_by_lead" in record:
            right.plot(time, _series(record["ssr_by_lead"]), label=f"diffusion {where}", **style)
    for record in system["autoencoders"].values():
        time = np.asarray(record["lead_frames"]) * dt
        left.plot(
            time,
            _series(record["vrmse_by_lead"]),
            color=_colour(rates, record["rate"]),
            ls=STYLES["floor"],
            lw=1.2,
            label=f"AE floor x{record['rate']}",
        )
    persistence = system["persistence"]
    left.plot(
        np.asarray(persistence["lead_frames"]) * dt,
        _series(persistence["vrmse_by_lead"]),
        color="0.6",
        lw=1.0,
        label="persistence",
    )
    left.set(xlabel="lead time", ylabel="VRMSE (mean over fields)", yscale="log")
    left.set_title(f"{name}: VRMSE of the ensemble mean", pad=12)
    right.axhspan(*SSR_RANGE, color="0.93", zorder=0)
    right.axhline(1.0, color="0.5", lw=0.8)
    right.set(xlabel="lead time", ylabel="spread / skill")
    right.set_title("spread-skill ratio (diffusion)", pad=12)
    for ax in (left, right):
        _buckets(ax, system)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncols=2)
    return fig


def write_figures(
    systems: Mapping[str, Mapping[str, Any]], directory: str | Path
) -> dict[str, Path]:
    """One PNG per system, `vrmse-SYSTEM.png` in `directory`; returns system -> path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return {
        name: save_figure(system_figure(name, system), directory / f"vrmse-{name}.png")
        for name, system in systems.items()
    }
