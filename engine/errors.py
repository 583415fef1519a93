"""Exceptions that carry enough context for a user to fix their input.

Every error raised on bad input names the offending value and what would have been
accepted, so the CLI can print it verbatim and exit non-zero.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any


class LatentsimError(Exception):
    """Base class: the CLI turns these into a one-line message and exit code 2."""

    def __reduce__(self):
        # Subclasses take several constructor arguments, which the default exception
        # pickling (replaying `args`) cannot rebuild; rebuild from state so errors can
        # cross process boundaries (generation and training workers).
        return (_rebuild_error, (type(self), self.__dict__, self.args))


def _rebuild_error(cls: type, state: dict, args: tuple) -> LatentsimError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    error.args = args
    return error


class UnknownNameError(LatentsimError, KeyError):
    """A name (system, sampler, model...) that is not registered."""

    def __init__(self, kind: str, name: object, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid choices: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]


class ParameterError(LatentsimError, ValueError):
    """A value outside the range in which it is meaningful."""

    def __init__(self, name: str, value: object, valid: str):
        self.name, self.value, self.valid = name, value, valid
        super().__init__(f"{name}={value!r} is invalid; valid: {valid}")


def check_integer(
    name: str, value: object, low: int, high: int | None = None, why: str = ""
) -> int:
    """`value` as an int, or ParameterError unless it is an integer in low..high.

    Booleans are refused although Python counts them as integers: `members=True` is a
    mistake, not one member. NumPy integers are accepted (they come out of arrays).
    """
    valid = f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(name, value, valid + why)
    if value < low or (high is not None and value > high):
        raise ParameterError(name, value, valid + why)
    return int(value)


def check_positive(name: str, value: object) -> float:
    """`value` as a float, or ParameterError unless it is a finite number > 0 (booleans
    refused, as in `check_integer`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParameterError(name, value, "a finite number > 0")
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(name, value, "a finite number > 0")
    return float(value)


def integer_setting(name: str, text: str, low: int, high: int | None = None) -> int:
    """An integer setting given as text (an environment variable, a server argument):
    ParameterError naming `name` and the text unless it is an integer in low..high."""
    try:
        value: object = int(text)
    except ValueError:
        value = text
    return check_integer(name, value, low, high)


def reject_unknown_fields(config_class: type, data: Mapping[str, Any], what: str) -> None:
    """Configs rebuilt from JSON refuse keys their dataclass lacks instead of dropping them."""
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ParameterError(f"{what} key", unknown[0], f"one of {', '.join(sorted(known))}")


class SolverDivergedError(LatentsimError, FloatingPointError):
    """A solver produced a non-physical state (NaN/inf, negative density or pressure)."""

    def __init__(
        self,
        system: str,
        trajectory: int,
        parameters: Mapping[str, Any],
        time: float,
        reason: str,
    ):
        self.system, self.trajectory, self.time, self.reason = system, trajectory, time, reason
        self.parameters = dict(parameters)
        params = ", ".join(f"{k}={v}" for k, v in self.parameters.items())
        super().__init__(
            f"{system} solver diverged in trajectory {trajectory} ({params}) "
            f"at t={time:.6g}: {reason}"
        )


class DataFormatError(LatentsimError, ValueError):
    """A file that is truncated, foreign, or not in the expected layout."""

    def __init__(self, path: object, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")
