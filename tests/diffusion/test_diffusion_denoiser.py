"""EDM preconditioning, masked context, the training loss and the context-length law."""

from __future__ import annotations

import math

import pytest
import torch
from diffusion_gaussian import (
    GaussianData,
    PosteriorMeanNetwork,
    assert_standard_normal_moments,
)
from torch import nn

from engine.diffusion import (
    Denoiser,
    diffusion_loss,
    edm_coefficients,
    get_sampler,
    leading_context_mask,
    sample_context_lengths,
)
from engine.errors import ParameterError


class Recorder(nn.Module):
    """Returns a constant F and keeps what it was given."""

    def __init__(self, value: float = 0.5):
        super().__init__()
        self.value = value
        self.seen: dict[str, object] = {}

    def forward(self, x_in, log_sigma, condition, context_mask):
        self.seen = dict(
            x_in=x_in, log_sigma=log_sigma, condition=condition, context_mask=context_mask
        )
        return torch.full_like(x_in, self.value)


def test_edm_coefficients_for_unit_data_variance():
    sigma = torch.tensor([1e-3, 0.5, 1.0, 2.0, 1e3], dtype=torch.float64)
    c_in, c_out, c_skip = edm_coefficients(sigma)
    torch.testing.assert_close(c_in, 1 / torch.sqrt(1 + sigma**2))
    torch.testing.assert_close(c_out, sigma / torch.sqrt(1 + sigma**2))
    torch.testing.assert_close(c_skip, 1 / (1 + sigma**2))
    # Why these values: for unit-variance x and x_t = x + σε, both the network input
    # c_in·x_t and its regression target (x − c_skip·x_t)/c_out have unit variance.
    ones = torch.ones_like(sigma)
    torch.testing.assert_close(c_in**2 * (1 + sigma**2), ones)
    torch.testing.assert_close(((1 - c_skip) ** 2 + c_skip**2 * sigma**2) / c_out**2, ones)


def test_forward_matches_hand_computation_and_passes_log_sigma():
    network = Recorder(0.5)
    x_t = torch.tensor([[1.0, -2.0], [4.0, 0.0]], dtype=torch.float64)
    sigma = torch.tensor([0.5, 2.0], dtype=torch.float64)
    label = torch.tensor([[3.0], [4.0]])
    x_hat = Denoiser(network)(x_t, sigma, label)
    # c_skip = 0.8, 0.2; c_out = 0.5/√1.25, 2/√5
    expected = torch.tensor(
        [
            [0.8 * 1.0 + 0.5 / math.sqrt(1.25) * 0.5, 0.8 * -2.0 + 0.5 / math.sqrt(1.25) * 0.5],
            [0.2 * 4.0 + 2 / math.sqrt(5) * 0.5, 0.0 + 2 / math.sqrt(5) * 0.5],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(x_hat, expected, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(network.seen["x_in"], x_t / torch.sqrt(1 + sigma[:, None] ** 2))
    torch.testing.assert_close(network.seen["log_sigma"], sigma.log())
    assert network.seen["condition"] is label and network.seen["context_mask"] is None


def test_scalar_sigma_is_broadcast_to_the_batch():
    network = Recorder()
    x_t = torch.randn(3, 2, 4)
    Denoiser(network)(x_t, 2.0)
    assert network.seen["log_sigma"].shape == (3,)
    torch.testing.assert_close(network.seen["log_sigma"], torch.full((3,), math.log(2.0)))
    Denoiser(network)(x_t, torch.tensor(2.0))
    assert network.seen["log_sigma"].shape == (3,)


def test_network_sees_clean_context_and_prediction_is_clamped():
    network = Recorder(7.0)
    x_t = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0)) * 40
    context = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(1))
    mask = leading_context_mask(torch.tensor([1, 3]), 5)[:, :, None]  # (B, frames, 1)
    x_hat = Denoiser(network)(x_t, torch.tensor([40.0, 0.01]), None, context, mask)
    full = mask.expand_as(x_t)
    assert torch.equal(network.seen["x_in"][full], context[full])  # bit for bit
    assert torch.equal(x_hat[full], context[full])
    assert network.seen["context_mask"] is mask
    # unknown entries untouched by the context: c_skip x_t + c_out·7
    sigma = torch.tensor([40.0, 0.01])[:, None, None]
    free = x_t / (1 + sigma**2) + sigma / torch.sqrt(1 + sigma**2) * 7.0
    torch.testing.assert_close(x_hat[~full], free[~full])
    torch.testing.assert_close(network.seen["x_in"][~full], (x_t / torch.sqrt(1 + sigma**2))[~full])


def _hand_loss_network():
    """F = −x_in/σ + k√(1+σ²)/σ makes D ≡ k whatever the noise: c_skip x_t + c_out F = k."""

    class ConstantPrediction(nn.Module):
        def forward(self, x_in, log_sigma, condition, context_mask):
            sigma = log_sigma.exp()[:, None]
            return -x_in / sigma + 0.5 * torch.sqrt(1 + sigma**2) / sigma

    return Denoiser(ConstantPrediction())


