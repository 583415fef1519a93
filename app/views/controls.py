"""The sidebar: what to run (system, model, conditions, sampler, ensemble) and Run/Cancel.

Widgets are bound to the state's parameters (their menus follow the zoo through the
state); the condition sliders are rebuilt when the system changes, since every system
has its own. Log-scaled parameters (Rayleigh, Reynolds...) slide in log10; the note
under each slider gives the value and the training range. Values outside the training
range are allowed and flagged; values outside the solver's valid range are not offered.
"""

from __future__ import annotations

import math
from typing import Any

import panel as pn
import param

from app.state import ExplorerState
from app.views.base import View
from engine.systems.base import ChoiceSpec, ParameterSpec

IN_RANGE_COLOR = "#0d6efd"
OOD_COLOR = "#fd7e14"


class ConditionWidget:
    """A slider (or choice) for one condition, with its training-range note."""

    def __init__(self, state: ExplorerState, spec: ParameterSpec | ChoiceSpec):
        self.state, self.spec = state, spec
        name = spec.name
        value = state.conditions.get(name, spec.default)
        css = ["ls-condition", f"ls-condition-{name}"]
        if isinstance(spec, ChoiceSpec):
            self.widget = pn.widgets.RadioButtonGroup(
                label=spec.long_name,
                options=list(spec.choices),
                value=value,
                css_classes=css,
                variant="outline",
            )
            self.widget.param.watch(self._choice, "value")
            self.note = None
        else:
            lo, hi = spec.valid_range
            log = spec.log_scale
            start, end = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
            # A log slider's own readout would show log10: the note below shows the value.
            self.widget = pn.widgets.FloatSlider(
                label=f"{name} ({spec.long_name})",
                start=start,
                end=end,
                value=self._position(value),
                step=(end - start) / 400,
                css_classes=css,
                show_value=not log,
                tooltips=not log,
                format="0[.]000",
                sizing_mode="stretch_width",
            )
            self.widget.param.watch(self._slid, "value_throttled")
            self.note = pn.pane.Markdown(
                "",
                css_classes=["ls-condition-note"],
                margin=(-12, 10, 0, 10),
                styles={"font-size": "0.85em"},
            )
        self.show(value)

    @property
    def panels(self) -> list[pn.viewable.Viewable]:
        return [self.widget] if self.note is None else [self.widget, self.note]

    def _position(self, value: float) -> float:
        return math.log10(value) if self.spec.log_scale else value

    def _slid(self, event: param.parameterized.Event) -> None:
        value = 10**event.new if self.spec.log_scale else event.new
        self.state.set_condition(self.spec.name, float(f"{value:.4g}"))

    def _choice(self, event: param.parameterized.Event) -> None:
        self.state.set_condition(self.spec.name, event.new)

    def show(self, value: Any) -> None:
        """Reflect the state's value: slider position, training-range note and colour."""
        if isinstance(self.spec, ChoiceSpec):
            self.widget.value = value
            return
        self.widget.value = self._position(value)
        lo, hi = self.spec.train_range
        if self.spec.in_training_range(value):
            self.widget.bar_color = IN_RANGE_COLOR
            self.note.object = f"= {value:g} · trained on {lo:g} – {hi:g}"
        else:
            self.widget.bar_color = OOD_COLOR
            self.note.object = (
                f"= {value:g} · ⚠ **out of distribution**: the models were "
                f"trained on {lo:g} – {hi:g}"
            )


