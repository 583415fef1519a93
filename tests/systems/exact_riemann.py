"""Exact solution of the 1D Euler Riemann problem for an ideal gas (Toro, chapter 4).

This is the test oracle for the finite-volume Euler solver, so it is written from the
textbook formulas in numpy and deliberately shares no code with `engine.systems`:

- the star-region pressure p* solves f_L(p) + f_R(p) + (u_R - u_L) = 0 (Toro eq. 4.5), with
  f_K the shock (Rankine-Hugoniot) or rarefaction (isentropic) branch (eqs. 4.6-4.7), found
  by Newton-Raphson from the primitive-variable (PVRS) guess (eq. 4.47);
- u* = (u_L + u_R)/2 + (f_R(p*) - f_L(p*))/2 (eq. 4.9);
- the self-similar solution is sampled at xi = x/t by the case analysis of Toro section 4.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class State:
    """A constant primitive state (density, normal velocity, pressure)."""

    rho: float
    u: float
    p: float

    def sound_speed(self, gamma: float) -> float:
        return float(np.sqrt(gamma * self.p / self.rho))


def _pressure_function(p: float, side: State, gamma: float) -> tuple[float, float]:
    """f_K(p) and its derivative: shock branch for p > p_K, rarefaction branch otherwise."""
    c = side.sound_speed(gamma)
    if p > side.p:
        a = 2.0 / ((gamma + 1.0) * side.rho)
        b = (gamma - 1.0) / (gamma + 1.0) * side.p
        root = np.sqrt(a / (p + b))
        return (p - side.p) * root, root * (1.0 - 0.5 * (p - side.p) / (b + p))
    ratio = p / side.p
    exponent = (gamma - 1.0) / (2.0 * gamma)
    value = 2.0 * c / (gamma - 1.0) * (ratio**exponent - 1.0)
    derivative = ratio ** (-(gamma + 1.0) / (2.0 * gamma)) / (side.rho * c)
    return value, derivative


def star_state(left: State, right: State, gamma: float, tol: float = 1e-12) -> tuple[float, float]:
    """(p*, u*) of the Riemann problem; raises if the data generate a vacuum."""
    c_left, c_right = left.sound_speed(gamma), right.sound_speed(gamma)
    du = right.u - left.u
    if 2.0 * (c_left + c_right) / (gamma - 1.0) <= du:
        raise ValueError("the initial data generate a vacuum; p* does not exist")
    pvrs = 0.5 * (left.p + right.p) - 0.125 * du * (left.rho + right.rho) * (c_left + c_right)
    p = max(tol, pvrs)
    for _ in range(100):
        f_left, df_left = _pressure_function(p, left, gamma)
        f_right, df_right = _pressure_function(p, right, gamma)
        p_new = max(tol, p - (f_left + f_right + du) / (df_left + df_right))
        change = 2.0 * abs(p_new - p) / (p_new + p)
        p = p_new
        if change < tol:
            break
    else:
        raise RuntimeError("Newton iteration for p* did not converge")
    f_left, _ = _pressure_function(p, left, gamma)
    f_right, _ = _pressure_function(p, right, gamma)
    return p, 0.5 * (left.u + right.u) + 0.5 * (f_right - f_left)


def _sample_side(
    xi: np.ndarray, side: State, p_star: float, u_star: float, gamma: float, mirror: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solution between `side`'s state and the contact, written for the left wave.

    With mirror=True the right wave is sampled instead: x -> -x, u -> -u maps it onto a
    left wave, so one routine serves both sides.
    """
    m = -1.0 if mirror else 1.0
    xi, u_side, u_s = m * xi, m * side.u, m * u_star
    c = side.sound_speed(gamma)
    g1 = (gamma - 1.0) / (gamma + 1.0)
    ratio = p_star / side.p
    rho = np.full_like(xi, side.rho)
    u = np.full_like(xi, u_side)
    p = np.full_like(xi, side.p)
    if ratio > 1.0:  # shock
        speed = u_side - c * np.sqrt(
            (gamma + 1.0) / (2.0 * gamma) * ratio + (gamma - 1.0) / (2.0 * gamma)
        )
        star = xi > speed
        rho[star] = side.rho * (ratio + g1) / (g1 * ratio + 1.0)
        u[star], p[star] = u_s, p_star
    else:  # rarefaction
        c_star = c * ratio ** ((gamma - 1.0) / (2.0 * gamma))
        head, tail = u_side - c, u_s - c_star
        fan = (xi > head) & (xi <= tail)
        star = xi > tail
        rho[star] = side.rho * ratio ** (1.0 / gamma)
        u[star], p[star] = u_s, p_star
        c_fan = 2.0 / (gamma + 1.0) * (c + 0.5 * (gamma - 1.0) * (u_side - xi[fan]))
        rho[fan] = side.rho * (c_fan / c) ** (2.0 / (gamma - 1.0))
        u[fan] = 2.0 / (gamma + 1.0) * (c + 0.5 * (gamma - 1.0) * u_side + xi[fan])
        p[fan] = side.p * (c_fan / c) ** (2.0 * gamma / (gamma - 1.0))
    return rho, m * u, p


def sample(
    left: State, right: State, gamma: float, xi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rho, u, p) at similarity coordinates xi = (x - x_diaphragm) / t."""
    xi = np.asarray(xi, dtype=np.float64)
    p_star, u_star = star_state(left, right, gamma)
    on_left = xi <= u_star
    rho, u, p = (np.empty_like(xi) for _ in range(3))
    for mask, side, mirror in ((on_left, left, False), (~on_left, right, True)):
        values = _sample_side(xi[mask], side, p_star, u_star, gamma, mirror)
        for out, value in zip((rho, u, p), values, strict=True):
            out[mask] = value
    return rho, u, p


def cell_averages(
    left: State,
    right: State,
    gamma: float,
    edges: np.ndarray,
    x0: float,
    t: float,
    subsamples: int = 64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell averages of (rho, u, p) between consecutive `edges` at time t.

    A finite-volume solver stores cell averages; comparing those instead of point values
    keeps the error of cells cut by a discontinuity from depending on where it cuts them.
    """
    fractions = (np.arange(subsamples) + 0.5) / subsamples
    points = edges[:-1, None] + np.diff(edges)[:, None] * fractions[None, :]
    return tuple(  # type: ignore[return-value]
        v.reshape(points.shape).mean(axis=1)
        for v in sample(left, right, gamma, (points.ravel() - x0) / t)
    )
