"""The explorer's tabs, in order: one registry, so adding a tab is adding one entry.

A lazy tab is built when first shown: each costs a few Bokeh figures that a new session
need not pay for before its first frame. The shell (app/shell.py) builds the tab bar,
the slots and the lazy construction from this list alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import panel as pn

from app.views.compare import ComparisonView
from app.views.diagnostics import DiagnosticsView
from app.views.latents import LatentView
from app.views.lessons import LessonsView
from app.views.share import ShareView

if TYPE_CHECKING:
    from app.shell import ExplorerApp


@dataclass(frozen=True)
class Tab:
    """One tab: its title, how the page builds its content, and whether it waits."""

    name: str
    build: Callable[[ExplorerApp], pn.viewable.Viewable]
    lazy: bool = True


TAB_REGISTRY: tuple[Tab, ...] = (
    Tab("Fields", lambda app: app.fields, lazy=False),
    Tab("Diagnostics", lambda app: app.make_view(DiagnosticsView, "Diagnostics")),
    Tab("Compare", lambda app: app.make_view(ComparisonView, "Compare", fields=app.fields)),
    Tab("Latents", lambda app: app.make_view(LatentView, "Latents")),
    Tab("Share", lambda app: app.make_view(ShareView, "Share")),
    Tab("Lessons", lambda app: LessonsView(on_lesson=app.start_lesson)),
    Tab("Systems & models", lambda app: app.overview, lazy=False),
)
