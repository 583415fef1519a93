"""The transformer backbone: tokens, shapes, initial state, equivariance, rotary positions,
FLOP counts and argument checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from emulator_tiny import TINY

from engine.diffusion import Denoiser, edm_coefficients
from engine.emulator import Backbone, network_flops
from engine.emulator.backbone import axial_frequencies, patchify, rotate, unpatchify
from engine.errors import ParameterError


def _randomised(network: Backbone, seed: int = 0) -> Backbone:
    """Every weight random (the zero-initialised gates and output included), so the tests
    below exercise the whole network rather than its identity start."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return network.eval()


def _inputs(batch, frames, channels, grid, label_dim, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, channels, *grid, generator=generator)
    lengths = torch.randint(1, frames, (batch,), generator=generator)
    mask = (torch.arange(frames) < lengths[:, None])[:, :, None, None, None]
    log_sigma = torch.randn(batch, generator=generator)
    label = torch.randn(batch, label_dim, generator=generator)
    return x, log_sigma, label, mask


def test_patchify_orders_tokens_by_frame_then_x_then_y():
    x = torch.arange(2 * 3 * 2 * 4 * 8, dtype=torch.float32).reshape(2, 3, 2, 4, 8)
    tokens = patchify(x, 2)
    assert tokens.shape == (2, 3 * 2 * 4, 2 * 2 * 2)
    # token (t=1, i=1, j=2): frame 1, rows 2..3, columns 4..5, channels outermost
    expected = x[0, 1, :, 2:4, 4:6].reshape(-1)
    torch.testing.assert_close(tokens[0, 1 * 8 + 1 * 4 + 2], expected)
    torch.testing.assert_close(unpatchify(tokens, (3, 2, 4), 2, 2), x)


@pytest.mark.parametrize(
    ("channels", "grid", "patch"),
    [(16, (4, 4), 1), (4, (8, 2), 1), (5, (64, 64), 8)],
)
@pytest.mark.parametrize("noise", [True, False])
def test_shapes_and_zero_output_at_initialisation(channels, grid, patch, noise):
    config = dataclasses.replace(TINY, patch=patch)
    network = Backbone(config, channels, 3, noise_conditioning=noise)
    x, log_sigma, label, mask = _inputs(2, 5, channels, grid, 3)
    output = network(x, log_sigma if noise else None, label, mask)
    assert output.shape == x.shape
    # Zero output projection: the network starts at F = 0, and the denoiser at c_skip·x_t.
    assert torch.count_nonzero(output) == 0
    if noise:
        sigma = torch.tensor([0.3, 4.0])
        x_hat = Denoiser(network)(x, sigma, label)
        torch.testing.assert_close(x_hat, edm_coefficients(sigma)[2][:, None, None, None, None] * x)
    output = _randomised(network)(x, log_sigma if noise else None, label, mask)
    assert output.shape == x.shape and output.abs().mean() > 0.01


@pytest.mark.parametrize("positions", ["rope", "mixed-rope+absolute"])
@pytest.mark.parametrize("noise", [True, False])
def test_permuting_the_batch_permutes_the_outputs(positions, noise):
    """Samples never see each other: ensemble members are independent rows."""
    config = dataclasses.replace(TINY, positions=positions)
    network = _randomised(Backbone(config, 3, 2, noise_conditioning=noise))
    x, log_sigma, label, mask = _inputs(5, 5, 3, (4, 2), 2)
    log_sigma = log_sigma if noise else None
    permutation = torch.tensor([3, 0, 4, 1, 2])
    output = network(x, log_sigma, label, mask)
    permuted = network(
        x[permutation],
        None if log_sigma is None else log_sigma[permutation],
        label[permutation],
        mask[permutation],
    )
    torch.testing.assert_close(permuted, output[permutation], rtol=1e-5, atol=1e-5)


def test_every_input_reaches_the_output():
    """The mask, σ, the label and any single input value all change the output."""
    network = _randomised(Backbone(TINY, 2, 1, noise_conditioning=True))
    x, log_sigma, label, mask = _inputs(2, 5, 2, (4, 4), 1)
    reference = network(x, log_sigma, label, mask)
    changed = [
        network(x, log_sigma, label, ~mask),
        network(x, log_sigma + 1.0, label, mask),
        network(x, log_sigma, label + 1.0, mask),
    ]
    x2 = x.clone()
    x2[:, 0, 0, 0, 0] += 1.0  # one value of one token: attention spreads it everywhere
    changed.append(network(x2, log_sigma, label, mask))
    for output in changed:
        assert (output - reference).abs().max() > 1e-3
    # A far token of another frame also moves: attention is full spatio-temporal.
    assert (changed[-1] - reference)[:, 4, :, 3, 3].abs().max() > 1e-4


