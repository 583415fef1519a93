"""What every view shares: the session's state and store, and redrawing only while shown."""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from app.state import ExplorerState
from app.store import RunStore


class View(pn.viewable.Viewer):
    """A component of the page: it reads the selection from `state` and the running job's
    results from `store`, builds its widgets and figures once, and updates them in place."""

    state = param.ClassSelector(class_=ExplorerState, doc="the session's selection")
    store = param.ClassSelector(class_=RunStore, doc="the session's running job and results")


class TabView(View):
    """A view whose `redraw` runs while `active`; updates that arrive while hidden only
    mark it stale, and it catches up when shown. Streaming then costs the event loop
    one tab's worth of work per block, not every tab's."""

    active = param.Boolean(default=True, doc="whether the view is on screen")

    def __init__(self, **params: Any):
        super().__init__(**params)
        self._stale = False
        self.param.watch(self._shown, ["active"])

    def refresh(self, *_: Any) -> None:
        if not self.active:
            self._stale = True
            return
        self._stale = False
        self.redraw()

    def redraw(self) -> None:
        raise NotImplementedError

    def _shown(self, event: param.parameterized.Event) -> None:
        if event.new and self._stale:
            self.refresh()
