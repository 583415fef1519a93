"""Kolmogorov flow: forced 2D incompressible Navier–Stokes on the periodic square [0, 2π]².

    ∂ω/∂t + u·∇ω = ν∇²ω − αω − A k_f cos(k_f y),     ν = 1/Re,

the curl of the body force A sin(k_f y) x̂, with linear drag α. The forcing wavenumber
k_f = 4, drag α = 0.1 and amplitude A = 1 are fixed constants of the dataset (Kochkov et
al. 2021); only the Reynolds number conditions the emulator.

Scheme: pseudo-spectral in vorticity form (ψ̂ = ω̂/|k|², u = ∂ψ/∂y, v = −∂ψ/∂x), 2/3-rule
dealiasing, ETDRK4 (Cox & Matthews 2002) with the φ-function coefficients evaluated by
the Kassam & Trefethen (2005) contour integral in float64. The linear part −ν|k|² − α is
integrated exactly, so the time step is set by advection alone: a CFL estimate per
trajectory at the start of every frame interval.

Batch independence: every trajectory steps with its own dt and coefficients, and all
FFTs run along the contiguous last axis (a 1D real FFT along y, a transpose, a 1D complex
FFT along x). torch's 2D FFTs on CPU take a different path for a batch of one than for
larger batches, which changes round-off and, in a chaotic flow, the whole trajectory;
the 1D transforms give bit-identical rows whatever the batch (checked on CPU; cuFFT
makes no such promise). Spectral arrays therefore use the layout (..., Ny//2 + 1, Nx).

Why these settings (measured on the default 64² grid, float32, frames every 0.2):
- Training range Re ∈ [100, 500]. Against 128² runs from the same seeds, the enstrophy
  spectrum agrees within 11% up to k = 16 (3/4 of the 2/3 cutoff) for Re ≤ 500, while at
  Re = 1000 it is 1.6× too high at k = 16 and 2.3× at k = 20: enstrophy piles up at the
  cutoff. (Time-mean energy and enstrophy agree within 7%, the sampling noise of one
  25-unit window, at every Re up to 1000, so they do not discriminate.) Running at 128²
  and downsampling would cost 6× the CPU time (2.2 s against 0.36 s per trajectory on one
  core: finer grid and half the CFL step), 7 minutes of one core for the default 200
  trajectories instead of 1.2, so the range stops where 64² still resolves the flow.
- Chaotic across it: largest Lyapunov exponent ≈ 0.30 (Re 100), 0.40 (220), 0.44 (500)
  per time unit; the enstrophy fluctuates by 14–18% rms around 7–10, far below the laminar
  flow's 59–230, and never relaxes to it. The laminar flow is stable only below Re ≈ 10–15.
- Spin-up t_start = 10: ensemble-mean energy and enstrophy are stationary from t ≈ 6.
- frame_dt = 0.2: frames differ by 24% (Re 100) to 52% (Re 500) in rms vorticity, and
  the emulator's 4-frame horizon (0.8) is a third of a Lyapunov time, so it is still
  predictable; 101 frames span 6–9 Lyapunov times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

import torch

from engine.errors import ParameterError, SolverDivergedError
from engine.systems.base import (
    Conditions,
    FieldSpec,
    ParameterSpec,
    System,
    SystemSpec,
)

FORCING_WAVENUMBER = 4
DRAG = 0.1
FORCING_AMPLITUDE = 1.0
CONTOUR_POINTS = 32
# dt · max(|u|/dx + |v|/dy). The fastest advective rate is ≈ k_max(|u| + |v|) with
# k_max·dx = 2π/3, so dt|λ| ≈ 2.1·COURANT against ETDRK4's ≈ 2.8 on the imaginary axis.
# At 1.0 the error after 4 frames is 8e-4 (Re 500) relative to a 8× smaller step, and
# runs stay stable up to 2.0.
COURANT = 1.0
# More sub-steps than this in one frame interval means the velocity has exploded.
MAX_SUBSTEPS = 10_000

# Initial condition: white noise on a fixed coarse grid, band-passed to 1 ≤ |k| ≤ 8, so the
# same seed gives the same initial flow on every grid that resolves it.
_NOISE_GRID = 32
_NOISE_BAND = (1.0, 8.0)
_INITIAL_RMS_VORTICITY = 3.0


class SpectralGrid:
    """Wavenumbers, transforms and dealiasing of a periodic grid in the (ky, kx) layout.

    Fields in physical space are (..., Nx, Ny), index order [x, y]; coefficients are
    normalised ("forward"), so they are the physical Fourier amplitudes whatever the grid.
    """

    def __init__(
        self,
        shape: Sequence[int],
        extent: Sequence[float],
        device: torch.device,
        dtype: torch.dtype,
    ):
        nx, ny = (int(n) for n in shape)
        self.shape, self.extent = (nx, ny), (float(extent[0]), float(extent[1]))
        self.device, self.dtype = device, dtype
        self.complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        mode_x = torch.fft.fftfreq(nx, 1.0 / nx, dtype=torch.float64)
        mode_y = torch.fft.rfftfreq(ny, 1.0 / ny, dtype=torch.float64)
        kx = (2 * math.pi / extent[0]) * mode_x[None, :]
        ky = (2 * math.pi / extent[1]) * mode_y[:, None]
        k2 = kx**2 + ky**2
        # ETDRK4 coefficients depend on |k|² only: computed once per distinct value, in float64.
        self.k2_values, self.k2_index = torch.unique(k2, return_inverse=True)
        self.k2_index_on_device = self.k2_index.to(device)
        inv_k2 = torch.where(k2 > 0, 1.0 / k2, 0.0)
        # 2/3 rule: quadratic products of retained modes alias only onto discarded ones.
        # The mean is dropped too: the net vorticity of a periodic flow is zero.
        keep = (mode_x.abs()[None, :] < nx / 3) & (mode_y[:, None] < ny / 3)
        keep[0, 0] = False

        cdtype = self.complex_dtype

        def put(t: torch.Tensor, kind: torch.dtype) -> torch.Tensor:
            return t.to(device=device, dtype=kind)

        self.dealias = put(keep, dtype)
        # Operators are complex even where real: complex × complex is the fastest product.
        # (û, v̂) = (∂ψ/∂y, −∂ψ/∂x)^ with ψ̂ = ω̂/|k|², stacked along a channel axis.
        self.velocity_operator = put(torch.stack([1j * ky * inv_k2, -1j * kx * inv_k2]), cdtype)
        # Basdevant (1983): u·∇ω = (∂xx − ∂yy)(uv) + ∂xy(v² − u²) for ∇·u = 0, so the
        # dealiased advection costs two inverse and two forward transforms, not 3 + 2.
        # Stored with the minus sign of −u·∇ω folded in, and the 2/3 rule applied.
        self.minus_advection_uv = put((kx**2 - ky**2) * keep, cdtype)
        self.minus_advection_uu_vv = put(-kx * ky * keep, cdtype)

    def coordinates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell-centre coordinates, shaped (Nx, 1) and (1, Ny) for broadcasting."""
        x, y = (
            (torch.arange(n, dtype=torch.float64) + 0.5) * (length / n)
            for n, length in zip(self.shape, self.extent, strict=True)
        )
        return x[:, None].to(self.device, self.dtype), y[None, :].to(self.device, self.dtype)

    def to_spectral(self, field: torch.Tensor) -> torch.Tensor:
        half = torch.fft.rfft(field, dim=-1, norm="forward")
        return torch.fft.fft(half.transpose(-1, -2).contiguous(), dim=-1, norm="forward")

    def to_physical(self, coefficients: torch.Tensor) -> torch.Tensor:
        half = torch.fft.ifft(coefficients, dim=-1, norm="forward")
        return torch.fft.irfft(
            half.transpose(-1, -2).contiguous(), n=self.shape[1], dim=-1, norm="forward"
        )

    def velocity(self, omega_hat: torch.Tensor) -> torch.Tensor:
        """(û, v̂) stacked on a new axis before (ky, kx), from ω̂ via ψ̂ = ω̂/|k|²."""
        return omega_hat.unsqueeze(-3) * self.velocity_operator


