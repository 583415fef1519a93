"""The app shell: one template per browser session, wiring state, store, runner and views.

`ExplorerApp` builds everything once; `connect_session` does what only a served session
has: URL sync, the first rollout after the page has rendered, and cancelling the job
when the browser leaves. Notifications (bad URL values, diverging rollouts, failing
solvers) appear as toasts and stay readable in an alert above the tabs.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable
from typing import Any

import panel as pn
from bokeh.document import Document
from panel.io.location import Location

from app.lessons import Lesson, apply_lesson
from app.memory import release_after_session
from app.models import current_zoo
from app.overview import systems_markdown, zoo_markdown
from app.runner import Dispatch, Runner, apply_now
from app.source_runner import SourceJob, SourceRunner
from app.sources import BUILTIN, SourceCatalog, SourceState, entry_point_problems
from app.sources import QUERY_KEYS as SOURCE_QUERY_KEYS
from app.state import ExplorerState, ZooMenus
from app.store import RunStore
from app.tabs import TAB_REGISTRY
from app.url import QUERY_PARAMS
from app.views.base import TabView, View
from app.views.compare import ComparisonView
from app.views.controls import Controls
from app.views.diagnostics import DiagnosticsView
from app.views.fields import FieldViews
from app.views.latents import LatentView
from app.views.lessons import LessonsView
from app.views.share import ShareView
from app.views.sources import SourcePicker
from engine.zoo import Zoo

TITLE = "latentsim"
INTRO = """
# latentsim

Latent diffusion emulators of physics, side by side with the solvers they imitate.
"""
HELP = """
A physical system (left menu) is simulated by its numerical
**solver** (the *ground truth*). An **emulator**, a neural network trained on such
simulations, predicts the same evolution from the first frame(s) alone. It works in a
compressed **latent space** (an autoencoder shrinks every frame ×64 to ×1280) or directly
on pixels. A **diffusion** emulator samples an **ensemble** of possible futures; a
**deterministic** one gives a single guess.

- **Fields**: truth, what the autoencoder alone keeps of it (the best a latent emulator
  can do), the ensemble mean, the members, their spread (uncertainty) and the error of
  the mean. Press ▶ to play; zoom is linked; hover for values.
- **Diagnostics**: error (VRMSE), calibration (spread–skill, rank histogram) and
  spectra against lead time. **Compare** runs several rates or samplers on the same
  start. **Latents** shows what the emulator really works on.

Change anything on the left and press **Run**; the address bar always reproduces the view.
"""
NO_EMULATOR = (
    "**No emulator is available yet.** The models are still being trained; the systems "
    "the engine simulates and the models published so far are listed below. Reload this "
    "page once an emulator appears."
)
NOTICE_SECONDS = 8000
TABS = tuple(tab.name for tab in TAB_REGISTRY)
VIEW_TABS = tuple(tab.name for tab in TAB_REGISTRY if tab.lazy)


def document_dispatch(doc: Document | None) -> Dispatch:
    """Apply store updates on `doc`'s event loop turn, under its lock, as one message."""
    if doc is None or doc.session_context is None:
        return apply_now

    async def dispatch(update: Callable[[], None]) -> None:
        done = asyncio.get_running_loop().create_future()

        def callback() -> None:
            try:
                with pn.io.hold(doc):
                    update()
            except Exception as err:  # hand it to the job, which reports it
                if not done.done():
                    done.set_exception(err)
            else:
                if not done.done():
                    done.set_result(None)

        doc.add_next_tick_callback(callback)
        await done

    return dispatch


