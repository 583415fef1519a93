"""Diffusion and deterministic emulators: generate() contract, randomness, losses, errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from emulator_tiny import TINY

from engine.diffusion import get_sampler
from engine.emulator import (
    DeterministicEmulator,
    DiffusionEmulator,
    build_emulator,
    emulator_flops,
)
from engine.errors import ParameterError

SAMPLER = get_sampler("ab", steps=4, order=3)
LAYOUTS = [  # (channels, grid, patch, space)
    (16, (4, 4), 1, "latent"),
    (4, (8, 2), 1, "latent"),
    (5, (64, 64), 8, "pixel"),
]


def _emulator(kind, channels=2, grid=(4, 4), label_dim=3, patch=1, space="latent"):
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, patch=patch)
    emulator = build_emulator(kind, config, channels, grid, label_dim, space)
    with torch.no_grad():  # leave the identity start, so outputs depend on the inputs
        for parameter in emulator.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return emulator.eval()


def _context(batch, frames, channels=2, grid=(4, 4), label_dim=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    context = torch.randn(batch, frames, channels, *grid, generator=generator)
    return context, torch.randn(batch, label_dim, generator=generator)


def _kwargs(kind, seed=0):
    if kind == "deterministic":
        return {}
    return {"sampler": SAMPLER, "generator": torch.Generator().manual_seed(seed)}


@pytest.mark.parametrize(("channels", "grid", "patch", "space"), LAYOUTS)
@pytest.mark.parametrize("kind", ["diffusion", "deterministic"])
def test_generate_returns_only_the_new_frames(kind, channels, grid, patch, space):
    emulator = _emulator(kind, channels, grid, 3, patch, space)
    assert (emulator.kind, emulator.space, emulator.window) == (kind, space, 5)
    for frames in (1, 4) if patch == 1 else (2,):
        context, label = _context(2, frames, channels, grid)
        original = context.clone()
        with torch.inference_mode():
            output = emulator.generate(context, label, **_kwargs(kind))
        assert output.shape == (2, 5 - frames, channels, *grid)
        assert torch.isfinite(output).all()
        torch.testing.assert_close(context, original, rtol=0, atol=0)  # not touched


@pytest.mark.parametrize("kind", ["diffusion", "deterministic"])
def test_the_network_always_sees_the_clean_context(kind):
    """Hard conditioning: at every network call the first c frames are the context exactly
    (after the denoiser's c_in, which it skips on the context) and flagged by the mask."""
    emulator = _emulator(kind)
    network = emulator.denoiser.network if kind == "diffusion" else emulator.network
    seen = []
    network.register_forward_hook(lambda module, args, output: seen.append(args))
    context, label = _context(3, 2)
    with torch.inference_mode():
        emulator.generate(context, label, **_kwargs(kind))
    assert len(seen) == emulator.nfe(SAMPLER if kind == "diffusion" else None)
    for x_in, _, condition, mask in seen:
        torch.testing.assert_close(x_in[:, :2], context, rtol=0, atol=0)
        assert mask.expand(x_in.shape)[:, :2].all() and not mask.expand(x_in.shape)[:, 2:].any()
        torch.testing.assert_close(condition, label, rtol=0, atol=0)
    if kind == "deterministic":
        assert torch.count_nonzero(seen[0][0][:, 2:]) == 0  # frames to generate are zeros


def test_diffusion_members_are_reproducible_and_independent():
    emulator = _emulator("diffusion")
    context, label = _context(1, 1)
    members = 4
    context, label = context.expand(members, -1, -1, -1, -1), label.expand(members, -1)
    with torch.inference_mode():
        first = emulator.generate(context, label, **_kwargs("diffusion", seed=1))
        again = emulator.generate(context, label, **_kwargs("diffusion", seed=1))
        other = emulator.generate(context, label, **_kwargs("diffusion", seed=2))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert (first - other).abs().amax(dim=(1, 2, 3, 4)).min() > 1e-3
    # Same context and label in every row, yet every member differs (fresh noise per row).
    spread = (first[:, None] - first[None]).abs().amax(dim=(2, 3, 4, 5))
    assert spread[~torch.eye(members, dtype=torch.bool)].min() > 1e-3


def test_deterministic_rows_are_independent_and_ignore_generators():
    emulator = _emulator("deterministic")
    context, label = _context(5, 2)
    permutation = torch.tensor([2, 4, 0, 3, 1])
    with torch.inference_mode():
        output = emulator.generate(context, label)
        permuted = emulator.generate(context[permutation], label[permutation])
        seeded = emulator.generate(context, label, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(permuted, output[permutation], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(seeded, output, rtol=0, atol=0)


def test_nfe():
    diffusion, deterministic = _emulator("diffusion"), _emulator("deterministic")
    assert diffusion.nfe() == 16  # the paper's default: 16-step AB3
    assert diffusion.nfe(get_sampler("heun", steps=8)) == 16
    assert diffusion.nfe(get_sampler("pc", steps=8, corrections=2)) == 24
    assert deterministic.nfe() == 1
    with pytest.raises(ParameterError, match="sampler"):
        deterministic.nfe(SAMPLER)
    with pytest.raises(ParameterError, match="sampler"):
        deterministic.generate(*_context(1, 1), sampler=SAMPLER)


def test_losses_at_initialisation_have_known_values():
    """Both networks start at F = 0. The deterministic model then predicts zeros: its loss
    is the mean square of the generated frames. The denoiser returns c_skip·x_t, whose
    EDM-weighted error has expectation exactly 1 per entry for unit-variance data, and the
    context entries count as zeros in the mean: the loss is about (L - k)/L."""
    generator = torch.Generator().manual_seed(0)
    window = torch.randn(512, 5, 2, 4, 4, generator=generator)
    batch = {
        "window": window,
        "label": torch.zeros(512, 1),
        "context_length": torch.full((512,), 2),
    }
    config = dataclasses.replace(TINY, dropout=0.0)
    deterministic = DeterministicEmulator(config, 2, (4, 4), 1)
    expected = window[:, 2:].square().mean()
    torch.testing.assert_close(deterministic(batch), expected)
    diffusion = DiffusionEmulator(config, 2, (4, 4), 1)
    loss = diffusion.loss(batch, generator=torch.Generator().manual_seed(1))
    assert loss.item() == pytest.approx(3 / 5, rel=0.05)
    # With k drawn from the paper's law, E[(L - k)/L] = 1 - E[k]/5, E[k] ≈ 1.92.
    free = {"window": window, "label": torch.zeros(512, 1)}
    loss = diffusion.loss(free, generator=torch.Generator().manual_seed(2))
    assert loss.item() == pytest.approx(1 - 1.92 / 5, rel=0.06)


def test_forward_is_the_training_loss_and_hides_the_targets():
    """The deterministic network is trained on exactly what generate() gives it: the k
    context frames, zeros after them, and the mask; every parameter gets a gradient."""
    emulator = _emulator("deterministic").train()
    seen = []
    emulator.network.register_forward_hook(lambda module, args, output: seen.append(args))
    window = torch.randn(4, 5, 2, 4, 4)
    lengths = torch.tensor([1, 2, 3, 4])
    loss = emulator({"window": window, "label": torch.zeros(4, 3), "context_length": lengths})
    loss.backward()
    assert loss.ndim == 0 and all(p.grad is not None for p in emulator.parameters())
    x_in, _, _, mask = seen[0]
    for row, k in enumerate(lengths.tolist()):
        torch.testing.assert_close(x_in[row, :k], window[row, :k], rtol=0, atol=0)
        assert torch.count_nonzero(x_in[row, k:]) == 0
        assert mask[row, :k].all() and not mask[row, k:].any()


@pytest.mark.parametrize("kind", ["diffusion", "deterministic"])
def test_bad_inputs_name_the_problem(kind):
    emulator = _emulator(kind)
    context, label = _context(2, 2)
    generate = emulator.generate
    with pytest.raises(ParameterError, match=r"context frames.*\[1, 4\]"):
        generate(*_context(2, 5), **_kwargs(kind))  # c >= window: nothing to generate
    with pytest.raises(ParameterError, match="context frames"):
        generate(context[:, :0], label, **_kwargs(kind))
    with pytest.raises(ParameterError, match=r"label\.shape.*\(2, 3\)"):
        generate(context, label[:, :2], **_kwargs(kind))
    with pytest.raises(ParameterError, match=r"label\.shape"):
        generate(context, label[:1], **_kwargs(kind))  # batch mismatch
    with pytest.raises(ParameterError, match=r"context\.shape.*2, 4, 4"):
        generate(torch.zeros(2, 2, 3, 4, 4), label, **_kwargs(kind))  # wrong channels
    with pytest.raises(ParameterError, match=r"context\.shape"):
        generate(torch.zeros(2, 2, 2, 4, 8), label, **_kwargs(kind))  # wrong grid
    with pytest.raises(ParameterError, match=r"context\.shape"):
        generate(torch.zeros(2, 2, 4, 4), label, **_kwargs(kind))
    with pytest.raises(ParameterError, match=r"context\.dtype"):
        generate(torch.zeros(2, 2, 2, 4, 4, dtype=torch.long), label, **_kwargs(kind))
    window = torch.zeros(2, 5, 2, 4, 4)
    with pytest.raises(ParameterError, match="context_length"):
        emulator.loss({"window": window, "label": label, "context_length": torch.tensor([0, 2])})
    with pytest.raises(ParameterError, match="context_length"):
        emulator.loss({"window": window, "label": label, "context_length": torch.tensor([5, 2])})
    with pytest.raises(ParameterError, match=r"window\.shape"):
        emulator.loss({"window": window[:, :4], "label": label})
    with pytest.raises(ParameterError, match="batch keys"):
        emulator.loss({"frames": window, "label": label})


def test_bad_constructor_arguments():
    with pytest.raises(ParameterError, match="space"):
        DiffusionEmulator(TINY, 2, (4, 4), 1, "spectral")
    with pytest.raises(ParameterError, match="grid"):
        DiffusionEmulator(dataclasses.replace(TINY, patch=8), 2, (64, 60), 1, "pixel")
    with pytest.raises(ParameterError, match="emulator kind"):
        build_emulator("gan", TINY, 2, (4, 4), 1, "latent")
    with pytest.raises(ParameterError, match="sampler"):
        _emulator("diffusion").generate(*_context(1, 1), sampler="ab")


def test_emulator_flops_count_one_network_evaluation():
    """The deterministic network lacks only the noise MLP (two cond_dim² layers)."""
    diffusion, deterministic = _emulator("diffusion"), _emulator("deterministic")
    batch, width = 4, TINY.cond_dim
    difference = emulator_flops(diffusion, batch) - emulator_flops(deterministic, batch)
    assert difference == 2 * batch * 2 * width * width
    assert emulator_flops(diffusion, batch) == 4 * emulator_flops(diffusion, 1)