@lru_cache(maxsize=16)
def spectral_grid(
    shape: tuple[int, int], extent: tuple[float, float], device: torch.device, dtype: torch.dtype
) -> SpectralGrid:
    """One SpectralGrid per (shape, extent, device, dtype), so coefficient caches hit."""
    return SpectralGrid(shape, extent, device, dtype)


def kolmogorov_forcing(
    grid: SpectralGrid,
    wavenumber: int = FORCING_WAVENUMBER,
    amplitude: float = FORCING_AMPLITUDE,
) -> torch.Tensor:
    """ĝ for the vorticity source g = −A k_f cos(k_f y), the curl of A sin(k_f y) x̂."""
    x, y = grid.coordinates()
    source = -amplitude * wavenumber * torch.cos(wavenumber * y)
    return grid.to_spectral(source.expand(x.shape[0], -1))


class Etdrk4Coefficients(NamedTuple):
    """Per-mode weights of the Cox–Matthews ETDRK4 step, named as in Kassam & Trefethen."""

    e: torch.Tensor  # exp(hL)
    e_half: torch.Tensor  # exp(hL/2)
    q: torch.Tensor
    f1: torch.Tensor
    f2: torch.Tensor
    f3: torch.Tensor


@lru_cache(maxsize=256)
def _coefficients_per_k2(
    grid: SpectralGrid, viscosity: float, drag: float, dt: float
) -> torch.Tensor:
    """The six weights per distinct |k|², shape (6, n_k2), in the grid's complex dtype.

    Cached because a trajectory's CFL step sizes repeat from frame to frame; stored per
    distinct |k|² (457 values on 64², not 2112 modes) to keep the cache small.
    """
    hl = dt * (-viscosity * grid.k2_values - drag)
    angles = math.pi * (torch.arange(CONTOUR_POINTS, dtype=torch.float64) + 0.5) / CONTOUR_POINTS
    z = hl[:, None] + torch.exp(1j * angles)
    ez, ez_half = torch.exp(z), torch.exp(z / 2)

    def mean(values: torch.Tensor) -> torch.Tensor:
        return dt * values.mean(dim=-1).real

    weights = torch.stack(
        [
            torch.exp(hl),
            torch.exp(hl / 2),
            mean((ez_half - 1) / z),
            mean((-4 - z + ez * (4 - 3 * z + z**2)) / z**3),
            mean((2 + z + ez * (z - 2)) / z**3),
            mean((-4 - 3 * z - z**2 + ez * (4 - z)) / z**3),
        ]
    )
    return weights.to(device=grid.device, dtype=grid.complex_dtype)