def test_rotary_logits_depend_on_relative_offsets_only():
    """q·k after rotation by ω·p equals Re Σ_j q_j conj(k_j) e^{iω_j·(p_q − p_k)}, written
    here with complex numbers, so shifting both positions leaves it unchanged."""
    generator = torch.Generator().manual_seed(0)
    dim, pairs = 12, 6
    q, k = torch.randn(2, dim, generator=generator, dtype=torch.float64)
    frequencies = torch.randn(3, pairs, generator=generator, dtype=torch.float64)

    def rotated_logit(p_q, p_k):
        angles = torch.stack(
            [torch.tensor(p, dtype=torch.float64) @ frequencies for p in (p_q, p_k)]
        )
        rq = rotate(q, angles[0].cos(), angles[0].sin())
        rk = rotate(k, angles[1].cos(), angles[1].sin())
        return float(rq @ rk)

    qc = torch.complex(q[:pairs], q[pairs:])
    kc = torch.complex(k[:pairs], k[pairs:])
    for p_q, p_k in [((1, 2, 3), (0, 0, 0)), ((4, 0, 1), (2, 3, 3)), ((0, 5, 2), (1, 1, 1))]:
        offset = torch.tensor(p_q, dtype=torch.float64) - torch.tensor(p_k, dtype=torch.float64)
        expected = (
            (
                qc
                * kc.conj()
                * torch.polar(torch.ones(pairs, dtype=torch.float64), offset @ frequencies)
            )
            .sum()
            .real
        )
        assert rotated_logit(p_q, p_k) == pytest.approx(float(expected), abs=1e-12)
        shifted = rotated_logit(tuple(a + 7 for a in p_q), tuple(a + 7 for a in p_k))
        assert shifted == pytest.approx(float(expected), abs=1e-12)


def test_axial_frequencies_split_pairs_between_axes():
    table = axial_frequencies(8)  # 2 pairs per axis, 2 left unrotated
    assert table.shape == (3, 8)
    torch.testing.assert_close(table[0, :2], torch.tensor([1.0, 0.1]))
    assert torch.count_nonzero(table[:, :2]) == 2 and torch.count_nonzero(table[1, 2:4]) == 2
    assert torch.count_nonzero(table[:, 6:]) == 0
    assert (torch.count_nonzero(table, dim=0) <= 1).all()  # each pair turns along one axis


def test_learned_and_fixed_rotary_frequencies():
    mixed = Backbone(TINY, 2, 1, noise_conditioning=True)
    fixed = Backbone(dataclasses.replace(TINY, positions="rope"), 2, 1, noise_conditioning=True)
    learned = [n for n, _ in mixed.named_parameters() if n.endswith("frequencies")]
    assert len(learned) == TINY.depth
    # Both start from the same axial table; only the learned one is trained and saved.
    torch.testing.assert_close(
        mixed.blocks[0].attention.frequencies.data[:, :1], fixed.blocks[0].attention.frequencies
    )
    assert not any(n.endswith("frequencies") for n in fixed.state_dict())


def test_flops_match_a_hand_count():
    config = dataclasses.replace(TINY, positions="rope")
    b, c, grid, p_label = 3, 4, (8, 2), 5
    n, w, cd, r = config.window * grid[0] * grid[1], config.width, config.cond_dim, 4
    per_block = 2 * b * n * (3 * w * w + w * w + 2 * r * w * w) + 4 * b * n * n * w
    per_block += 2 * b * cd * 6 * w
    total = config.depth * per_block + 2 * b * n * (2 * c * w + w * c) + 2 * b * cd * 2 * w
    label_mlp = 2 * b * (p_label * cd + cd * cd)
    noise_mlp = 2 * b * 2 * cd * cd
    count = network_flops(config, channels=c, grid=grid, label_dim=p_label, batch=b)
    assert count == total + label_mlp + noise_mlp
    deterministic = network_flops(
        config, channels=c, grid=grid, label_dim=p_label, batch=b, noise_conditioning=False
    )
    assert deterministic == total + label_mlp


def test_bad_arguments():
    network = Backbone(TINY, 2, 1, noise_conditioning=True)
    x, log_sigma, label, mask = _inputs(2, 5, 2, (4, 4), 1)
    with pytest.raises(ParameterError, match=r"frames\.shape"):
        network(x[:, :, :1], log_sigma, label, mask)
    with pytest.raises(ParameterError, match="log_sigma"):
        network(x, None, label, mask)
    with pytest.raises(ParameterError, match=r"label\.shape"):
        network(x, log_sigma, label[:, :0], mask)
    deterministic = Backbone(TINY, 2, 0, noise_conditioning=False)
    with pytest.raises(ParameterError, match="log_sigma"):
        deterministic(x, log_sigma, None, mask)
    assert deterministic(x, None, None, mask).shape == x.shape  # no label at all is fine
    pixel = Backbone(dataclasses.replace(TINY, patch=8), 2, 1, noise_conditioning=True)
    with pytest.raises(ParameterError, match="patch size 8"):
        pixel(torch.zeros(1, 5, 2, 64, 60), log_sigma[:1], label[:1], None)
    with pytest.raises(ParameterError, match="channels"):
        Backbone(TINY, 0, 1, noise_conditioning=True)
