"""Server start and stop for `panel serve app` (Bokeh's directory-app hooks).

The model compute (app/cluster.py) lives as long as the server: started before the first
session, so no student waits for worker processes, and a scheduler address that cannot
be reached stops the server at once with an error naming it.
"""

from __future__ import annotations

import logging
import sys

from app.cluster import (
    ComputeSettings,
    ComputeUnavailableError,
    describe,
    start_model_compute,
    stop_model_compute,
)

log = logging.getLogger(__name__)


def on_server_loaded(server_context: object) -> None:
    settings, _ = ComputeSettings.parse(sys.argv[1:])
    try:
        compute = start_model_compute(settings)
    except ComputeUnavailableError as err:
        log.critical("latentsim cannot start: %s", err)
        print(f"latentsim cannot start: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from err
    print(f"latentsim: model runs go to {describe(compute)}", file=sys.stderr, flush=True)


def on_server_unloaded(server_context: object) -> None:
    stop_model_compute()