def etdrk4_coefficients(
    grid: SpectralGrid, viscosity: Sequence[float], drag: float, dt: Sequence[float]
) -> Etdrk4Coefficients:
    """Weights for L = −ν_b|k|² − α and step dt_b, each (B, Ny//2+1, Nx).

    Computed in float64 then cast. The φ-functions behind q and f1..f3 cancel
    catastrophically for small |hL|; averaging them over a circle of radius 1 around
    each hL (trapezoidal rule, exponentially accurate) avoids that. L is real, so the
    upper half circle and the real part suffice.
    """
    per_k2 = torch.stack(
        [
            _coefficients_per_k2(grid, float(nu), float(drag), float(h))
            for nu, h in zip(viscosity, dt, strict=True)
        ]
    )
    return Etdrk4Coefficients(*per_k2[:, :, grid.k2_index_on_device].unbind(dim=1))


def nonlinear_term(
    omega_hat: torch.Tensor, grid: SpectralGrid, forcing_hat: torch.Tensor | None
) -> torch.Tensor:
    """−(u·∇ω)^ (dealiased) plus the forcing: everything ETDRK4 treats explicitly."""
    u, v = grid.to_physical(grid.velocity(omega_hat)).unbind(dim=-3)
    uv, uu_vv = grid.to_spectral(torch.stack([u * v, (u - v) * (u + v)], dim=-3)).unbind(dim=-3)
    result = grid.minus_advection_uv * uv + grid.minus_advection_uu_vv * uu_vv
    return result if forcing_hat is None else result + forcing_hat


def etdrk4_step(
    omega_hat: torch.Tensor,
    c: Etdrk4Coefficients,
    grid: SpectralGrid,
    forcing_hat: torch.Tensor | None,
) -> torch.Tensor:
    """One Cox–Matthews ETDRK4 step."""
    n_u = nonlinear_term(omega_hat, grid, forcing_hat)
    a = c.e_half * omega_hat + c.q * n_u
    n_a = nonlinear_term(a, grid, forcing_hat)
    b = c.e_half * omega_hat + c.q * n_a
    n_b = nonlinear_term(b, grid, forcing_hat)
    s = c.e_half * a + c.q * (2 * n_b - n_u)
    n_s = nonlinear_term(s, grid, forcing_hat)
    return c.e * omega_hat + c.f1 * n_u + 2 * c.f2 * (n_a + n_b) + c.f3 * n_s