class ExplorerApp(pn.viewable.Viewer):
    """The whole page for one session."""

    def __init__(
        self,
        zoo: Zoo | None = None,
        *,
        defer_images: bool = False,
        catalog: SourceCatalog | None = None,
        **params: Any,
    ):
        """`defer_images`: build the field images only in `connect_session`'s page-loaded
        callback, so a new session's page (controls first) is built, sent and drawn
        sooner; see FieldViews.defer_images. `catalog`: the files this session may open
        besides the built-in systems (app/sources.py); None: the zoo only."""
        super().__init__(**params)
        zoo = zoo if zoo is not None else current_zoo()
        self.zoo = zoo
        self.state = ExplorerState(ZooMenus(zoo))
        self.store = RunStore()
        self._location: Location | None = None
        # The zoo view's values a file source overrides (fields, leads, members shown),
        # restored when the built-in systems are picked again.
        self._zoo_view: dict[str, Any] | None = None
        dispatch = document_dispatch(pn.state.curdoc)
        self.runner = Runner(self.store, dispatch=dispatch, zoo=lambda: zoo)
        self.sources = SourceState(catalog) if catalog is not None else None
        self.source_runner = SourceRunner(self.store, dispatch=dispatch)
        self.alert = pn.pane.Alert(
            "",
            alert_type="warning",
            visible=False,
            css_classes=["ls-alert"],
            sizing_mode="stretch_width",
        )
        self.store.param.watch(self._notice, ["notice"])
        self.zoo_pane = pn.pane.Markdown(
            "### Models in the zoo\n" + zoo_markdown(zoo), css_classes=["ls-zoo"]
        )
        self.overview = overview = pn.Column(
            self.zoo_pane,
            pn.pane.Markdown("### Systems\n" + systems_markdown(), css_classes=["ls-systems"]),
            sizing_mode="stretch_width",
        )
        help_card = pn.Card(
            pn.pane.Markdown(HELP),
            title="What am I looking at?",
            collapsed=False,
            css_classes=["ls-help"],
            sizing_mode="stretch_width",
        )
        if self.state.available or self.sources is not None:
            self.controls = Controls(
                state=self.state, store=self.store, on_run=self.run, on_cancel=self.runner.cancel
            )
            self.fields = FieldViews(state=self.state, store=self.store, defer_images=defer_images)
            # Lazy tabs (app/tabs.py) are built when first shown.
            self._slots = {
                tab.name: pn.Column(
                    *([] if tab.lazy else [tab.build(self)]), sizing_mode="stretch_width"
                )
                for tab in TAB_REGISTRY
            }
            self._views: dict[str, pn.viewable.Viewable] = {"Fields": self.fields}
            self.tabs = pn.Tabs(
                *self._slots.items(),
                dynamic=True,
                css_classes=["ls-tabs"],
                sizing_mode="stretch_width",
            )
            self.tabs.param.watch(self._tab_changed, ["active"])
            sidebar, main = [self.controls], [help_card, self.alert, self.tabs]
            if self.sources is not None:
                self.picker = SourcePicker(
                    state=self.state,
                    store=self.store,
                    sources=self.sources,
                    on_open=self.run,
                    on_cancel=self.source_runner.cancel,
                )
                self._controls_slot = pn.Column(self.controls, sizing_mode="stretch_width")
                self.sources.param.watch(self._source_changed, ["source"])
                for problem in entry_point_problems().values():
                    self.store.notify("warning", problem)
                self._source_changed()
                sidebar = [self.picker, self._controls_slot]
        else:
            missing = pn.pane.Alert(
                NO_EMULATOR,
                alert_type="info",
                css_classes=["ls-no-emulator"],
                sizing_mode="stretch_width",
            )
            sidebar, main = [pn.pane.Markdown(INTRO)], [help_card, missing, overview]
        self.template = pn.template.BootstrapTemplate(
            title=TITLE, sidebar=sidebar, main=main, sidebar_width=330, header_background="#1d3557"
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.template

    # -- actions ------------------------------------------------------------------------
    def run(self, *, clear_alert: bool = True) -> None:
        """Start a job for the current selection (replacing a running one)."""
        if clear_alert:
            self.alert.visible = False
        if self.sources is not None and not self.sources.builtin:
            self.runner.cancel()
            self._open_source()
            return
        if not self.state.available:
            return
        self.source_runner.cancel()
        request, notes = self.state.request()
        for note in notes:
            self.store.notify("warning", note)
        self.state.time_index = 0
        if request.compare != "none" and request.compare_keys:
            self.tabs.active = TABS.index("Compare")
        self.runner.start(request)

    def _open_source(self) -> None:
        """Show the selected file source (app/source_runner.py) with the views' menus set
        to its fields and leads."""
        sources = self.sources
        if sources.problem or sources.opened is None:
            self.store.notify("error", sources.describe())
            return
        if self._zoo_view is None:
            self._zoo_view = {
                name: getattr(self.state, name)
                for name in ("field", "horizon", "member", "conditions")
            }
        channels = list(sources.channels)
        self.state.param.field.objects = channels
        if self.state.field not in channels:
            self.state.field = channels[0]
        leads, members = sources.extent()
        self.state.param.horizon.bounds = (1, max(leads, 1))
        self.state.horizon = max(leads, 1)
        self.state.param.member.bounds = (0, max(members - 1, 0))
        self.state.member = min(self.state.member, max(members - 1, 0))
        self.state.time_index = 0
        self.source_runner.start(SourceJob.from_state(sources))

    def _source_changed(self, *_: Any) -> None:
        builtin = self.sources.builtin
        self._controls_slot.visible = builtin and self.state.available
        if builtin and self.state.available:
            self.state.param.trigger("system")  # menus and bounds of the zoo again
            self.state.param.trigger("members")  # the member slider's bounds
            if self._zoo_view is not None:
                self.state.param.update(**self._zoo_view)
                self._zoo_view = None
        elif builtin:
            self.store.notify("info", "No emulator in the zoo yet: pick a file source.")

    def view(self, name: str) -> pn.viewable.Viewable:
        """The view of tab `name`, built on first use."""
        if name not in self._views:
            tab = TAB_REGISTRY[TABS.index(name)]
            self._views[name] = tab.build(self)
            self._slots[name].objects = [self._views[name]]
        return self._views[name]

    def make_view(self, cls: type[View], name: str, **params: Any) -> View:
        """A view of tab `name` on this session's state and store (for app/tabs.py)."""
        if issubclass(cls, TabView):
            params["active"] = TABS[self.tabs.active] == name
        return cls(state=self.state, store=self.store, **params)

    def start_lesson(self, lesson: Lesson) -> None:
        """Apply a lesson's URL state, run it and show the tab it is about.

        Lessons are about the built-in systems: a session showing a file goes back to
        them first (or, with no emulator in the zoo, says why nothing runs)."""
        if not self.state.available:
            self.store.notify("warning", "Lessons need an emulator in the zoo; there is none.")
            return
        if self.sources is not None:
            self.sources.source = BUILTIN
        warnings = apply_lesson(self.state, lesson)
        if warnings:
            self.store.notify("warning", "Lesson: " + "\n\n".join(warnings))
        self.run()
        self.tabs.active = TABS.index(lesson.tab)

    @property
    def lessons(self) -> LessonsView:
        return self.view("Lessons")

    @property
    def diagnostics(self) -> DiagnosticsView:
        return self.view("Diagnostics")

    @property
    def comparison(self) -> ComparisonView:
        return self.view("Compare")

    @property
    def latents(self) -> LatentView:
        return self.view("Latents")

    @property
    def share(self) -> ShareView:
        return self.view("Share")

    def _tab_changed(self, *_: Any) -> None:
        shown = TABS[self.tabs.active]
        if shown in VIEW_TABS:
            self.view(shown)
        for name, view in self._views.items():
            if isinstance(view, TabView):
                view.active = name == shown

    def _notice(self, event: Any) -> None:
        if event.new is None:
            return
        level, message = event.new
        if level in ("warning", "error"):
            self.alert.param.update(
                object=message, visible=True, alert_type="danger" if level == "error" else "warning"
            )
        notifications = pn.state.notifications
        if notifications is not None:
            getattr(notifications, level)(message, duration=NOTICE_SECONDS)

    # -- served sessions ---------------------------------------------------------------------
    def connect_session(self) -> None:
        """URL state, first rollout after the page renders, cancel when the browser leaves."""
        location = pn.state.location
        self.apply_url(location)
        pn.state.on_session_destroyed(self.runner.close)
        pn.state.on_session_destroyed(self.source_runner.close)
        pn.state.on_session_destroyed(release_after_session)
        if self.state.available or self.sources is not None:
            pn.state.onload(lambda: self._loaded(location))

    def _loaded(self, location: Location | None) -> None:
        # The browser reports its own address when the page loads, so the URL is written
        # (and synced) only now; the images and the first rollout follow the page.
        self.fields.build_images()
        self.sync_url(location)
        if self.state.available or self.sources is not None:
            self.run(clear_alert=False)  # keep what the URL check reported

    def apply_url(self, location: Location | None) -> None:
        """Apply the URL's query to the state; bad values become notifications."""
        if location is None:
            return
        warnings = []
        if self.sources is not None:
            warnings += self.sources.apply_query(location.query_params)
        if self.state.available:
            warnings += self.state.apply_query(location.query_params)
        if warnings:  # one notice, so none hides another
            self.store.notify("warning", "URL: " + "\n\nURL: ".join(warnings))

    def sync_url(self, location: Location | None) -> None:
        """Write the (sanitised) state into the URL, then keep both in sync: the synced
        parameters through panel, the conditions (named after each system's own
        parameters) by rewriting the query whenever they change."""
        self._location = location
        if location is None or not (self.state.available or self.sources is not None):
            return
        self._write_url()
        location.sync(self.state, {name: name for name in QUERY_PARAMS})
        self.state.param.watch(self._write_url, ["conditions"])
        if self.sources is not None:
            self.sources.param.watch(self._write_url, list(SOURCE_QUERY_KEYS))

    def _write_url(self, *_: Any) -> None:
        if self._location is not None:
            query = self.state.to_query() if self.state.available else {}
            if self.sources is not None:
                query.update(self.sources.to_query())
            self._location.search = "?" + urllib.parse.urlencode(query)
