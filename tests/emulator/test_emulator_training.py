"""Tiny emulators learn a tiny dynamical system through the shared Trainer.

The data (emulator_tiny.py) translate random frames one cell per frame on a periodic
4x4 grid. Persistence (repeating the last context frame) has a mean squared error of
about 2 there, predicting zeros about 1. The models must get far below both on held-out
trajectories, i.e. have learned the rule (a space-time diagonal in attention), not the
training set.
"""

from __future__ import annotations

import pytest
import torch
from emulator_tiny import CHANNELS, GRID, TINY, translating_trajectories

from engine.diffusion import get_sampler
from engine.emulator import Emulator, WindowSource, build_emulator, emulator_loss
from engine.training import TrainConfig, Trainer


def _train(kind: str, steps: int, lr: float, label_sets_direction: bool, run_dir) -> Emulator:
    trajectories, labels = translating_trajectories(
        64, 8, seed=0, label_sets_direction=label_sets_direction
    )
    torch.manual_seed(0)
    model = build_emulator(kind, TINY, CHANNELS, GRID, 1, "latent")
    config = TrainConfig(
        steps=steps,
        batch_size=32,
        lr=lr,
        warmup_steps=10,
        checkpoint_every=0,
        log_every=50,
        seed=0,
        device="cpu",
    )
    source = WindowSource(trajectories, labels, window=TINY.window)
    result = Trainer(model, emulator_loss, source, config, run_dir, progress=False).fit()
    assert result.step == steps and result.skipped_steps == 0
    return model.eval()


def _errors(model: Emulator, label_sets_direction: bool, flip_labels: bool = False):
    """(model MSE, persistence MSE) over held-out trajectories, for contexts 1 and 2."""
    trajectories, labels = translating_trajectories(
        32, 5, seed=1, label_sets_direction=label_sets_direction
    )
    if flip_labels:
        labels = -labels
    results = []
    for frames in (1, 2):
        context, target = trajectories[:, :frames], trajectories[:, frames:]
        options = {}
        if model.kind == "diffusion":
            options = {
                "sampler": get_sampler("ab", steps=8, order=3),
                "generator": torch.Generator().manual_seed(0),
            }
        with torch.inference_mode():
            prediction = model.generate(context, labels, **options)
        persistence = (context[:, -1:] - target).square().mean().item()
        results.append(((prediction - target).square().mean().item(), persistence))
    return results


@pytest.mark.slow
def test_deterministic_emulator_learns_label_dependent_translation(tmp_path):
    """Measured: MSE 0.014 / 0.022 (contexts 1 / 2) against persistence 1.6 / 2.1 after 120
    steps, about 4 s (0.002-0.004 after 200); with the labels flipped (the other direction)
    the error is as bad as persistence, 1.6 / 1.4: the label is what sets the direction."""
    model = _train("deterministic", 120, 1e-2, True, tmp_path)
    for mse, persistence in _errors(model, True):
        print(f"deterministic: mse {mse:.4f}, persistence {persistence:.4f}")
        assert persistence > 1.4
        assert mse < 0.05 * persistence
    for mse, persistence in _errors(model, True, flip_labels=True):
        print(f"deterministic, flipped labels: mse {mse:.4f}")
        assert mse > 0.5 * persistence


@pytest.mark.slow
def test_diffusion_emulator_learns_translation(tmp_path):
    """Measured: MSE 0.048 / 0.041 (contexts 1 / 2) against persistence 1.7 / 2.2 after 200
    steps, about 5 s (0.003 after 300), each member drawn with 8 AB3 steps."""
    model = _train("diffusion", 200, 5e-3, False, tmp_path)
    for mse, persistence in _errors(model, False):
        print(f"diffusion: mse {mse:.4f}, persistence {persistence:.4f}")
        assert persistence > 1.4
        assert mse < 0.1 * persistence