def integrate(
    omega_hat: torch.Tensor,
    grid: SpectralGrid,
    viscosity: Sequence[float],
    drag: float,
    forcing_hat: torch.Tensor | None,
    duration: float,
    n_steps: Sequence[int],
) -> torch.Tensor:
    """Advance ω̂ (B, Ny//2+1, Nx) by `duration`, trajectory b in n_steps[b] equal steps.

    Once a trajectory has taken its steps it drops out of the batch; each one's result
    is the same as if it had been integrated alone (the transforms are batch-invariant).
    """
    steps = [int(n) for n in n_steps]
    coefficients = etdrk4_coefficients(grid, viscosity, drag, [duration / n for n in steps])
    index = None  # the trajectories still stepping, once some have finished
    for step in range(max(steps)):
        if step in steps:
            still = [b for b, n in enumerate(steps) if step < n]
            index = torch.tensor(still, device=omega_hat.device)
            subset = Etdrk4Coefficients(*(w[index] for w in coefficients))
        if index is None:
            omega_hat = etdrk4_step(omega_hat, coefficients, grid, forcing_hat)
        else:
            advanced = etdrk4_step(omega_hat[index], subset, grid, forcing_hat)
            omega_hat = omega_hat.index_copy(0, index, advanced)
    return omega_hat


