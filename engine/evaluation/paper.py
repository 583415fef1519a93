"""The paper's published numbers (Rozet et al. 2025, arXiv:2507.02608), beside ours.

Mean VRMSE by lead bucket (the paper's own buckets, in simulation steps) for latent
diffusion and the latent deterministic "neural solver" at the three rates, the pixel-space
solver, and the autoencoders' reconstruction VRMSE (short bucket). Each of our systems
stands in for one dataset of the paper; Kolmogorov flow replaces the 3D TGC and shares
its ladder (48 / 192 / 768). The paper has no pixel baseline on TGC.
"""

from __future__ import annotations

from dataclasses import dataclass

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class PaperTable:
    dataset: str
    rates: tuple[int, int, int]
    buckets: tuple[str, str, str]  # the paper's short / mid / long leads
    diffusion: tuple[Triple, Triple, Triple]  # [bucket][rate]
    deterministic: tuple[Triple, Triple, Triple]
    pixel: Triple | None  # [bucket]
    autoencoder: Triple  # [rate], short bucket

    def long(self, method: str) -> Triple:
        """Long-bucket VRMSE of "diffusion" or "deterministic" at the three rates."""
        return getattr(self, method)[-1]


PAPER: dict[str, PaperTable] = {
    "euler_quadrants": PaperTable(
        "Euler",
        (80, 320, 1280),
        ("1–20", "21–60", "61–100"),
        ((0.075, 0.070, 0.093), (0.199, 0.192, 0.217), (0.395, 0.371, 0.400)),
        ((0.077, 0.080, 0.137), (0.232, 0.232, 0.314), (0.500, 0.476, 0.592)),
        (0.138, 0.397, 1.102),
        (0.011, 0.023, 0.060),
    ),
    "rayleigh_benard": PaperTable(
        "RB",
        (64, 256, 1024),
        ("1–20", "21–60", "61–180"),
        ((0.171, 0.141, 0.146), (0.582, 0.509, 0.457), (0.704, 0.683, 0.670)),
        ((0.244, 0.197, 0.195), (0.761, 0.716, 0.665), (0.968, 0.945, 0.903)),
        (0.185, 0.681, 0.918),
        (0.023, 0.039, 0.070),
    ),
    "kolmogorov": PaperTable(
        "TGC (Kolmogorov stands in)",
        (48, 192, 768),
        ("1–10", "11–30", "31–50"),
        ((0.296, 0.342, 0.425), (0.522, 0.527, 0.575), (0.673, 0.665, 0.694)),
        ((0.302, 0.361, 0.462), (0.599, 0.632, 0.710), (0.826, 0.835, 0.920)),
        None,
        (0.15, 0.23, 0.34),
    ),
}
