"""Your own emulator in the explorer: a tiny model, written here, registered for any
dataset, then run on a Well trajectory exactly as the explorer runs it.

In the browser:

    latentsim view DATASET.hdf5 --emulators docs/examples/tiny_emulator.py

then pick *Emulator: tiny-stencil* in the sidebar and *Open*. In a notebook, run this
file's cells, then `app.explore(engine.data.open_well("DATASET.hdf5"))`. As a script
(what tests/sources/test_example.py does): `python docs/examples/tiny_emulator.py
DATASET.hdf5` prints the scores of one rollout.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from engine.sources import register_emulator


class TinyStencil(nn.Module):
    """Next frame = frame + a learnable 3×3 stencil applied to every channel, plus
    noise scaled by a learnable amplitude for each member of an ensemble.

    The protocol (docs/sources.md): context (K, c, C, X, Y) in, a block (K, n, C, X, Y)
    of n new frames out. This one predicts two frames per call from the last context
    frame. Its weights start as a diffusion stencil; train them as any torch module.
    """

    frames_per_call = 2

    def __init__(self) -> None:
        super().__init__()
        laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.stencil = nn.Parameter(0.05 * laplacian.view(1, 1, 3, 3))
        self.noise = nn.Parameter(torch.tensor(0.01))

    def forward(self, context: torch.Tensor, conditions: dict, members: int) -> torch.Tensor:
        k, _, c, x, y = context.shape
        frame = context[:, -1]  # (K, C, X, Y)
        scale = frame.std(dim=(-2, -1), keepdim=True) + 1e-6
        out = []
        for _ in range(self.frames_per_call):
            flat = functional.pad(frame.reshape(k * c, 1, x, y), (1, 1, 1, 1), mode="circular")
            frame = frame + functional.conv2d(flat, self.stencil).reshape(k, c, x, y)
            if members > 1:
                frame = frame + self.noise * scale * torch.randn_like(frame)
            out.append(frame)
        return torch.stack(out, dim=1)


ENTRY = register_emulator(
    "tiny-stencil",
    TinyStencil(),
    target="*",  # any dataset; a dataset_name (e.g. "rayleigh_benard") limits it to one
    context=1,
    ensemble=True,
    description="a learnable 3×3 stencil with noise (docs/examples/tiny_emulator.py)",
)


def main(path: str) -> None:
    """Roll the emulator out on trajectory 0 of a Well file and print its VRMSE."""
    from engine.metrics import ensemble_scores
    from engine.sources import WellSource, run_emulator

    source = WellSource(path)
    truth = source.frames(source.splits[0], 0)
    horizon = len(truth.time) - 1
    blocks = list(run_emulator(ENTRY, truth.values[:1], {}, horizon, members=4))
    predicted = torch.from_numpy(np.concatenate(blocks, axis=1))
    scores = ensemble_scores(predicted.double(), torch.from_numpy(truth.values[1:]).double())
    print(f"{ENTRY.name} on {path}: {horizon} frames, VRMSE per field at the last lead:")
    for name, value in zip(truth.channels, scores["vrmse"][-1].tolist(), strict=True):
        print(f"  {name}: {value:.3g}")


if __name__ == "__main__":
    main(sys.argv[1])
