"""`app.explore(...)`: the explorer inline in a notebook, on xarray objects in memory.

Each argument is a rollout Dataset (dims member, time, x, y; the schema of
docs/sources.md) or a Well-like Dataset (`engine.data.open_well`'s output, or a truth
run of `engine.rollout.truth_dataset`). Nothing is read from or written to disk, and
no path can be opened from the page: the catalog holds these datasets only.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import xarray

from app.cluster import WORKERS_VARIABLE, ComputeSettings, start_model_compute
from app.shell import ExplorerApp
from app.sources import SourceCatalog
from engine.sources import AllowedRoots
from engine.zoo import Zoo


def explore(*datasets: xarray.Dataset, zoo: Zoo | None = None, **named: xarray.Dataset):
    """The explorer on `datasets` (shown as data0, data1, ...) and `named` ones; the
    first is shown at once. Display the returned object (the last expression of a cell)."""
    given = {f"data{i}": d for i, d in enumerate(datasets)} | named
    for name, dataset in given.items():
        if not isinstance(dataset, xarray.Dataset):
            raise TypeError(f"explore: {name} is a {type(dataset).__name__}, not an xarray.Dataset")
    _kernel_compute()
    catalog = SourceCatalog(AllowedRoots([]), datasets=given)
    explorer = ExplorerApp(zoo, catalog=catalog)
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop (a script): Open in the page, or await explorer.run()
        return explorer
    explorer.run()  # a notebook kernel's loop: the job streams into the displayed page
    return explorer


def _kernel_compute() -> None:
    """Run the zoo's models on the kernel's own compute thread, as docs/app.md says a
    notebook does: a local Dask cluster would start worker processes on the kernel's
    event loop and outlive the explorer. A scheduler or worker count set in the
    environment is still honoured. Does nothing once a compute runs in this process."""
    settings, _ = ComputeSettings.parse()
    if settings.scheduler is None and WORKERS_VARIABLE not in os.environ:
        settings = replace(settings, workers=0)
    start_model_compute(settings)