def advective_rate(omega_hat: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """max over the grid of |u|/dx + |v|/dy per trajectory (float64, CPU): CFL per unit time."""
    u, v = grid.to_physical(grid.velocity(omega_hat)).unbind(dim=-3)
    dx, dy = (length / n for length, n in zip(grid.extent, grid.shape, strict=True))
    return (u.abs() / dx + v.abs() / dy).flatten(1).amax(dim=1).double().cpu()


class Kolmogorov(System):
    """Chaotic forced 2D turbulence, conditioned on the Reynolds number.

    `forcing_wavenumber`, `drag` and `courant` are constructor arguments for studies and
    tests; the dataset uses the defaults, which are not conditioning parameters.
    """

    default_grid = (64, 64)
    default_extent = (2 * math.pi, 2 * math.pi)

    def __init__(
        self,
        grid: Sequence[int] | None = None,
        *,
        forcing_wavenumber: int = FORCING_WAVENUMBER,
        drag: float = DRAG,
        courant: float = COURANT,
    ):
        super().__init__(grid)
        cutoff = min(self.grid.shape) / 3  # the 2/3 rule keeps |k| < N/3
        if not (isinstance(forcing_wavenumber, int) and 1 <= forcing_wavenumber < cutoff):
            raise ParameterError(
                "forcing_wavenumber",
                forcing_wavenumber,
                f"an integer >= 1 and < {cutoff:.3g} (the grid's dealiasing cutoff)",
            )
        if not (math.isfinite(drag) and drag >= 0):
            raise ParameterError("drag", drag, "a finite number >= 0")
        if not (math.isfinite(courant) and courant > 0):
            raise ParameterError("courant", courant, "a finite number > 0")
        self.forcing_wavenumber, self.drag, self.courant = forcing_wavenumber, drag, courant
        self.spec = SystemSpec(
            name="kolmogorov",
            title="Kolmogorov flow (forced 2D turbulence)",
            fields=(
                FieldSpec("vorticity", "vorticity (∂v/∂x − ∂u/∂y)"),
                FieldSpec("velocity", "velocity", tensor_order=1),
            ),
            parameters=(
                ParameterSpec(
                    "Reynolds",
                    "Reynolds number 1/ν",
                    train_range=(100.0, 500.0),
                    valid_range=(10.0, 5000.0),
                    default=250.0,
                    log_scale=True,
                ),
            ),
            grid=self.grid,
            frame_dt=0.2,
            n_frames=101,
            forcing_periods=(0, forcing_wavenumber),  # A sin(k_f y) x̂ fixes y, not x
            t_start=10.0,
            source=(
                "latentsim pseudo-spectral vorticity solver: rfft, 2/3-rule dealiasing, "
                f"ETDRK4 (Kassam–Trefethen contour, M={CONTOUR_POINTS}), CFL-adaptive dt; "
                f"forcing sin({forcing_wavenumber} y) x̂, drag α={drag:g}"
            ),
            references=(
                "Kochkov et al. 2021, PNAS 118, e2101784118; Cox & Matthews 2002, "
                "J. Comput. Phys. 176, 430; Kassam & Trefethen 2005, SIAM J. Sci. Comput. 26, 1214"
            ),
        )

    # -- System contract -----------------------------------------------------------------
    def initial_state(
        self,
        conditions: Conditions,
        generators: Sequence[torch.Generator],
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """ω̂ (B, Ny//2+1, Nx): band-limited random vorticity, one generator per trajectory."""
        grid = self._spectral_grid(device, dtype)
        noise = _band_limited_noise(generators)  # (B, noise ky, noise kx), complex128
        nyh, nx = grid.dealias.shape
        kx = min(_NOISE_GRID // 2, (nx + 1) // 2)
        ky = min(noise.shape[-2], nyh)
        omega_hat = torch.zeros(len(generators), nyh, nx, dtype=torch.complex128)
        omega_hat[:, :ky, :kx] = noise[:, :ky, :kx]
        omega_hat[:, :ky, -kx + 1 :] = noise[:, :ky, -kx + 1 :]
        return omega_hat.to(device=device, dtype=grid.complex_dtype) * grid.dealias

    def advance(
        self, state: torch.Tensor, conditions: Conditions, t0: float, t1: float
    ) -> torch.Tensor:
        """Integrate in chunks of at most one frame interval, each with its own CFL steps."""
        grid = self._spectral_grid(state.device, state.real.dtype)
        forcing = kolmogorov_forcing(grid, self.forcing_wavenumber)
        viscosity = (1.0 / conditions.parameters["Reynolds"]).tolist()
        n_chunks = max(1, math.ceil((t1 - t0) / self.spec.frame_dt - 1e-9))
        edges = [t0 + (t1 - t0) * i / n_chunks for i in range(n_chunks + 1)]
        edges[-1] = t1
        for start, end in pairwise(edges):
            duration = end - start
            rate = advective_rate(state, grid)
            n_steps = torch.ceil(rate * duration / self.courant).clamp(min=1)
            self._check_steps(n_steps, rate, conditions, start)
            state = integrate(
                state, grid, viscosity, self.drag, forcing, duration, n_steps.long().tolist()
            )
        return state

    def observe(self, state: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        grid = self._spectral_grid(state.device, state.real.dtype)
        return grid.to_physical(torch.cat([state.unsqueeze(1), grid.velocity(state)], dim=1))

    def state_from_frame(self, frame: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        """ω̂ of the vorticity channel, dealiased: exact for the solver's own (band-limited)
        frames; the velocity channels follow from ω and are not read."""
        grid = self._spectral_grid(frame.device, frame.dtype)
        return grid.to_spectral(frame[:, 0]) * grid.dealias

    # -- helpers ---------------------------------------------------------------------------
    def _spectral_grid(self, device: torch.device, dtype: torch.dtype) -> SpectralGrid:
        return spectral_grid(self.grid.shape, self.grid.extent, device, dtype)

    def _check_steps(
        self, n_steps: torch.Tensor, rate: torch.Tensor, conditions: Conditions, time: float
    ) -> None:
        """A non-finite or runaway velocity ends the run with the trajectory named."""
        bad = ~torch.isfinite(n_steps) | (n_steps > MAX_SUBSTEPS)
        if bool(bad.any()):
            index = int(bad.nonzero()[0])
            raise SolverDivergedError(
                self.name,
                index,
                conditions.describe(index),
                time,
                f"velocity blew up (CFL rate max(|u|/dx + |v|/dy) = {float(rate[index]):.3g})",
            )


def _band_limited_noise(generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Random vorticity coefficients with 1 ≤ |k| ≤ 8 and a fixed rms, on the noise grid."""
    shape = (_NOISE_GRID, _NOISE_GRID)
    grid = spectral_grid(shape, Kolmogorov.default_extent, torch.device("cpu"), torch.float64)
    noise = torch.stack([torch.randn(shape, generator=g, dtype=torch.float64) for g in generators])
    k = grid.k2_values[grid.k2_index].sqrt()
    band = (k >= _NOISE_BAND[0]) & (k <= _NOISE_BAND[1])
    coefficients = grid.to_spectral(noise) * band
    rms = grid.to_physical(coefficients).flatten(1).std(dim=1)
    return coefficients * (_INITIAL_RMS_VORTICITY / rms)[:, None, None]


__all__ = [
    "Etdrk4Coefficients",
    "Kolmogorov",
    "SpectralGrid",
    "etdrk4_coefficients",
    "etdrk4_step",
    "integrate",
    "kolmogorov_forcing",
    "spectral_grid",
]