class Controls(View):
    on_run = param.Callable()
    on_cancel = param.Callable()

    def __init__(self, **params: Any):
        super().__init__(**params)
        state, store = self.state, self.store
        self.system = pn.widgets.Select.from_param(
            state.param.system, label="System", css_classes=["ls-system"]
        )
        self.rate = pn.widgets.Select.from_param(
            state.param.rate, label="Compression", css_classes=["ls-rate"]
        )
        self.kind = pn.widgets.RadioButtonGroup.from_param(
            state.param.kind, label="Emulator", css_classes=["ls-kind"], variant="outline"
        )
        self.seed = pn.widgets.IntInput.from_param(
            state.param.seed, label="Initial condition (seed)", css_classes=["ls-seed"]
        )
        self.conditions = pn.Column(
            css_classes=["ls-conditions"], margin=0, sizing_mode="stretch_width"
        )
        self.sampler = pn.widgets.Select.from_param(
            state.param.sampler, label="Sampler", css_classes=["ls-sampler"]
        )
        self.steps = pn.widgets.IntSlider.from_param(
            state.param.steps, label="Sampler steps", css_classes=["ls-steps"]
        )
        self.members = pn.widgets.IntSlider.from_param(
            state.param.members, label="Ensemble members", css_classes=["ls-members"]
        )
        self.context = pn.widgets.IntSlider.from_param(
            state.param.context, label="Context frames", css_classes=["ls-context"]
        )
        self.horizon = pn.widgets.IntSlider.from_param(
            state.param.horizon, label="Horizon (frames)", css_classes=["ls-horizon"]
        )
        self.reference = pn.widgets.Checkbox.from_param(
            state.param.reference,
            label="also run the other kind (diagnostics)",
            css_classes=["ls-reference"],
        )
        self.compare = pn.widgets.Select.from_param(
            state.param.compare, label="Compare", css_classes=["ls-compare-mode"]
        )
        self.compare_samplers = pn.widgets.MultiChoice.from_param(
            state.param.compare_samplers,
            label="Samplers / steps to compare",
            css_classes=["ls-compare-samplers"],
        )
        self.run = pn.widgets.Button(
            label="Run", color="primary", css_classes=["ls-run"], sizing_mode="stretch_width"
        )
        self.cancel = pn.widgets.Button(
            label="Cancel", css_classes=["ls-cancel"], disabled=True, sizing_mode="stretch_width"
        )
        # A click that arrives while another widget's change is still pending is handled
        # outside the Bokeh document lock, where the views' direct writes to Bokeh models
        # fail (`_pending_writes should be non-None`) and no job would start. Scheduling
        # the action on the document's next tick runs it under the lock, after that change.
        self.run.on_click(lambda _: pn.state.execute(self.on_run, schedule=True))
        self.cancel.on_click(lambda _: pn.state.execute(self.on_cancel, schedule=True))
        self.progress = pn.indicators.Progress(
            value=0, max=1000, css_classes=["ls-progress"], sizing_mode="stretch_width", height=12
        )
        self.status = pn.pane.Markdown("", css_classes=["ls-status"], margin=(0, 10))
        self.speed = pn.pane.Markdown(
            "", css_classes=["ls-speed"], margin=(0, 10), styles={"font-size": "0.85em"}
        )
        self._conditions: dict[str, ConditionWidget] = {}
        self._layout = pn.Column(
            self.system,
            self.rate,
            self.kind,
            pn.pane.Markdown("**Initial condition and parameters**", margin=(10, 10, 0, 10)),
            self.seed,
            self.conditions,
            pn.pane.Markdown("**Sampling**", margin=(10, 10, 0, 10)),
            self.sampler,
            self.steps,
            self.members,
            self.context,
            self.horizon,
            self.reference,
            self.compare,
            self.compare_samplers,
            pn.Row(self.run, self.cancel, sizing_mode="stretch_width"),
            self.progress,
            self.status,
            self.speed,
            css_classes=["ls-controls"],
            sizing_mode="stretch_width",
        )
        state.param.watch(self._build_conditions, ["system"])
        state.param.watch(self._show_conditions, ["conditions"])
        state.param.watch(self._enable, ["kind", "compare"])
        store.param.watch(self._progress, ["running", "progress", "status", "speed", "eta"])
        self._build_conditions()
        self._enable()
        self._progress()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _build_conditions(self, *_: Any) -> None:
        if not self.state.available:
            self.conditions.objects = []
            return
        spec = self.state.spec
        self._conditions = {
            p.name: ConditionWidget(self.state, p) for p in (*spec.parameters, *spec.choices)
        }
        self.conditions.objects = [
            panel for widget in self._conditions.values() for panel in widget.panels
        ]

    def _show_conditions(self, *_: Any) -> None:
        for name, widget in self._conditions.items():
            if name in self.state.conditions:
                widget.show(self.state.conditions[name])

    def _enable(self, *_: Any) -> None:
        diffusion = self.state.kind == "diffusion"
        for widget in (self.sampler, self.steps, self.members):
            widget.disabled = not diffusion
        self.compare_samplers.visible = self.state.compare == "samplers"

    def _progress(self, *_: Any) -> None:
        store = self.store
        self.run.disabled = not self.state.available
        self.cancel.disabled = not store.running
        self.progress.value = round(store.progress * 1000)
        self.progress.bar_color = "primary" if store.running else "success"
        eta = f" · {store.eta}" if store.running and store.eta else ""
        self.status.object = f"{store.status}{eta}"
        self.speed.object = store.speed
