"""The cost story as one picture: seconds per frame against grid size, log-log.

Drawn from `bench_scaling`'s JSON (so the PNG in docs/bench is redrawn from the committed
numbers), with each crossing of latent diffusion below the solver and below pixel-space
diffusion marked.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

CURVES = (
    ("solver", "solver (one trajectory)", "black", "o-"),
    ("latent_diffusion", "latent diffusion: encode + sample + decode", "tab:blue", "s-"),
    ("pixel_diffusion", "pixel-space diffusion", "tab:red", "^-"),
)


def scaling_figure(result: dict[str, Any], device: str = "cpu") -> plt.Figure:
    """Seconds per frame (per member-frame for the emulators) against N for an N x N grid."""
    rows = result["devices"][device]["rows"]
    fig, ax = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
    for key, label, color, style in CURVES:
        points = [
            (r["grid"], r[key]["seconds_per_frame"]) for r in rows if "seconds_per_frame" in r[key]
        ]
        if points:
            ax.plot(*zip(*points, strict=True), style, color=color, label=label)
        for r in rows:
            if "skipped" in r[key]:
                ax.annotate(
                    "skipped: memory",
                    (r["grid"], ax.get_ylim()[1]),
                    color=color,
                    fontsize=7,
                    ha="center",
                    va="top",
                )
    latent = [
        (
            r["grid"],
            r["latent_diffusion"]["decode_seconds_per_frame"]
            + r["latent_diffusion"]["encode_seconds_per_frame"],
        )
        for r in rows
        if "seconds_per_frame" in r["latent_diffusion"]
    ]
    if latent:
        ax.plot(
            *zip(*latent, strict=True),
            ":",
            color="tab:blue",
            alpha=0.7,
            label="  of which encode + decode",
        )
    crossings = result["devices"][device]["crossovers"]
    for name, color in (("latent_vs_solver", "black"), ("latent_vs_pixel", "tab:red")):
        grid = crossings[name]["crossing_grid"]
        if isinstance(grid, int):
            ax.axvline(grid, color=color, lw=0.8, ls="--", alpha=0.6)
            other = "solver" if name.endswith("solver") else "pixel"
            ax.text(
                grid,
                0.03,
                f" latent cheaper than\n the {other} from N ≈ {grid}",
                color=color,
                fontsize=8,
                va="bottom",
                transform=ax.get_xaxis_transform(),
            )
    grids = [r["grid"] for r in rows]
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(grids, [f"{n}²" for n in grids])
    ax.set_xlabel("grid (N × N, Kolmogorov flow)")
    ax.set_ylabel("seconds per simulated frame")
    ax.set_title(
        f"{result['members']} members, {result['sampler']} {result['steps']} steps "
        f"({device}, {result['machine'].get('torch_threads')} thread(s))",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig
