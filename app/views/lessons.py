"""The Lessons tab: guided steps through the paper's findings, one button each.

A button puts the explorer in the lesson's URL state (app/lessons.py), runs it and
shows the tab to look at; the page address then reproduces the step, so a teacher can
also hand out the link. The cost lesson shows the scaling plot measured by
`latentsim bench scaling` (docs/bench/scaling.png) when it is there.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import panel as pn
import param

from app.lessons import LESSONS, Lesson
from engine.paths import REPO_ROOT

SCALING_PLOT = REPO_ROOT / "docs" / "bench" / "scaling.png"
INTRO = """
### Lessons
Seven short steps through what latent diffusion emulators do, on the models shipped with
latentsim. Each button sets the controls, runs, and opens the tab to look at; then read
*What you should see*. Change anything afterwards and press **Run** to explore.
"""


class LessonsView(pn.viewable.Viewer):
    """The lessons, each with a button that calls `on_lesson(lesson)`."""

    on_lesson = param.Callable(doc="called with the Lesson whose button was pressed")

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.buttons: dict[str, pn.widgets.Button] = {}
        cards = [self._card(item) for item in LESSONS]
        self._layout = pn.Column(
            pn.pane.Markdown(INTRO),
            *cards,
            css_classes=["ls-lessons"],
            sizing_mode="stretch_width",
            max_width=900,
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _card(self, item: Lesson) -> pn.viewable.Viewable:
        button = pn.widgets.Button(
            label="Show me",
            color="primary",
            width=140,
            css_classes=["ls-lesson-button", f"ls-lesson-{item.key}"],
        )
        button.on_click(self._clicked(item))
        self.buttons[item.key] = button
        parts: list[Any] = [
            pn.pane.Markdown(
                f"#### {item.title}\n{item.text}\n\n**What you should see** "
                f"(tab *{item.tab}*): {item.expect}",
                sizing_mode="stretch_width",
            ),
            button,
        ]
        if item.key == "cost" and SCALING_PLOT.exists():
            parts.append(
                pn.pane.PNG(str(SCALING_PLOT), width=640, css_classes=["ls-lesson-scaling-plot"])
            )
        if item.extra:
            parts.append(pn.pane.Markdown(item.extra, sizing_mode="stretch_width"))
        return pn.Column(*parts, css_classes=["ls-lesson"], sizing_mode="stretch_width")

    def _clicked(self, item: Lesson) -> Callable[[Any], None]:
        # Scheduled on the document's next tick like the Run button (app/views/controls.py):
        # a lesson rewrites the views' Bokeh models, which fails outside the document lock.
        def clicked(_: Any) -> None:
            if self.on_lesson is not None:
                pn.state.execute(partial(self.on_lesson, item), schedule=True)

        return clicked
