"""A read-only overview of the engine's systems (placeholder until the explorer lands)."""

from __future__ import annotations

from engine.systems import SYSTEM_NAMES, get_system


def systems_markdown() -> str:
    """One Markdown table row per system, straight from the engine's specs."""
    rows = [
        "| system | grid (x × y) | fields | parameters (training range) | frames |",
        "|---|---|---|---|---|",
    ]
    for name in SYSTEM_NAMES:
        spec = get_system(name).spec
        params = ", ".join(
            f"{p.name} [{p.train_range[0]:g}, {p.train_range[1]:g}]" for p in spec.parameters
        )
        choices = ", ".join(f"{c.name} ∈ {{{', '.join(c.choices)}}}" for c in spec.choices)
        conditioning = "; ".join(part for part in (params, choices) if part)
        rows.append(
            f"| `{name}` | {spec.grid.shape[0]} × {spec.grid.shape[1]} "
            f"| {', '.join(spec.channel_names)} | {conditioning} "
            f"| {spec.n_frames} every {spec.frame_dt:g} |"
        )
    return "\n".join(rows)