def test_loss_weighting_matches_hand_computation():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 1.0, 2.0]], dtype=torch.float64)
    sigmas = torch.tensor([0.5, 2.0], dtype=torch.float64)  # 1/v = (1+σ²)/σ² = 5, 1.25
    mask = torch.tensor([[True, False, False, False], [True, True, False, False]])
    generator = torch.Generator().manual_seed(0)
    denoiser = _hand_loss_network()
    # D ≡ 0.5. Context entries contribute 0 but count in the mean (8 entries):
    # row 0: 5·(1.5² + 2.5² + 3.5²) = 103.75; row 1: 1.25·(0.5² + 1.5²) = 3.125
    loss = diffusion_loss(denoiser, x, None, mask, sigmas=sigmas, generator=generator)
    assert loss.item() == pytest.approx((103.75 + 3.125) / 8, rel=1e-12)
    # without context every entry counts: row 0 adds 5·0.5², row 1 adds 1.25·(0.5² + 1.5²)
    loss = diffusion_loss(denoiser, x, sigmas=sigmas, generator=generator)
    assert loss.item() == pytest.approx((105.0 + 6.25) / 8, rel=1e-12)


def test_loss_draws_reproducibly_and_trains_a_network():
    torch.manual_seed(0)
    linear = nn.Linear(4, 4)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = linear

        def forward(self, x_in, log_sigma, condition, context_mask):
            return self.linear(x_in) + log_sigma[:, None]

    denoiser = Denoiser(Net())
    x = torch.randn(8, 4)
    mask = leading_context_mask(sample_context_lengths(8, torch.Generator().manual_seed(3)), 4)
    losses = [
        diffusion_loss(denoiser, x, None, mask, generator=torch.Generator().manual_seed(5))
        for _ in range(2)
    ]
    assert torch.equal(losses[0], losses[1])
    losses[0].backward()
    assert linear.weight.grad is not None and torch.isfinite(linear.weight.grad).all()
    assert linear.weight.grad.abs().sum() > 0


def test_context_lengths_follow_poisson_mod_four():
    n = 40000
    lengths = sample_context_lengths(n, torch.Generator().manual_seed(0))
    assert lengths.dtype == torch.int64 and lengths.min() >= 1 and lengths.max() <= 4
    pmf = [math.exp(-1) / math.factorial(j) for j in range(40)]
    for k in range(1, 5):
        expected = sum(p for j, p in enumerate(pmf) if j % 4 == k - 1)
        observed = (lengths == k).double().mean().item()
        assert abs(observed - expected) <= 4.5 * math.sqrt(expected * (1 - expected) / n)
        assert round(expected, 2) == [0.38, 0.37, 0.18, 0.06][k - 1]


