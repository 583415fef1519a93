"""2D Rayleigh–Bénard convection between no-slip walls (mirrors the Well's rayleigh_benard).

Boussinesq equations in free-fall units (height 1, buoyancy jump 1):

    ∂b/∂t + u·∇b = κ∇²b,   ∂u/∂t + u·∇u = -∇p + ν∇²u + b ŷ,   ∇·u = 0,
    κ = (Ra·Pr)^-1/2,  ν = (Ra/Pr)^-1/2,

periodic in x, walls at y = 0 (b = 1) and y = 1 (b = 0) with u = v = 0.

Scheme (vorticity–streamfunction, second order):
- u = ∂ψ/∂y, v = -∂ψ/∂x, so ω = ∂v/∂x - ∂u/∂y = -∇²ψ and ∂ω/∂t = J(ψ, ω) + ν∇²ω + ∂b/∂x,
  ∂b/∂t = J(ψ, b) + κ∇²b with J(a, c) = a_x c_y - a_y c_x (Arakawa's energy- and
  enstrophy-conserving 9-point form) and 5-point Laplacians.
- Nodes in y sit on the walls (y_j = j/Ny, j = 0..Ny); ψ = 0 there, and no-slip (∂ψ/∂y = 0)
  enters through Thom's wall vorticity ω_wall = -2ψ_1/Δy² (from ψ_1 = ½Δy² ψ_yy).
- ∇²ψ = -ω is inverted exactly for the 5-point Laplacian (FFT in x, DST-I in y).
- SSP-RK3; every trajectory takes its own dt = min(0.5Δ/u_max, 0.2Δ²/max(ν, κ)), split
  evenly so it lands exactly on each output time, so a trajectory does not depend on
  which others share its batch.

Pressure is diagnosed at output frames only, from ∇²p = 2(ψ_xx ψ_yy - ψ_xy²) + ∂b/∂y with
the wall-normal momentum balance ∂p/∂y = b + ν ∂²v/∂y² = b + ν ∂ω/∂x as Neumann
condition, FFT in x + DCT-I in y. The gauge is zero mean over the domain, the same as the
Well's Dedalus runs (`integ(p) = 0`).

Output: the Well's cell-centred grid. x nodes are the cell centres; y cell centres lie
midway between nodes, so stored fields are node averages (u = Δψ/Δy there directly).
The Well stores y on Chebyshev nodes (rayleigh_benard) or resampled uniform
(rayleigh_benard_uniform); here y is uniform, Δx = Δy = 1/32 on the default 128×32 grid.

Choices, measured on the default grid (float32, t ≤ 50, 2-core CPU):
- Spin-up t_start = 10. From the Well's initial state (noise 10⁻³) the layer only
  conducts at first: over 16 training-range samples, max|u| ≤ 0.04 and KE ≤ 1 % of its
  convecting value up to t = 10, while onset (KE > 10 %) came at t = 12–15.5. Skipping
  t < 10 drops 20 near-identical frames and keeps the onset inside the stored window.
- Training ranges Ra ∈ [1e5, 3e6], Pr ∈ [0.5, 2]: there b stays within [0, 1] to 1 %
  (the maximum principle; centred schemes overshoot when the thermal scales are not
  resolved), < 0.1 % of b's x-variance sits in the top quarter of wavenumbers, and Nu is
  within ~6 % of a 256×64 run. The under-resolution is thermal, set by κ = (Ra·Pr)^-½:
  at Pr = 5–10 and Ra ≥ 1e6, b overshoots by 5–20 % (Pr = 10 needs 256×64).
- Valid ranges Ra ∈ [1e3, 1e7], Pr ∈ [0.1, 10] (the Well's Pr range): Ra = 1e7 still
  runs stably with Nu within ~15 % of 256×64 at Pr ≤ 1 (b overshoot up to 34 % at Pr = 10);
  at 3e7 and 1e8 (Pr = 1) overshoots reach 16 % and 46 %. Below Ra_c ≈ 1708
  perturbations decay, which is physical; Ra = 1e3 keeps the explicit diffusive step
  (∝ 1/max(ν, κ)) affordable: about 30k steps to t = 60 at Pr = 10.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from engine.errors import ParameterError, SolverDivergedError
from engine.systems.base import Conditions, FieldSpec, ParameterSpec, System, SystemSpec
from engine.systems.spectral import ChannelPoisson

BOTTOM_BUOYANCY, TOP_BUOYANCY = 1.0, 0.0  # wall values (hot bottom, cold top)


@dataclass(frozen=True)
class RBState:
    """Interior-node vorticity and buoyancy, (B, 2, X, Ny-1), plus per-trajectory ν, κ.

    Wall values are not stored: ψ and b are fixed there, ω follows from ψ (Thom).
    """

    fields: torch.Tensor
    nu: torch.Tensor  # (B,) in the fields' dtype and device
    kappa: torch.Tensor

    def select(self, index: torch.Tensor) -> RBState:
        return RBState(self.fields[index], self.nu[index], self.kappa[index])


def _pad_x(values: torch.Tensor) -> torch.Tensor:
    """One periodic ghost column on each side of the x axis (second to last)."""
    return torch.cat([values[..., -1:, :], values, values[..., :1, :]], dim=-2)


def arakawa(psi: torch.Tensor, q: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """Arakawa (1966) Jacobian J(ψ, q) = ψ_x q_y - ψ_y q_x on interior nodes.

    psi, q: x-padded arrays (..., X+2, Ny+1) including the wall rows; psi broadcasts
    against q. The average of the advective form and the two flux forms
    δx(ψ δy q) - δy(ψ δx q) and δy(q δx ψ) - δx(q δy ψ) conserves energy and enstrophy,
    which keeps the centred advection free of nonlinear instability. Written with the
    flux forms, it takes 17 array operations instead of the 27 of the 9-point stencil.
    """
    psi_dx = psi[..., 2:, :] - psi[..., :-2, :]  # (X, Ny+1)
    psi_dy = psi[..., :, 2:] - psi[..., :, :-2]  # (X+2, Ny-1)
    q_dx = q[..., 2:, :] - q[..., :-2, :]
    q_dy = q[..., :, 2:] - q[..., :, :-2]
    jacobian = psi_dx[..., 1:-1] * q_dy[..., 1:-1, :] - psi_dy[..., 1:-1, :] * q_dx[..., 1:-1]
    flux_x = psi[..., :, 1:-1] * q_dy - q[..., :, 1:-1] * psi_dy  # (X+2, Ny-1)
    flux_y = q[..., 1:-1, :] * psi_dx - psi[..., 1:-1, :] * q_dx  # (X, Ny+1)
    jacobian += flux_x[..., 2:, :] - flux_x[..., :-2, :]
    jacobian += flux_y[..., 2:] - flux_y[..., :-2]
    return jacobian / (12.0 * dx * dy)


def laplacian(q: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """5-point Laplacian on interior nodes of an x-padded array with wall rows."""
    ax, ay = 1.0 / dx**2, 1.0 / dy**2
    result = q[..., 2:, 1:-1] + q[..., :-2, 1:-1]
    result.mul_(ax).add_(q[..., 1:-1, 2:] + q[..., 1:-1, :-2], alpha=ay)
    return result.add_(q[..., 1:-1, 1:-1], alpha=-2.0 * (ax + ay))


class ChannelDiscretisation:
    """Grid constants and the finite-difference operators of the vorticity formulation."""

    def __init__(self, nx: int, ny: int, lx: float, ly: float, device, dtype):
        self.nx, self.ny = nx, ny
        self.dx, self.dy = lx / nx, ly / ny
        self.poisson = ChannelPoisson(nx, ny, self.dx, self.dy, device=device, dtype=dtype)
        y = torch.arange(ny + 1, dtype=torch.float64) / ny * ly
        self.y_nodes = y.to(device=device, dtype=dtype)

    def streamfunction(self, omega: torch.Tensor) -> torch.Tensor:
        """ψ on all nodes (zero on the walls) from interior ω, via ∇²ψ = -ω."""
        return torch.nn.functional.pad(self.poisson.solve_dirichlet(-omega), (1, 1))

    def node_fields(self, fields: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        """(ω, b) on all nodes with one periodic ghost column each side, (B, 2, X+2, Ny+1).

        The wall rows are the boundary conditions: b = 1 (bottom) and 0 (top), and
        Thom's no-slip vorticity ω_wall = -2ψ_1/Δy² (from ψ_wall = ∂ψ/∂y = 0, so that
        ψ_1 = ½Δy² ψ_yy and ω = -ψ_yy on the wall). Built in one buffer: this runs in
        every Runge–Kutta stage.
        """
        thom = -2.0 / self.dy**2
        q = fields.new_empty((fields.shape[0], 2, self.nx + 2, self.ny + 1))
        q[:, :, 1:-1, 1:-1] = fields
        q[:, 0, 1:-1, 0] = psi[..., 1] * thom
        q[:, 0, 1:-1, -1] = psi[..., -2] * thom
        q[:, 1, :, 0] = BOTTOM_BUOYANCY
        q[:, 1, :, -1] = TOP_BUOYANCY
        q[:, :, 0] = q[:, :, -2]
        q[:, :, -1] = q[:, :, 1]
        return q

    def tendency(
        self, fields: torch.Tensor, psi: torch.Tensor, nu: torch.Tensor, kappa: torch.Tensor
    ) -> torch.Tensor:
        """∂/∂t of (ω, b) on interior nodes; psi must be the streamfunction of fields[:, 0].

        ∂ω/∂t = J(ψ, ω) + ν∇²ω + ∂b/∂x and ∂b/∂t = J(ψ, b) + κ∇²b.
        """
        q = self.node_fields(fields, psi)
        result = arakawa(_pad_x(psi).unsqueeze(1), q, self.dx, self.dy)
        diffusivity = torch.stack([nu, kappa], dim=1).view(-1, 2, 1, 1)
        result.addcmul_(laplacian(q, self.dx, self.dy), diffusivity)
        result[:, 0].add_(q[:, 1, 2:, 1:-1] - q[:, 1, :-2, 1:-1], alpha=0.5 / self.dx)
        return result

    def max_speed(self, psi: torch.Tensor) -> torch.Tensor:
        """Largest |u| or |v| per trajectory, (B,), for the advective time-step limit."""
        u = (psi[..., 1:] - psi[..., :-1]) / self.dy
        v = (psi.roll(-1, dims=-2) - psi.roll(1, dims=-2)) / (2 * self.dx)
        return torch.maximum(u.abs().amax(dim=(-2, -1)), v.abs().amax(dim=(-2, -1)))

    # -- diagnostics ------------------------------------------------------------------
    def pressure(
        self, psi: torch.Tensor, omega: torch.Tensor, b: torch.Tensor, nu: torch.Tensor
    ) -> torch.Tensor:
        """Pressure on all nodes, zero mean, from all-node ψ, ω and b, (B, X, Ny+1).

        ∇²p = 2(ψ_xx ψ_yy - ψ_xy²) + ∂b/∂y with centred differences; on the walls ψ_y is
        one-sided (second order) and ψ_yy = -ω - ψ_xx (for no-slip flows the nonlinear
        term vanishes there). The wall rows balance the half cell next to the wall against
        the flux ∂p/∂y = b + ν∂ω/∂x through it, so the b terms telescope (the discrete
        problem is compatible) and the hydrostatic state p = y - y²/2 + const is exact.
        """
        dx, dy = self.dx, self.dy

        def d_dx(values: torch.Tensor) -> torch.Tensor:
            return (values.roll(-1, dims=-2) - values.roll(1, dims=-2)) / (2 * dx)

        psi_y = torch.cat(
            [
                -3 * psi[..., :1] + 4 * psi[..., 1:2] - psi[..., 2:3],
                psi[..., 2:] - psi[..., :-2],
                3 * psi[..., -1:] - 4 * psi[..., -2:-1] + psi[..., -3:-2],
            ],
            dim=-1,
        ) / (2 * dy)
        psi_xx = (psi.roll(-1, dims=-2) + psi.roll(1, dims=-2) - 2 * psi) / dx**2
        psi_yy = torch.cat(
            [
                -omega[..., :1] - psi_xx[..., :1],
                (psi[..., 2:] + psi[..., :-2] - 2 * psi[..., 1:-1]) / dy**2,
                -omega[..., -1:] - psi_xx[..., -1:],
            ],
            dim=-1,
        )
        rhs = 2 * (psi_xx * psi_yy - d_dx(psi_y) ** 2)
        rhs[..., 1:-1] += (b[..., 2:] - b[..., :-2]) / (2 * dy)
        # Wall rows: (2/Δy)·(wall flux) plus the half-cell average of b_y, where the b of
        # the flux b + ν∂ω/∂x cancels against b_y's wall value, leaving b half a cell in.
        viscous = nu.view(-1, 1, 1) * d_dx(omega)
        mid_b = 0.5 * (b[..., :-1] + b[..., 1:])
        rhs[..., 0] += 2 * (mid_b[..., 0] + viscous[..., 0]) / dy
        rhs[..., -1] -= 2 * (mid_b[..., -1] + viscous[..., -1]) / dy
        return self.poisson.solve_neumann(rhs)

    def observe(self, state: RBState) -> torch.Tensor:
        """(B, 4, X, Ny) on cell centres: buoyancy, pressure, velocity_x, velocity_y."""
        psi = self.streamfunction(state.fields[:, 0])
        omega, b = self.node_fields(state.fields, psi)[:, :, 1:-1].unbind(1)
        p = self.pressure(psi, omega, b, state.nu)
        v = -(psi.roll(-1, dims=-2) - psi.roll(1, dims=-2)) / (2 * self.dx)
        u = (psi[..., 1:] - psi[..., :-1]) / self.dy

        def centre(values: torch.Tensor) -> torch.Tensor:
            return 0.5 * (values[..., 1:] + values[..., :-1])

        return torch.stack([centre(b), centre(p), u, centre(v)], dim=1)


class RayleighBenard(System):
    """Rayleigh–Bénard convection, parameters Rayleigh and Prandtl (see module docstring)."""

    default_grid = (128, 32)
    default_extent = (4.0, 1.0)  # the Well's 4:1 aspect ratio

    # Time-step safety factors: SSP-RK3 with centred advection is stable for
    # dt·(|u|/Δx + |v|/Δy) ≤ √3 and with explicit 5-point diffusion for dt·8ν/Δ² ≤ 2.51.
    advective_cfl = 0.5
    diffusive_cfl = 0.2
    # Free-fall velocities stay O(1) (|u| ≤ √(gαΔT·H)); far beyond means the run blew up.
    velocity_limit = 100.0

    def __init__(self, grid: Sequence[int] | None = None):
        super().__init__(grid)
        self.spec = SystemSpec(
            name="rayleigh_benard",
            title="2D Rayleigh–Bénard convection (no-slip walls, periodic x)",
            fields=(
                FieldSpec("buoyancy", "buoyancy (scaled temperature)"),
                FieldSpec("pressure", "kinematic pressure, zero-mean gauge"),
                FieldSpec("velocity", "velocity", tensor_order=1),
            ),
            parameters=(
                ParameterSpec(
                    "Rayleigh",
                    "Rayleigh number",
                    train_range=(1e5, 3e6),
                    valid_range=(1e3, 1e7),
                    default=1e6,
                    log_scale=True,
                ),
                ParameterSpec(
                    "Prandtl",
                    "Prandtl number",
                    train_range=(0.5, 2.0),
                    valid_range=(0.1, 10.0),
                    default=1.0,
                    log_scale=True,
                ),
            ),
            grid=self.grid,
            frame_dt=0.5,
            n_frames=101,
            t_start=10.0,
            source=(
                "latentsim rayleigh_benard: vorticity-streamfunction, 2nd-order finite "
                "differences, Arakawa Jacobian, Thom wall vorticity, FFT/DST-I Poisson, "
                "SSP-RK3 with per-trajectory adaptive dt; uniform y grid"
            ),
            references=(
                "Ohana et al. 2024, The Well (rayleigh_benard); Arakawa 1966, J. Comput. "
                "Phys. 1:119; Thom 1933, Proc. R. Soc. A 141:651; Gottlieb & Shu 1998, "
                "Math. Comp. 67:73"
            ),
        )
        self._discretisations: dict[tuple[torch.device, torch.dtype], ChannelDiscretisation] = {}

    def boundary_conditions(self, choices: Mapping[str, str]) -> tuple[str, str]:
        return ("periodic", "wall")

    def discretisation(self, device: torch.device, dtype: torch.dtype) -> ChannelDiscretisation:
        """Operators for this grid on a device/dtype (built once, eigenvalues in float64)."""
        key = (torch.device(device), dtype)
        if key not in self._discretisations:
            (nx, ny), (lx, ly) = self.grid.shape, self.grid.extent
            self._discretisations[key] = ChannelDiscretisation(nx, ny, lx, ly, device, dtype)
        return self._discretisations[key]

    # -- System contract --------------------------------------------------------------
    def initial_state(
        self,
        conditions: Conditions,
        generators: Sequence[torch.Generator],
        device: torch.device,
        dtype: torch.dtype,
    ) -> RBState:
        """The Well's recipe: b = δb0·(1 - y) + 10⁻³·N(0, 1)·y(1 - y), u = 0.

        δb0 ~ U[0.2, 1] scales the conductive profile (the walls keep b = 1 and 0, so
        δb0 < 1 starts with a bottom thermal boundary layer); the noise breaks the x
        symmetry. Both come from the trajectory's own generator, δb0 first.
        """
        nx, ny = self.grid.shape
        y = torch.arange(1, ny, dtype=torch.float64) / ny
        buoyancy = []
        for generator in generators:
            delta_b0 = 0.2 + 0.8 * float(torch.rand((), generator=generator, dtype=torch.float64))
            noise = torch.randn((nx, ny - 1), generator=generator, dtype=torch.float64)
            buoyancy.append(delta_b0 * (1 - y) + 1e-3 * noise * y * (1 - y))
        b = torch.stack(buoyancy)
        fields = torch.stack([torch.zeros_like(b), b], dim=1)
        return self._state(fields, conditions, device, dtype)

    def _state(
        self, fields: torch.Tensor, conditions: Conditions, device: torch.device, dtype: torch.dtype
    ) -> RBState:
        ra, pr = conditions.parameters["Rayleigh"], conditions.parameters["Prandtl"]
        return RBState(
            fields=fields.to(device=device, dtype=dtype),
            nu=((ra / pr) ** -0.5).to(device=device, dtype=dtype),
            kappa=((ra * pr) ** -0.5).to(device=device, dtype=dtype),
        )

    def state_from_buoyancy(
        self,
        buoyancy: torch.Tensor,
        conditions: Conditions,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> RBState:
        """A fluid at rest with a given interior-node buoyancy (B, X, Ny-1), y_j = j/Ny.

        For prescribed initial states (conduction profile, single-mode perturbations).
        """
        expected = (conditions.batch_size, self.grid.shape[0], self.grid.shape[1] - 1)
        if tuple(buoyancy.shape) != expected:
            raise ParameterError("buoyancy.shape", tuple(buoyancy.shape), f"{expected}")
        buoyancy = buoyancy.to(torch.float64)
        fields = torch.stack([torch.zeros_like(buoyancy), buoyancy], dim=1)
        return self._state(fields, conditions, torch.device(device), dtype)

    def state_from_frame(self, frame: torch.Tensor, conditions: Conditions) -> RBState:
        """Interior-node (ω, b) from cell-centred (b, p, u, v), exactly: each centre is
        the mean of the two nodes around it and the bottom wall holds b = 1, so the node
        buoyancy follows centre by centre; u = ∂ψ/∂y between nodes with ψ = 0 on the
        bottom wall gives ψ by summation, and ω = -∇²ψ with the solver's own five-point
        Laplacian. Pressure and v are implied by ψ and not read."""
        b, _, u, _ = frame.to(torch.float64).unbind(1)
        nodes = [torch.ones_like(b[..., 0])]
        for j in range(b.shape[-1] - 1):
            nodes.append(2 * b[..., j] - nodes[-1])
        dx, dy = self.grid.spacing
        psi = torch.nn.functional.pad(dy * u[..., :-1].cumsum(dim=-1), (1, 1))
        psi_xx = (psi.roll(-1, dims=-2) + psi.roll(1, dims=-2) - 2 * psi) / dx**2
        psi_yy = (psi[..., 2:] + psi[..., :-2] - 2 * psi[..., 1:-1]) / dy**2
        omega = -(psi_xx[..., 1:-1] + psi_yy)
        fields = torch.stack([omega, torch.stack(nodes[1:], dim=-1)], dim=1)
        return self._state(fields, conditions, frame.device, frame.dtype)

    def advance(self, state: RBState, conditions: Conditions, t0: float, t1: float) -> RBState:
        """SSP-RK3 from t0 to t1, each trajectory with its own steps landing on t1.

        Trajectories that have arrived drop out of the batch, so finished ones cost
        nothing and take no extra (rounding) steps.
        """
        ops = self.discretisation(state.fields.device, state.fields.dtype)
        duration = float(t1) - float(t0)
        batch = state.fields.shape[0]
        elapsed = torch.zeros(batch, dtype=torch.float64)
        fields = state.fields
        spacing = min(ops.dx, ops.dy)
        diffusive_dt = (
            self.diffusive_cfl * spacing**2 / torch.maximum(state.nu, state.kappa).double().cpu()
        )
        while True:
            active = torch.nonzero(elapsed < duration).flatten()
            if active.numel() == 0:
                return RBState(fields, state.nu, state.kappa)
            current = RBState(fields, state.nu, state.kappa)
            index = None if active.numel() == batch else active.to(fields.device)
            sub = current if index is None else current.select(index)
            psi = ops.streamfunction(sub.fields[:, 0])
            speed = ops.max_speed(psi).double().cpu()
            self._check_speed(speed, active, conditions, t0 + elapsed[active])
            stable = torch.minimum(self.advective_cfl * spacing / speed, diffusive_dt[active])
            remaining = duration - elapsed[active]
            steps = torch.ceil(remaining / stable)
            dt = remaining / steps
            new = self._ssp_rk3(ops, sub, psi, dt.to(fields.device, fields.dtype))
            elapsed[active] = torch.where(steps <= 1, duration, elapsed[active] + dt)
            fields = new if index is None else fields.index_copy(0, index, new)

    @staticmethod
    def _ssp_rk3(
        ops: ChannelDiscretisation, state: RBState, psi: torch.Tensor, dt: torch.Tensor
    ) -> torch.Tensor:
        """One Shu–Osher SSP-RK3 step with per-trajectory dt (B,)."""
        dt = dt.view(-1, 1, 1, 1)
        nu, kappa, y0 = state.nu, state.kappa, state.fields
        y1 = y0 + dt * ops.tendency(y0, psi, nu, kappa)
        psi1 = ops.streamfunction(y1[:, 0])
        y2 = 0.75 * y0 + 0.25 * (y1 + dt * ops.tendency(y1, psi1, nu, kappa))
        psi2 = ops.streamfunction(y2[:, 0])
        return y0 / 3 + (2 / 3) * (y2 + dt * ops.tendency(y2, psi2, nu, kappa))

    def _check_speed(
        self,
        speed: torch.Tensor,
        active: torch.Tensor,
        conditions: Conditions,
        times: torch.Tensor,
    ) -> None:
        bad = ~torch.isfinite(speed) | (speed > self.velocity_limit)
        if bool(bad.any()):
            k = int(torch.nonzero(bad)[0])
            index = int(active[k])
            raise SolverDivergedError(
                self.name,
                index,
                conditions.describe(index),
                float(times[k]),
                f"velocity {float(speed[k]):.3g} exceeds {self.velocity_limit:g} "
                "free-fall units (time step unstable or flow unresolved)",
            )

    def observe(self, state: RBState, conditions: Conditions) -> torch.Tensor:
        return self.discretisation(state.fields.device, state.fields.dtype).observe(state)


__all__ = ["ChannelDiscretisation", "RBState", "RayleighBenard", "arakawa", "laplacian"]
