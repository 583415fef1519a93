"""xarray Datasets of physical frames with CF-1.11 metadata, and back to arrays."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import xarray

from engine.errors import ParameterError
from engine.pipeline import out_of_training_range
from engine.systems.base import SystemSpec

CONVENTIONS = "CF-1.11"


def cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A float32 CPU copy; made outside inference mode, it is an ordinary tensor."""
    return tensor.to("cpu", torch.float32, copy=True)


def dataset_frames(
    dataset: xarray.Dataset, channels: tuple[str, ...]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """(values (..., C, X, Y), the leading dims + (x, y)) of a Dataset's channel variables."""
    missing = [name for name in channels if name not in dataset.data_vars]
    if missing:
        raise ParameterError(
            "dataset variables", sorted(dataset.data_vars), f"channels {', '.join(channels)}"
        )
    arrays = [dataset[name].transpose(..., "x", "y") for name in channels]
    dims = tuple(arrays[0].dims)
    return np.stack([a.transpose(*dims).values for a in arrays], axis=-3), dims


def conditions_attrs(spec: SystemSpec, conditions: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "conditions": json.dumps(dict(conditions)),
        "out_of_training_range": ", ".join(out_of_training_range(spec, conditions)),
    }


def fields_dataset(
    spec: SystemSpec,
    frames: np.ndarray,
    lead_dims: tuple[str, ...],
    coords: dict[str, Any],
    attrs: dict[str, Any],
) -> xarray.Dataset:
    """One CF-annotated variable per channel of `frames` (..., C, X, Y), plus x/y coords."""
    dims = (*lead_dims, "x", "y")
    described = {}
    for spec_field in spec.fields:
        for name in spec_field.channel_names:
            component = name[len(spec_field.name) + 1 :]
            long_name = spec_field.long_name + (f", {component} component" if component else "")
            described[name] = {"long_name": long_name, "units": spec_field.units}
    data_vars = {
        name: (dims, frames[..., channel, :, :], described[name])
        for channel, name in enumerate(spec.channel_names)
    }
    x, y = spec.grid.coordinates()
    grid_coords = {
        axis: (axis, values, {"long_name": f"{axis} coordinate", "units": "1", "axis": name})
        for axis, name, values in (("x", "X", x), ("y", "Y", y))
    }
    return xarray.Dataset(
        data_vars,
        coords={**coords, **grid_coords},
        attrs={"Conventions": CONVENTIONS, **attrs},
    )