def test_leading_context_mask():
    mask = leading_context_mask(torch.tensor([0, 1, 4]), 5)
    expected = torch.tensor([[0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(mask, expected)


# --- conditional sampling through the whole masked pipeline ---------------------------

WINDOW = GaussianData(
    mean=(0.5, -0.2, 0.0, 0.3, 1.0),
    covariance=tuple(tuple(0.8 ** abs(i - j) for j in range(5)) for i in range(5)),
)


def _conditional_posterior_mean(x_t, x_in, sigma, context_mask):
    """E[x | x_t on the unknown entries, x = y on the known ones] for the Gaussian window.

    It reads y from the network input, so it is only right if the network sees the clean
    context; x_t on known entries is ignored, as in the trained model.
    """
    known = context_mask.reshape(-1, 5)[0]
    mean, cov = WINDOW.mean, WINDOW.cov
    gain = cov[~known][:, known] @ torch.linalg.inv(cov[known][:, known])
    prior_mean = mean[~known] + (x_in[:, known] - mean[known]) @ gain.T
    prior_cov = cov[~known][:, ~known] - gain @ cov[known][:, ~known]
    values, basis = torch.linalg.eigh(prior_cov)
    shrink = values / (values + sigma**2)  # (B, unknown)
    posterior = prior_mean + ((x_t[:, ~known] - prior_mean) @ basis * shrink) @ basis.T
    out = x_t.clone()
    out[:, ~known] = posterior
    return out


@pytest.mark.parametrize("sampler_name", ["ab", "ddpm"])
def test_masked_sampling_returns_context_exactly_and_the_conditional_law(sampler_name):
    """Ideal masked-context network + hard conditioning: known entries come back exactly,
    the unknown ones follow N(μ_u + Σ_uk Σ_kk⁻¹(y − μ_k), Σ_uu − Σ_uk Σ_kk⁻¹ Σ_ku)."""
    n, k = 8192, 2
    y = torch.tensor([1.3, 0.4, 0.0, 0.0, 0.0], dtype=torch.float64)
    mask = torch.arange(5) < k
    generator = torch.Generator().manual_seed(4)
    x1 = 1e3 * torch.randn(n, 5, generator=generator, dtype=torch.float64)
    network = PosteriorMeanNetwork(_conditional_posterior_mean)
    steps = 128 if sampler_name == "ab" else 1024
    sampler = get_sampler(sampler_name, steps=steps)
    with torch.inference_mode():
        x = Denoiser(network).sample(sampler, x1, None, y.expand(n, 5), mask[None], generator)
    assert network.calls == sampler.nfe()
    assert torch.equal(x[:, :k], y[:k].expand(n, k))
    mean, cov = WINDOW.mean, WINDOW.cov
    gain = cov[k:, :k] @ torch.linalg.inv(cov[:k, :k])
    conditional = GaussianData(
        mean=(mean[k:] + gain @ (y[:k] - mean[:k])).tolist(),
        covariance=(cov[k:, k:] - gain @ cov[:k, k:]).tolist(),
    )
    # Bias allowance as in the sampler moment tests (AB3 at 128 steps, DDPM at 1024).
    assert_standard_normal_moments(conditional.whiten(x[:, k:]), extra_mean=0.003, extra_cov=0.012)


def test_unconditional_sampling_returns_the_sampler_state():
    """Without a mask, Denoiser.sample is the sampler on the denoiser, nothing more."""
    data = GaussianData()
    network = PosteriorMeanNetwork(lambda x_t, x_in, sigma, mask: data.denoise(x_t, sigma))
    x1 = 1e3 * torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sampler = get_sampler("heun", steps=32)
    via_denoiser = Denoiser(network).sample(sampler, x1)
    direct = sampler.sample(data.denoise, x1)
    torch.testing.assert_close(via_denoiser, direct, rtol=1e-10, atol=1e-10)


class SubspaceNetwork(nn.Module):
    """The exact denoiser for data that is N(0, 1) in its first `rank` coordinates and 0 in
    the others, written through an output layer that reaches only the first `rank`.

    Stands in for a ViT whose tokens hold more values than it is wide (16x16 pixel patches
    of 4 fields = 1024 values through width 128): it cannot write the other coordinates.
    """

    def __init__(self, rank: int, prediction: str):
        super().__init__()
        self.rank, self.prediction = rank, prediction

    def forward(self, x_in, log_sigma, condition, context_mask):
        sigma = log_sigma.exp()[:, None]
        x_t = x_in * torch.sqrt(1 + sigma**2)
        posterior_mean = x_t / (1 + sigma**2)  # E[x | x_t] for x ~ N(0, 1)
        _, c_out, c_skip = edm_coefficients(sigma)
        wanted = (
            posterior_mean
            if self.prediction == "data"
            else ((posterior_mean - c_skip * x_t) / c_out)
        )
        out = torch.zeros_like(x_in)
        out[:, : self.rank] = wanted[:, : self.rank]
        return out


def test_data_prediction_returns_the_network_output_and_floors_the_loss_weight():
    network = Recorder(0.5)
    x_t = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    x_hat = Denoiser(network, prediction="data")(x_t, 2.0)
    torch.testing.assert_close(x_hat, torch.full_like(x_t, 0.5))
    torch.testing.assert_close(network.seen["x_in"], x_t / math.sqrt(5.0))
    # Loss: (0.5 − x)² / max(v, 0.01); at σ = 0.05, v = 0.0025/1.0025 < 0.01 is floored.
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    for sigma, weight in ((2.0, 5.0 / 4.0), (0.05, 1 / 0.01)):
        loss = diffusion_loss(
            Denoiser(Recorder(0.5), prediction="data"),
            x,
            sigmas=torch.tensor([sigma], dtype=torch.float64),
            generator=torch.Generator().manual_seed(0),
        )
        torch.testing.assert_close(
            loss, torch.tensor((0.25 + 0.25) / 2 * weight, dtype=torch.float64)
        )


def test_unknown_prediction_is_refused_with_the_choices():
    with pytest.raises(ParameterError, match=r"prediction.*'v'.*edm, data"):
        Denoiser(Recorder(), prediction="v")


@pytest.mark.parametrize("prediction, expected_std", [("edm", 1.0), ("data", 1e-3)])
def test_unreachable_directions_keep_unit_noise_with_the_edm_skip(prediction, expected_std):
    """Why the pixel diffusion baseline predicts the data (docs/emulators.md).

    In coordinates the output layer cannot reach, D = c_skip·x_t (EDM) and the probability-
    flow ODE dx/dσ = (x − D)/σ = σ x/(1+σ²) scales x by √(1+σ²): from σ_max = 1e3 down to
    σ_min = 1e-3, noise of std σ_max ends with std ≈ 1, as large as the data. With D = 0
    there (data prediction) dx/dσ = x/σ scales it by σ and it ends at σ_min.
    """
    data_dims, rank = 256, 32
    denoiser = Denoiser(SubspaceNetwork(rank, prediction), prediction=prediction)
    sampler = get_sampler("ab", steps=16, order=3)
    generator = torch.Generator().manual_seed(0)
    x1 = sampler.schedule.sigma_max * torch.randn(
        64, data_dims, generator=generator, dtype=torch.float64
    )
    x = denoiser.sample(sampler, x1, generator=generator)
    assert x[:, :rank].std().item() == pytest.approx(1.0, rel=0.1)  # the data's law
    assert x[:, rank:].std().item() == pytest.approx(expected_std, rel=0.1)  # data: 0
