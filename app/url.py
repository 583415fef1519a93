"""The explorer's state in the address bar: a query string that reproduces the view.

`to_query` writes the synced parameters and the system's conditions (under their own
names); `apply_query` reads them back in dependency order (the system decides the valid
rates, the rate the valid kinds, the model the valid context and horizon). A bad value is
skipped and explained, never raised: a shared link with a stale value still opens.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import param

if TYPE_CHECKING:
    from app.state import ExplorerState

# Query-string keys of the synced parameters (conditions use their own names).
QUERY_PARAMS = (
    "system",
    "rate",
    "kind",
    "sampler",
    "steps",
    "members",
    "context",
    "horizon",
    "seed",
    "reference",
    "compare",
    "compare_samplers",
    "field",
    "mosaic",
    "member",
)
# A refused value's message lists at most this many valid choices (a folder of sources
# can hold hundreds).
MAX_LISTED = 12


def apply_query(state: ExplorerState, query: Mapping[str, Any]) -> list[str]:
    """Apply URL query values one by one; invalid ones are skipped and explained."""
    warnings = []
    for name in QUERY_PARAMS:
        if name in query:
            problem = _apply_value(state, name, query[name])
            if problem:
                warnings.append(problem)
    if state.available:
        spec = state.spec
        for name in [p.name for p in spec.parameters] + [c.name for c in spec.choices]:
            if name in query:
                problem = state.set_condition(name, _condition_value(query[name]))
                if problem:
                    warnings.append(problem)
    return warnings


def to_query(state: ExplorerState) -> dict[str, str]:
    """Query-string values that reproduce `state` (synced parameters + conditions)."""
    query = {}
    for name in QUERY_PARAMS:
        value = getattr(state, name)
        if isinstance(value, list):
            query[name] = json.dumps(value)
        elif value is not None:
            query[name] = str(value)
    for name, value in state.conditions.items():
        query[name] = f"{value:g}" if isinstance(value, float) else str(value)
    return query


def _apply_value(state: ExplorerState, name: str, raw: Any) -> str | None:
    parameter = state.param[name]
    try:
        value = _coerce(parameter, raw)
        if isinstance(parameter, param.Selector) and not isinstance(value, list):
            value = (parameter.names or {}).get(value, value)  # a menu label
        setattr(state, name, value)
    except (TypeError, ValueError) as err:
        return refusal(name, raw, parameter, err, getattr(state, name))
    return None


def refusal(name: str, raw: Any, parameter: param.Parameter, err: Exception, kept: Any) -> str:
    """Why a URL value was ignored, with what the parameter accepts *now* (the valid
    rates, kinds and horizon depend on the system and model chosen before it)."""
    valid = accepted(parameter)
    reason = f"valid: {valid}" if valid else _short(err)
    return f"ignored {name}={raw!r} ({reason}); kept {name}={kept!r}"


def accepted(parameter: param.Parameter) -> str:
    """The values `parameter` accepts, as a URL would spell them ('' if unbounded)."""
    if isinstance(parameter, param.Boolean):
        return "true or false"
    if isinstance(parameter, param.Integer) and parameter.bounds:
        low, high = parameter.bounds
        return f"an integer in [{low}, {high}]"
    if isinstance(parameter, param.Selector):  # ListSelector included
        objects = [str(value) for value in parameter.objects]
        choices = ", ".join(objects[:MAX_LISTED])
        if len(objects) > MAX_LISTED:
            choices += f", ... ({len(objects)} in all)"
        return f"a list of {choices}" if isinstance(parameter, param.ListSelector) else choices
    return ""


def _coerce(parameter: param.Parameter, raw: Any) -> Any:
    """A URL value (a string, or what panel's parse_query made of it) for `parameter`."""
    if isinstance(parameter, param.Boolean):
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        if not isinstance(raw, bool):
            raise ValueError("not true or false")
        return raw
    if isinstance(parameter, param.ListSelector):
        if isinstance(raw, str):
            raw = json.loads(raw) if raw.startswith("[") else raw.split(",")
        if not isinstance(raw, list):
            raise ValueError("not a list")
        return raw
    if isinstance(parameter, param.Integer):
        value = float(raw) if isinstance(raw, str) else raw
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value != int(value)
        ):
            raise ValueError("not an integer")
        return int(value)
    if isinstance(parameter, param.Selector) and isinstance(raw, str) and raw.isdigit():
        return int(raw)  # rates are integers in the menu, strings in a raw query
    return raw


def _condition_value(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def _short(err: Exception) -> str:
    text = str(err).split(";")[0]
    return text if len(text) < 160 else text[:157] + "..."
