"""Read-only overviews: the engine's systems and the zoo's models (the explorer's reference tab)."""

from __future__ import annotations

from engine.systems import SYSTEM_NAMES, get_system
from engine.zoo import Zoo


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


def zoo_markdown(zoo: Zoo) -> str:
    """The zoo's models by system, and the unusable ones with the reason (kept visible so a
    damaged or half-published model is noticed rather than silently missing)."""
    lines = ["| system | emulators | autoencoders |", "|---|---|---|"]
    for name in SYSTEM_NAMES:
        emulators = ", ".join(e.label for e in zoo.available(kind="emulator", system=name))
        autoencoders = ", ".join(
            f"×{e.rate}"
            for e in sorted(
                zoo.available(kind="autoencoder", system=name), key=lambda e: e.rate or 0
            )
        )
        lines.append(f"| `{name}` | {emulators or '—'} | {autoencoders or '—'} |")
    if zoo.problems:
        lines += ["", "**Unusable models** (left out of the menus):", ""]
        lines += [f"- `{name}`: {reason}" for name, reason in sorted(zoo.problems.items())]
    return "\n".join(lines)
