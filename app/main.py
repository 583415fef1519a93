"""Entry point for `panel serve app` (what `make app` runs): one explorer per browser session.

The zoo and the model compute (Dask workers, started by app/app_hooks.py) live in
imported modules, once per server process; this script only builds the page of a new
session. Served, the session then
syncs with the URL, starts the default rollout once the page has rendered, and cancels
its job when the browser leaves.

Sources besides the built-in systems come from `latentsim view PATH...` (through
environment variables) or from `panel serve app --args PATH...` (app/sources.py); the
same `--args` take `--scheduler ADDRESS` and `--workers N` (app/cluster.py).
"""

import os
import sys

import panel as pn
import torch

from app.cluster import ComputeSettings
from app.shell import INTRO, ExplorerApp
from app.sources import server_catalog

# One intra-op thread for the local compute thread (file sources, movies, and models when
# LATENTSIM_APP_WORKERS=0): the event loop serialises frames to every browser (a second
# OpenMP thread mostly busy-waits on a shared 2-core machine).
torch.set_num_threads(int(os.environ.get("LATENTSIM_APP_TORCH_THREADS", "1")))
pn.extension(notifications=True)

_, sources = ComputeSettings.parse(sys.argv[1:])
explorer = ExplorerApp(defer_images=pn.state.served, catalog=server_catalog(tuple(sources)))
if pn.state.served:
    explorer.connect_session()
explorer.servable(title="latentsim")

__all__ = ["INTRO"]
